// The engine of a cowblk::Volume: the queue of wire requests, the in-flight
// window, the lanes (one Session stream each), deadlines, and what happens to
// the requests of a stream that broke.
//
// Terms: an IoCall is one call of the public API; it owns one or more Chunks,
// each a wire request (a whole small call, or one piece of a large read or
// write). A chunk is queued, then sent on a lane's stream, then answered; or
// it is held (a flush waiting for retried writes), or it expires.
//
// Retry rules (see volume.h for the contract):
// - A stream that ends with a retryable status (UNAVAILABLE, CANCELLED,
//   ABORTED, INTERNAL, UNKNOWN, DEADLINE_EXCEEDED, or OK without answering)
//   puts its unanswered chunks back at the head of the queue in submission
//   order; any other status fails them with it.
// - A chunk answered UNAVAILABLE (its volume handle on the server closed:
//   deleted, or the server is stopping) is retried the same way, and its
//   stream is cancelled so the next one binds the volume afresh.
// - A retried flush waits (held) until every retried non-flush chunk has
//   completed, so it covers the rewrites.
// - A stream that ended without a single OK answer delays the next stream of
//   its lane (backoff from 50 ms, doubling up to ClientOptions::max_backoff).
// - A chunk past its call's deadline fails DEADLINE_EXCEEDED, and the stream
//   it was sent on is cancelled (it is stuck or too slow: start afresh).
// - Each stream learns the volume's epoch from the server (`cowblk-epoch`).
//   When it changes while writes acknowledged since the last good flush
//   exist, those may be lost: the next flush fails DATA_LOSS, once.
//
// The NBD path (VolumeOptions::nbd): a stream also learns the port of the
// server's NBD export (`cowblk-nbd-port`). Once a chunk for it (a write of
// nbd_min_write_bytes or a read of nbd_min_read_bytes and more) was
// submitted, the volume keeps one NbdCall to that port; once its handshake
// is done, such chunks go there instead of to a lane. Such a chunk is
// kClaimed, owned by the connection until handed back (nbd_call.h):
// - answered OK: done, as over a stream (a write counts for epochs);
// - answered with an error: sent again over a stream (never over NBD
//   again), so the caller sees the server's own status and message; an
//   UNAVAILABLE answer also ends the connection;
// - still unanswered when the connection ends: retried like a broken
//   stream's chunks, or failed DEADLINE_EXCEEDED if past its deadline. A
//   deadline cuts the connection (nothing else can free a chunk whose
//   buffer it may be using), and the connection's other chunks are
//   retried, as a stuck stream's are.
// A connection that ends is dialled again at once if it had served, else
// after a backoff (50 ms doubling to ClientOptions::max_backoff), at the
// port a stream last told. Epochs stay with the streams: a restart ends the
// connection, and writes acknowledged over it count like any other.
//
// Locking: one mutex guards all state. gRPC operations (start, write,
// cancel) and user callbacks run with it released, collected as Actions.
//
// Lifetime: Close() returns once every SessionCall is destroyed, so no gRPC
// reaction can reach a destroyed VolumeCore, and the channels (which the
// streams' contexts reference) are never released last on a gRPC thread.

#ifndef COWBLK_CLIENT_SRC_VOLUME_CORE_H_
#define COWBLK_CLIENT_SRC_VOLUME_CORE_H_

#include <grpcpp/grpcpp.h>

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <deque>
#include <list>
#include <memory>
#include <mutex>
#include <string>
#include <unordered_map>
#include <utility>
#include <vector>

#include "absl/status/status.h"
#include "client/src/client_core.h"
#include "cowblk/types.h"
#include "cowblk/v1/block.pb.h"
#include "cowblk/volume.h"
#include "proto/session_codec.h"

namespace cowblk::internal {

class SessionCall;
class NbdCall;
using Clock = std::chrono::steady_clock;

enum class OpKind { kRead, kWrite, kFlush, kTrim, kWriteZeroes };

struct IoCall;

struct Chunk {
  enum class State { kQueued, kHeld, kSent, kClaimed, kDone };

