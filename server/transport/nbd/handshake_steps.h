// The steps every NBD handshake over a socket begins with, shared by
// cowblkd's export (handshake.h) and the gateway of `cowblk nbd`
// (client/gateway/handshake.h): the greeting and the client's flags, then
// one option at a time; and the options both answer alike, which set up the
// replies of the transmission (ReplyOptions). What each server answers to
// the other options is its own.
// Library cowblk_nbd_parse.
//
// Thread-safety: the connection's reading thread.

#ifndef COWBLK_SERVER_TRANSPORT_NBD_HANDSHAKE_STEPS_H_
#define COWBLK_SERVER_TRANSPORT_NBD_HANDSHAKE_STEPS_H_

#include <cstdint>
#include <functional>
#include <optional>
#include <string>

#include "absl/status/statusor.h"
#include "common/nbd_wire.h"
#include "server/transport/nbd/socket_reader.h"

namespace cowblk::nbd {

// Sends the greeting on `fd` and takes the client's flags from `in`:
// whether the client asked for no zeroes (NBD_FLAG_C_NO_ZEROES), or why
// the handshake ends.
absl::StatusOr<bool> Greet(int fd, SocketReader* in);

struct ClientOption {
  uint32_t option = 0;
  std::string data;  // at most kMaxOptionBytes
};
// The client's next option, or why the handshake ends.
absl::StatusOr<ClientOption> TakeOption(SocketReader* in);

// What a client negotiated for the transmission phase.
struct Negotiated {
  bool structured_replies = false;
  bool base_allocation = false;  // selected for the export chosen
};

// NBD_OPT_STRUCTURED_REPLY, then NBD_OPT_LIST_META_CONTEXT and
// NBD_OPT_SET_META_CONTEXT with the one context, base:allocation.
class ReplyOptions {
 public:
  static bool Handles(uint32_t option) {
    return option == kOptStructuredReply || option == kOptListMetaContext ||
           option == kOptSetMetaContext;
  }
  // Answers `option` (Handles) on `fd`. `unknown(name)`: why an export name
  // names no export, "" when it names one. False when a reply could not be
  // sent.
  bool Answer(int fd, uint32_t option, const std::string& data,
              const std::function<std::string(const std::string&)>& unknown);
  // What the client negotiated, once it chose the export `name`.
  Negotiated For(const std::string& name) const {
    return {structured_, base_allocation_for_ == name};
  }

 private:
  bool MetaContext(int fd, uint32_t option, const std::string& data,
                   const std::function<std::string(const std::string&)>& unknown);

  bool structured_ = false;
  // The export NBD_OPT_SET_META_CONTEXT selected base:allocation for.
  std::optional<std::string> base_allocation_for_;
};

}  // namespace cowblk::nbd

#endif  // COWBLK_SERVER_TRANSPORT_NBD_HANDSHAKE_STEPS_H_
