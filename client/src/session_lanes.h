// The Session transport of a volume: its lanes, one cowblk.v1.BlockService/
// Session stream each (session_call.h), spread over the client's channels.
// It carries every kind of chunk, encoded as SessionRequests
// (proto/session_codec.h) under a wire id of its own, on the lane with the
// fewest in flight; a lane without a stream starts one.
//
// Its part of the retry rules (volume_core.h):
// - A stream that ends with a retryable status (UNAVAILABLE, CANCELLED,
//   ABORTED, INTERNAL, UNKNOWN, DEADLINE_EXCEEDED, or OK without answering)
//   hands its unanswered chunks back for a retry; any other status fails
//   them with it (NOT_FOUND: the volume was deleted; PERMISSION_DENIED ...).
// - A chunk answered UNAVAILABLE (the stream's volume handle closed) is
//   handed back for a retry and its stream cancelled, so that the next one
//   binds the volume afresh.
// - A stream that ended without a single OK answer delays the next stream
//   of its lane (backoff from 50 ms, doubling up to
//   ClientOptions::max_backoff).
// - A chunk past its deadline is let go of, and the stream it was sent on
//   cancelled (it is stuck or too slow: start afresh).
// - Each stream tells the core the server's epoch (`cowblk-epoch`) before
//   its first answer is handed on.
// A read answered OK is kClaimed while its data is copied into the
// caller's buffer without the lock; it completes itself.
//
// Thread-safety: state guarded by the VolumeCore's lock (transport.h); the
// On... reactions come from SessionCalls on gRPC's threads without it.

#ifndef COWBLK_CLIENT_SRC_SESSION_LANES_H_
#define COWBLK_CLIENT_SRC_SESSION_LANES_H_

#include <grpcpp/grpcpp.h>

#include <atomic>
#include <chrono>
#include <cstdint>
#include <memory>
#include <string>
#include <unordered_map>
#include <vector>

#include "client/src/client_core.h"
#include "client/src/transport.h"
#include "proto/session_codec.h"

namespace cowblk::internal {

class SessionCall;
class VolumeCore;

class SessionLanes final : public Transport {
 public:
  // The lanes of volume `volume` of `core`, on `client`'s channels (both
  // outlive this).
  SessionLanes(VolumeCore* core, ClientCore* client, std::string volume,
               const VolumeOptions& options);

  // Transport.
  bool TakeLocked(Chunk* c, Clock::time_point now, Actions* actions) override;
  bool ReleaseExpiredLocked(Chunk* c, Actions* actions, std::string* why) override;
  size_t InFlightLocked() const override { return sent_.size(); }
  void CloseLocked(Actions* actions) override;
  bool GoneLocked() const override { return live_streams_ == 0; }
  void AddStatsLocked(VolumeStats* stats) const override;

  // From SessionCall reactions (no lock held). `answer`'s data is valid
  // only during the call.
  void OnAnswer(SessionCall* stream, const wire::Answer& answer);
  void OnStreamDone(SessionCall* stream, const grpc::Status& status);
  // Before the first answers of a stream: the server's epoch of the volume.
  void OnStreamEpoch(const std::string& epoch);
  // From ~SessionCall: the stream can call no more.
  void OnStreamGone();
  // A message was sent, or received.
  void CountMessageSent() { messages_sent_.fetch_add(1, std::memory_order_relaxed); }
  void CountMessageReceived() { messages_received_.fetch_add(1, std::memory_order_relaxed); }

 private:
  struct Lane {
    std::shared_ptr<SessionCall> stream;
    int channel = 0;
    int in_flight = 0;
    bool stream_ok = false;      // the stream has answered a request OK
    Clock::time_point retry_at;  // no new stream before this
    std::chrono::milliseconds backoff{0};
  };

  // All REQUIRE the lock.
  Lane* PickLaneLocked(Clock::time_point now);
  Lane& LaneOf(const Chunk& c);
  // Takes a kSent chunk out of this transport's books.
  void UnsendLocked(Chunk* c);
  // Chunk `c` as an encoded SessionRequest with wire id `id` (a write's
  // data copied in while the chunk is surely alive).
  grpc::Slice EncodeLocked(const Chunk& c, uint64_t id) const;

  VolumeCore* const core_;
  ClientCore* const client_;
  const std::string volume_;
  const size_t max_batch_;  // VolumeOptions::max_batch
  const std::chrono::milliseconds max_backoff_;
  std::atomic<uint64_t> messages_sent_{0};
  std::atomic<uint64_t> messages_received_{0};

  // Guarded by the VolumeCore's lock.
  std::vector<Lane> lanes_;
  std::unordered_map<uint64_t, Chunk*> sent_;  // kSent, by wire id
  uint64_t next_id_ = 1;
  int live_streams_ = 0;      // SessionCall objects not yet destroyed
  uint64_t streams_started_ = 0;
};

}  // namespace cowblk::internal

#endif  // COWBLK_CLIENT_SRC_SESSION_LANES_H_