  IoCall* call = nullptr;
  OpKind kind = OpKind::kRead;
  uint64_t offset = 0;
  uint64_t length = 0;
  char* dest = nullptr;       // kRead: where the answer goes
  const char* src = nullptr;  // kWrite: the caller's bytes
  bool fua = false;
  bool nbd_refused = false;  // answered with an error over NBD: streams only

  State state = State::kQueued;
  uint64_t seq = 0;               // submission order
  uint64_t covers = 0;            // kFlush: writes_acked_ when last sent
  uint64_t id = 0;                // wire id while kSent (new for every send)
  SessionCall* stream = nullptr;  // while kSent
  NbdCall* nbd = nullptr;         // while kClaimed by an NBD connection
  int lane = -1;                  // while kSent
  int attempts = 0;               // sends so far
  bool retried = false;           // a non-flush chunk counted in retried_
  absl::Status last_error;        // why it was last retried
};

struct IoCall {
  IoCallback done;
  Clock::time_point deadline;
  absl::Status status;   // the first failure of a chunk
  size_t remaining = 0;  // chunks not done
  std::vector<std::unique_ptr<Chunk>> chunks;
  std::list<std::unique_ptr<IoCall>>::iterator self;  // in VolumeCore::active_
};

class VolumeCore {
 public:
  // REQUIRES: options are valid (Volume checked them). `size`: the
  // volume's, which its NBD export must have.
  VolumeCore(std::shared_ptr<ClientCore> client, std::string name, uint64_t size,
             const VolumeOptions& options);
  // Close()s.
  ~VolumeCore();
  VolumeCore(const VolumeCore&) = delete;
  VolumeCore& operator=(const VolumeCore&) = delete;

  // Queues the chunks of `call` (each with its kind and range set) and
  // sends what the window allows. Fails `call` at once if closed.
  void Submit(std::unique_ptr<IoCall> call);
  // Waits for the calls in progress, then ends the streams and waits for
  // them. Later Submit()s fail FAILED_PRECONDITION.
  void Close();
  VolumeStats stats() const;

  // From SessionCall reactions (no lock held).
  // `data` (a read's answer) is valid only during the call.
  void OnResponse(SessionCall* stream, uint64_t id, int code, std::string message,
                  const wire::DataView& data);
  void OnStreamDone(SessionCall* stream, const grpc::Status& status);
  // From ~SessionCall (no lock held).
  void OnStreamGone();
  // From SessionCall, before the first answers of a stream: the server's
  // epoch of this volume, and its NBD export's port ("" if none).
  void OnStreamMetadata(const std::string& epoch, const std::string& nbd_port);
  // From NbdCall's thread (no lock held; see nbd_call.h).
  void OnNbdReady(NbdCall* nbd, bool fua);
  void OnNbdAnswer(NbdCall* nbd, Chunk* c, const absl::Status& answer);
  void OnNbdGone(NbdCall* nbd, std::vector<Chunk*> leftovers, const absl::Status& why);
  // From SessionCall: a message was sent, or received.
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
  // What to do once the lock is released, in this order.
  struct Actions {
    std::vector<std::shared_ptr<SessionCall>> starts;
    std::vector<std::pair<std::shared_ptr<SessionCall>, grpc::Slice>> sends;  // encoded requests
    std::vector<std::shared_ptr<SessionCall>> cancels;
    std::vector<std::unique_ptr<IoCall>> completed;
    std::vector<std::shared_ptr<NbdCall>> nbd_starts;
    std::vector<std::pair<std::shared_ptr<NbdCall>, Chunk*>> nbd_sends;
    std::vector<std::shared_ptr<NbdCall>> nbd_cancels;
  };

  // The ticker's work: deadlines, and lanes whose backoff has passed.
  bool Tick(Clock::time_point now);
  void Run(Actions* actions);

