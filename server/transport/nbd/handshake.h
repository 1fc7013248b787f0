// The NBD handshake of cowblkd's export (fixed newstyle): the client picks
// one of the store's ready volumes with NBD_OPT_GO or NBD_OPT_EXPORT_NAME;
// NBD_OPT_INFO, NBD_OPT_LIST and NBD_OPT_ABORT are answered too, and
// NBD_OPT_STRUCTURED_REPLY, then NBD_OPT_LIST_META_CONTEXT and
// NBD_OPT_SET_META_CONTEXT with the one context, base:allocation (which
// NBD_CMD_BLOCK_STATUS answers: block_status.h); other options
// NBD_REP_ERR_UNSUP. The protocol is doc/proto.md of
// NetworkBlockDevice/nbd.
//
// With TLS on (HandshakeSecurity::start_tls), TLS is required, as the
// protocol's FORCEDTLS mode says: before NBD_OPT_STARTTLS, every option but
// NBD_OPT_ABORT gets NBD_REP_ERR_TLS_REQD and NBD_OPT_EXPORT_NAME ends the
// connection, so a plaintext client learns nothing and writes nothing.
// With an ExportAccess, the client sees and opens only the volumes its
// identity may: the others are NBD_REP_ERR_UNKNOWN (as if they did not
// exist) and missing from NBD_OPT_LIST; a volume it may only read is
// exported with NBD_FLAG_READ_ONLY (and its writes fail with EPERM).
//
// Thread-safety: runs on the connection's reading thread.

#ifndef COWBLK_SERVER_TRANSPORT_NBD_HANDSHAKE_H_
#define COWBLK_SERVER_TRANSPORT_NBD_HANDSHAKE_H_

#include <cstdint>
#include <functional>
#include <memory>
#include <string>

#include "absl/status/statusor.h"
#include "common/block_range.h"
#include "common/nbd_wire.h"
#include "server/store/store.h"
#include "server/transport/nbd/handshake_steps.h"
#include "server/transport/nbd/socket_reader.h"
#include "server/transport/nbd/wire_parse.h"

namespace cowblk::nbd {

// What the export advertises. Every connection sees every completed write
// (one engine per volume), and a flush covers all of them: multi-conn is
// safe. Fast zero: every write-zeroes is a hole punched or a range zeroed
// by fallocate (or nothing at all), never data written (transmission.cc).
inline constexpr uint16_t kTransmissionFlags = kTxHasFlags | kTxSendFlush | kTxSendFua |
                                               kTxSendTrim | kTxSendWriteZeroes |
                                               kTxCanMultiConn | kTxSendFastZero;
inline constexpr uint32_t kMinBlock = 512, kPreferredBlock = 4096;  // kMaxBlock: wire_parse.h

// What a client may do with a volume.
enum class Grant { kNone, kRead, kWrite };
// What the client with `identity` (TlsSession::identity: "CN=NAME" of its
// verified certificate, "" without one) may do with `volume`.
using ExportAccess = std::function<Grant(const std::string& identity, const std::string& volume)>;

struct HandshakeSecurity {
  // Set when TLS is on (then required): runs the TLS handshake once
  // NBD_OPT_STARTTLS was acknowledged, and returns the client's identity.
  std::function<absl::StatusOr<std::string>()> start_tls;
  // Who may use which volume; null: every client may write every volume.
  ExportAccess access;
};

class Handshake {
 public:
  // Talks over `fd` (read through `in`), exporting the volumes of `store`
  // as `security` says. All must outlive Run().
  Handshake(int fd, SocketReader* in, store::Store* store, const HandshakeSecurity* security)
      : fd_(fd), in_(in), store_(store), security_(security) {}

  // Runs the handshake to its end: the chosen volume, or null with `why`
  // set (the client left, aborted, or broke the protocol; the connection
  // ends). Its deadline is the server's to enforce: NbdServer shuts the
  // socket down at it, and the reads here fail.
  std::shared_ptr<store::VolumeHandle> Run(std::string* why);

  // What the client chose for the transmission, once Run returned a volume.
  const Negotiated& negotiated() const { return negotiated_; }
  // Whether the client may write the chosen volume.
  bool writable() const { return grant_ == Grant::kWrite; }

 private:
  // The volume `name` if the client may use it (its grant in `*grant`);
  // NotFound alike for a volume it may not see and one that is not there.
  absl::StatusOr<std::shared_ptr<store::VolumeHandle>> Open(const std::string& name,
                                                            Grant* grant) const;
  Grant GrantFor(const std::string& name) const;
  // Before TLS: answers `option` as TLS requires; false when the connection ends.
  bool BeforeTls(uint32_t option, const std::string& data, std::string* why);
  bool SendOptionReply(uint32_t option, uint32_t type, const std::string& data);
  // NBD_OPT_INFO and NBD_OPT_GO: false when the connection must end;
  // `*chosen` set when GO picked a volume.
  bool InfoOrGo(uint32_t option, const std::string& data,
                std::shared_ptr<store::VolumeHandle>* chosen, std::string* why);
  bool List(uint32_t length, std::string* why);

  const int fd_;
  SocketReader* const in_;
  store::Store* const store_;
  const HandshakeSecurity* const security_;
  bool tls_done_ = false;
  std::string identity_;  // the client's, once TLS is up
  Grant grant_ = Grant::kNone;  // of the chosen volume
  ReplyOptions reply_options_;
  Negotiated negotiated_;
};

}  // namespace cowblk::nbd

#endif  // COWBLK_SERVER_TRANSPORT_NBD_HANDSHAKE_H_
