// The seam between a volume's core and the ways its chunks travel.
//
// The VolumeCore (volume_core.h) owns every rule about a chunk: the queue,
// the in-flight window, deadlines, retries, held flushes, epochs and the
// completion of calls. A Transport only carries chunks to the server and
// brings their answers back. There are two:
// - the Session lanes (session_lanes.h), one gRPC Session stream each,
//   which carry every kind of request;
// - the NBD lane (nbd_lane.h), one connection to the server's NBD export,
//   which carries writes and large reads when the server has an export.
// The core offers the chunk at the head of its queue to its transports in
// order (the NBD lane first); the first that takes it owns it until it hands
// it back through VolumeCore::CompleteLocked (answered, or failed) or
// RequeueLocked (lost with its link: to be sent again).
//
// Locking: one mutex, the VolumeCore's, guards the core and its transports
// alike (VolumeCore::mu()): a chunk moves between them without a second
// lock, and no lock order can be got wrong. Every ...Locked method REQUIRES
// it. Nothing that may block or call back runs under it: starting, sending
// on and ending links (streams, connections, lookups) and the callbacks of
// completed calls are collected as Actions and run once it is released
// (VolumeCore::Run). A transport's own threads and gRPC reactions take the
// lock to touch its state, and call into the core only with it held.

#ifndef COWBLK_CLIENT_SRC_TRANSPORT_H_
#define COWBLK_CLIENT_SRC_TRANSPORT_H_

#include <grpcpp/support/slice.h>

#include <algorithm>
#include <chrono>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "client/src/chunk.h"
#include "cowblk/types.h"

namespace cowblk::internal {

// Something a transport starts and ends outside the lock: a stream, a
// connection, a lookup. Thread-safe; Cancel() may come before Start() (the
// link then ends as soon as it starts) and after the link ended (no-op).
class Link {
 public:
  virtual ~Link() = default;
  virtual void Start() = 0;
  virtual void Cancel() = 0;
};

// What a link is given to send: the chunk, for a link that owns it while it
// sends (kClaimed: an NBD connection sends from its buffer), and its
// encoding made under the lock, for one that must not touch the chunk once
// the lock is released (kSent: a Session stream, whose chunk a deadline may
// free at any time).
struct Outgoing {
  Chunk* chunk = nullptr;
  grpc::Slice message;
};

// A link that carries chunks.
class Carrier : public Link {
 public:
  // Sends `out`. A carrier that has ended drops it; its transport then
  // hands the chunk back as lost with the carrier.
  virtual void Send(Outgoing out) = 0;
};

// Work collected under the lock, run after it is released, in this order.
struct Actions {
  std::vector<std::shared_ptr<Link>> starts;
  std::vector<std::pair<std::shared_ptr<Carrier>, Outgoing>> sends;
  std::vector<std::shared_ptr<Link>> cancels;
  std::vector<std::unique_ptr<IoCall>> completed;  // their callbacks run last
};

// The delay before a link is tried again after one that never served: 50 ms,
// then doubled after each such link, up to `max` (ClientOptions::max_backoff).
inline std::chrono::milliseconds NextBackoff(std::chrono::milliseconds last,
                                             std::chrono::milliseconds max) {
  constexpr std::chrono::milliseconds kFirst{50};
  return std::max(kFirst, std::min(max, last * 2));
}

class Transport {
 public:
  virtual ~Transport() = default;

  // `c` was queued. A transport may prepare for chunks it would take (the
  // NBD lane dials once such a chunk exists, never before).
  virtual void QueuedLocked(const Chunk& c) { (void)c; }
  // Before the queue is offered: start what is due (a dial after a backoff).
  virtual void PrepareLocked(Clock::time_point now, Actions* actions) {
    (void)now;
    (void)actions;
  }
  // Takes `c` (the head of the queue) if this transport can send it now:
  // sets its state (kSent or kClaimed), link and wire id, queues the send
  // in `actions` and returns true. Returns false, changing nothing, if it
  // cannot (not ready, in a backoff, not a chunk it carries).
  virtual bool TakeLocked(Chunk* c, Clock::time_point now, Actions* actions) = 0;
  // `c`, taken by this transport, is past its deadline. Returns true if the
  // transport let go of it (the core fails it now), with `why` saying what
  // became of it; false if only its holder can hand it back (a kClaimed
  // chunk), in which case the transport may end the link that holds it.
  virtual bool ReleaseExpiredLocked(Chunk* c, Actions* actions, std::string* why) = 0;
  // Chunks taken and not yet handed back: they count in the window.
  virtual size_t InFlightLocked() const = 0;
  // The volume closes, nothing in flight: end every link.
  virtual void CloseLocked(Actions* actions) = 0;
  // True once no link of this transport can call into the core any more
  // (VolumeCore::Close waits for it).
  virtual bool GoneLocked() const = 0;
  // Sets this transport's counters in `stats` (streams, messages, NBD).
  virtual void AddStatsLocked(VolumeStats* stats) const = 0;
};

}  // namespace cowblk::internal

#endif  // COWBLK_CLIENT_SRC_TRANSPORT_H_
