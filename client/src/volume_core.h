// The engine of a cowblk::Volume, whichever way its chunks travel: the queue
// of chunks, the in-flight window, deadlines, retries, held flushes, epochs,
// and the completion of calls. Its transports (transport.h) carry the
// chunks: the Session lanes and, when the server has an NBD export, the NBD
// lane, offered each chunk in that order (NBD first).
//
// Retry rules (see volume.h for the contract):
// - A chunk its transport lost (the stream or connection it was sent on
//   broke with a retryable status) goes back to the head of the queue, in
//   submission order, and is sent again; which losses are retryable is the
//   transport's to say (session_lanes.h, nbd_lane.h). So is a chunk answered
//   UNAVAILABLE (its volume handle on the server closed: deleted, or the
//   server is stopping). Any other answer completes the chunk.
// - A retried flush waits (held) until every retried non-flush chunk has
//   completed, so it covers the rewrites.
// - A chunk past its call's deadline fails DEADLINE_EXCEEDED. Its transport
//   decides what becomes of the link it was sent on (a stream is cancelled:
//   stuck or too slow; an NBD connection is cut, since only its end frees
//   the chunks whose buffers it uses, which then fail or are retried).
//
// Epochs: the core learns the server's epoch of the volume from the
// GetVolume answer the volume was opened with, from every Session stream
// (`cowblk-epoch`) and from every GetVolume lookup of the NBD lane. Writes,
// trims and write-zeroes answered OK (over either transport, FUA ones
// excepted: they are durable) count as acknowledged; a flush answered OK
// covers those acknowledged before it was sent. When the epoch changes
// while acknowledged writes that no flush covered exist, those may be lost:
// the next flush answered OK in the new epoch fails DATA_LOSS instead, once.
//
// Locking: one mutex (mu()) guards the core and its transports; see
// transport.h. Lifetime: Close() returns once every link of every
// transport is gone, so nothing can call into a destroyed VolumeCore, and
// the client's channels (which the streams' contexts reference) are never
// released last on a gRPC thread.

#ifndef COWBLK_CLIENT_SRC_VOLUME_CORE_H_
#define COWBLK_CLIENT_SRC_VOLUME_CORE_H_

#include <condition_variable>
#include <cstdint>
#include <deque>
#include <list>
#include <memory>
#include <mutex>
#include <string>
#include <string_view>
#include <vector>

#include "absl/status/status.h"
#include "client/src/chunk.h"
#include "client/src/client_core.h"
#include "client/src/transport.h"
#include "cowblk/types.h"
#include "cowblk/volume.h"

namespace cowblk::internal {

// What the GetVolume answer a volume was opened with says beyond
// VolumeInfo: how to reach it over the NBD export.
struct ServedVolume {
  std::string epoch;      // Volume.epoch ("": not told)
  uint32_t nbd_port = 0;  // Volume.nbd_port (0: no export)
};

class VolumeCore {
 public:
  // REQUIRES: options are valid (Volume checked them). `size`: the
  // volume's, which its NBD export must have.
  VolumeCore(std::shared_ptr<ClientCore> client, std::string name, uint64_t size,
             const ServedVolume& served, const VolumeOptions& options);
  // Close()s.
  ~VolumeCore();
  VolumeCore(const VolumeCore&) = delete;
  VolumeCore& operator=(const VolumeCore&) = delete;

  // Queues the chunks of `call` (each with its kind and range set) and
  // sends what the window allows. Fails `call` at once if closed.
  void Submit(std::unique_ptr<IoCall> call);
  // Waits for the calls in progress, then ends the transports' links and
  // waits for them. Later Submit()s fail FAILED_PRECONDITION.
  void Close();
  VolumeStats stats() const;

  // ---- For the transports (transport.h) ---------------------------------

  std::mutex& mu() const { return mu_; }
  // `c`, taken by a transport, is done with `status`: its answer, or why it
  // failed. An OK write counts as acknowledged and an OK flush as covering
  // what it was sent after, in the epoch `epoch` of the server that
  // answered (a stream's; "" when unknown: the NBD lane, which carries no
  // flushes).
  void CompleteLocked(Chunk* c, const absl::Status& status, Actions* actions,
                      std::string_view epoch = {});
  // Puts `chunks` (lost by their transport; in any order) back at the head
  // of the queue, in submission order, to be sent again.
  void RequeueLocked(std::vector<Chunk*> chunks, const absl::Status& why);
  // The server's epoch of the volume, as some answer told it ("" ignored).
  void LearnEpochLocked(const std::string& epoch);
  // Sends what the window allows. Call after anything that may let a chunk go.
  void DispatchLocked(Clock::time_point now, Actions* actions);
  // Runs `actions` (without the lock).
  void Run(Actions* actions);
  bool closing_locked() const { return closing_; }
  // A link of a transport is gone: Close() may be waiting for it.
  void LinkGoneLocked() { cv_.notify_all(); }

 private:
  // The ticker's work: deadlines, and links whose backoff has passed.
  bool Tick(Clock::time_point now);

  // All REQUIRE mu_ held.
  size_t InFlightLocked() const;
  void ReleaseHeldLocked();
  void FinishLocked(Chunk* c, const absl::Status& status, Actions* actions);
  void ExpireLocked(IoCall* call, Actions* actions);

  const std::shared_ptr<ClientCore> client_;
  const std::string name_;
  const size_t max_in_flight_;
  uint64_t tick_id_ = 0;
  // In the order chunks are offered to them; fixed after construction.
  std::vector<std::unique_ptr<Transport>> transports_;

  mutable std::mutex mu_;       // guards everything below, and the transports
  std::condition_variable cv_;  // a call completed, or a link went
  std::list<std::unique_ptr<IoCall>> active_;  // calls not yet completed
  std::deque<Chunk*> queue_;                   // kQueued, head first
  std::vector<Chunk*> held_;                   // kHeld flushes, in order
  size_t retried_ = 0;  // retried non-flush chunks not yet done
  int completing_ = 0;  // calls out of active_ whose callback has not returned
  uint64_t next_seq_ = 1;
  bool closing_ = false;
  bool closed_ = false;
  VolumeStats stats_;  // requests, retries, epoch_losses (the rest: transports)
  // Epochs (see the top of this file).
  std::string epoch_;            // empty until told
  uint64_t writes_acked_ = 0;    // write, trim and write-zeroes chunks answered OK
  uint64_t writes_flushed_ = 0;  // ... of which a good flush covered the first ones
  absl::Status lost_;            // for the next flush answered OK in epoch_
  uint64_t lost_upto_ = 0;       // writes_acked_ when lost_ was set
};

}  // namespace cowblk::internal

#endif  // COWBLK_CLIENT_SRC_VOLUME_CORE_H_
