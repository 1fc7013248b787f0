// The NBD transport of a volume (VolumeOptions::nbd): one connection to the
// server's NBD export (nbd_call.h) that carries writes of
// nbd_min_write_bytes and reads of nbd_min_read_bytes and more, with NBD's
// framing instead of HTTP/2's and a read's data received straight into the
// caller's buffer. The Session lanes carry everything else, and these
// chunks too whenever this lane cannot.
//
// Finding the export: the GetVolume answer the volume was opened with says
// its port (Volume.nbd_port; 0: none). It is dialled at the host of
// ClientOptions::target, not at an address the server names (its listen
// address often means nothing to the client). Before any later dial, the
// lane asks GetVolume again (export_lookup.h): a restarted server may
// listen on another port, and the answer's epoch tells the core whether
// the restart may have lost acknowledged writes. No Session stream is
// needed for any of it.
//
// Rules (volume.h states the contract):
// - Lazily, never waited for: the lane dials only once a chunk for it was
//   queued, and such chunks take the streams until the handshake is done.
// - A chunk taken is kClaimed: the connection's threads use its buffers,
//   so only the connection hands it back:
//   - answered OK: done, as over a stream (a write counts for epochs);
//   - answered with an error: sent again over a stream (never over NBD
//     again), so the caller sees the server's own status and message; an
//     UNAVAILABLE answer (ESHUTDOWN) also ends the connection;
//   - still unanswered when the connection ends: failed DEADLINE_EXCEEDED
//     if past its deadline, else retried. A deadline cuts the connection
//     (nothing else can free a chunk whose buffer it may be using), and
//     its other chunks are retried, as a stuck stream's are.
// - A connection that ended is followed at once by a lookup if it had
//   served, else after a backoff (50 ms doubling to
//   ClientOptions::max_backoff); so is a lookup that failed or found no
//   export. A lookup that found one is followed by a dial at once.
// - FUA writes go over NBD only if the export takes NBD_CMD_FLAG_FUA.
//
// Thread-safety: state guarded by the VolumeCore's lock (transport.h); the
// On... calls come from the connection's and the lookup's threads without
// it.

#ifndef COWBLK_CLIENT_SRC_NBD_LANE_H_
#define COWBLK_CLIENT_SRC_NBD_LANE_H_

#include <chrono>
#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "client/src/client_core.h"
#include "client/src/transport.h"
#include "cowblk/v1/volume.pb.h"

namespace cowblk::internal {

class ExportLookup;
class NbdTls;
class NbdCall;
class VolumeCore;

class NbdLane final : public Transport {
 public:
  // The NBD lane of volume `volume` (of `size` bytes) of `core`, on
  // `client` (both outlive it); `port`: the export's, as the volume was
  // opened (0: none). Never dials if options.nbd is off, or the client uses
  // TLS or a token (the export carries neither), or its target names no
  // single TCP host.
  NbdLane(VolumeCore* core, ClientCore* client, std::string volume, uint64_t size, uint32_t port,
          const VolumeOptions& options);

  // Transport.
  void QueuedLocked(const Chunk& c) override;
  void PrepareLocked(Clock::time_point now, Actions* actions) override;
  bool TakeLocked(Chunk* c, Clock::time_point now, Actions* actions) override;
  bool ReleaseExpiredLocked(Chunk* c, Actions* actions, std::string* why) override;
  size_t InFlightLocked() const override { return in_flight_; }
  void CloseLocked(Actions* actions) override;
  bool GoneLocked() const override { return live_ == 0; }
  void AddStatsLocked(VolumeStats* stats) const override;

  // From NbdCall's thread (no lock held; see nbd_call.h).
  void OnReady(NbdCall* nbd, bool fua);
  void OnAnswer(NbdCall* nbd, Chunk* c, const absl::Status& answer);
  void OnGone(NbdCall* nbd, std::vector<Chunk*> leftovers, const absl::Status& why);
  // From ExportLookup (a gRPC thread; no lock held): its status, and the
  // volume as the server described it if OK.
  void OnLookedUp(ExportLookup* lookup, const absl::Status& status, const v1::Volume& volume);

 private:
  // Whether `c` is a read or write the options send over NBD.
  bool ForNbd(const Chunk& c) const;
  // REQUIRES the lock. The next try (lookup or dial) waits a longer backoff.
  void BackOffLocked(Clock::time_point now);
  // REQUIRES the lock. A link of this lane is gone (Close() may wait).
  void GoneOneLocked();

  VolumeCore* const core_;
  ClientCore* const client_;
  const std::string volume_;
  const uint64_t size_;
  // Where the export is dialled; empty: never.
  const std::string host_;
  // The export's TLS when the client uses TLS (null if its files failed to
  // load: then the lane never dials).
  const std::shared_ptr<const NbdTls> tls_;
  const bool tls_wanted_;
  const uint64_t min_read_bytes_;
  const uint64_t min_write_bytes_;
  const std::chrono::milliseconds max_backoff_;

  // Guarded by the VolumeCore's lock.
  uint32_t port_;              // as GetVolume last told; 0: no export
  bool stale_ = false;         // port_ must be looked up again before a dial
  bool wanted_ = false;        // a chunk for this lane was queued
  std::shared_ptr<NbdCall> nbd_;           // the connection, from dial to OnGone
  std::shared_ptr<ExportLookup> lookup_;   // the lookup, from start to OnLookedUp
  bool ready_ = false;         // nbd_ finished its handshake
  bool fua_ = false;           // ... and takes FUA writes
  Clock::time_point retry_at_;  // no lookup or dial before this
  std::chrono::milliseconds backoff_{0};
  int live_ = 0;               // connections and lookups started whose last call has not returned
  size_t in_flight_ = 0;       // chunks claimed by nbd_ (or an older connection)
  uint64_t requests_ = 0;      // VolumeStats::nbd_requests
  uint64_t connections_ = 0;   // VolumeStats::nbd_connections
};

}  // namespace cowblk::internal

#endif  // COWBLK_CLIENT_SRC_NBD_LANE_H_