  // All REQUIRE mu_ held.
  void DispatchLocked(Clock::time_point now, Actions* actions);
  Lane* PickLaneLocked(Clock::time_point now);
  // Dials the NBD export if it is known, wanted and not in backoff.
  void MaybeDialNbdLocked(Clock::time_point now, Actions* actions);
  // Whether `c` is a read or write the options send over NBD; ...Locked:
  // and it can go now.
  bool ForNbd(const Chunk& c) const;
  bool ForNbdLocked(const Chunk& c) const;
  // Chunk `c` as an encoded SessionRequest with wire id `id` (a write's data
  // copied in, while the chunk is surely alive).
  grpc::Slice BuildRequestLocked(const Chunk& c, uint64_t id) const;
  // Takes a kSent chunk out of the window.
  void UnsendLocked(Chunk* c);
  // Puts unanswered chunks (in submission order) back for another send.
  void RequeueLocked(std::vector<Chunk*> chunks, const absl::Status& why);
  void ReleaseHeldLocked();
  void FinishLocked(Chunk* c, const absl::Status& status, Actions* actions);
  void ExpireLocked(IoCall* call, Actions* actions);

  const std::shared_ptr<ClientCore> client_;
  const std::string name_;
  const size_t max_in_flight_;
  const size_t max_batch_;  // VolumeOptions::max_batch
  std::atomic<uint64_t> messages_sent_{0};
  std::atomic<uint64_t> messages_received_{0};
  const std::chrono::milliseconds max_backoff_;
  const uint64_t size_;
  // Where the NBD export is dialled; empty: never (VolumeOptions::nbd off,
  // TLS, a token, or a target without a TCP host).
  const std::string nbd_host_;
  const uint64_t nbd_min_read_bytes_;
  const uint64_t nbd_min_write_bytes_;
  uint64_t tick_id_ = 0;

  mutable std::mutex mu_;       // guards everything below
  std::condition_variable cv_;  // a call completed, or a stream ended
  std::vector<Lane> lanes_;
  std::list<std::unique_ptr<IoCall>> active_;  // calls not yet completed
  std::deque<Chunk*> queue_;                   // kQueued, head first
  std::vector<Chunk*> held_;                   // kHeld flushes, in order
  std::unordered_map<uint64_t, Chunk*> sent_;  // kSent, by wire id
  size_t in_flight_ = 0;                       // sent_.size()
  size_t retried_ = 0;                         // retried non-flush chunks not yet done
  int live_streams_ = 0;                       // SessionCall objects not yet destroyed
  int completing_ = 0;  // calls out of active_ whose callback has not returned
  uint64_t next_id_ = 1;
  uint64_t next_seq_ = 1;
  bool closing_ = false;
  bool closed_ = false;
  VolumeStats stats_;
  // Epochs (see the retry rules above).
  std::string epoch_;           // empty until a stream told it
  uint64_t writes_acked_ = 0;   // write, trim and write-zeroes chunks answered OK
  uint64_t writes_flushed_ = 0; // ... of which a good flush covered the first ones
  absl::Status lost_;           // for the next flush answered OK in epoch_
  uint64_t lost_upto_ = 0;      // writes_acked_ when lost_ was set
  // The NBD path (see the top of this file).
  std::string nbd_port_;              // as a stream last told; empty: no export
  bool nbd_wanted_ = false;           // a chunk large enough for it was submitted
  std::shared_ptr<NbdCall> nbd_;      // the connection, from dial to OnNbdGone
  bool nbd_ready_ = false;            // nbd_ finished its handshake
  bool nbd_fua_ = false;              // ... and takes FUA writes
  Clock::time_point nbd_retry_at_;    // no dial before this
  std::chrono::milliseconds nbd_backoff_{0};
  int live_nbd_ = 0;                  // NbdCalls started whose OnNbdGone has not returned
};

}  // namespace cowblk::internal

#endif  // COWBLK_CLIENT_SRC_VOLUME_CORE_H_
