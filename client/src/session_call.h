// One cowblk.v1.BlockService/Session stream of a volume lane: sends the
// requests it is given, one gRPC write at a time (requests that queue behind
// a write leave together in the next message's `batch`, once the server has
// said it takes batches), reads answers as they come (several per message:
// it asks for that) and hands each to its SessionLanes. It knows nothing of
// windows, deadlines or retries: when the stream ends, the lanes decide
// what to do with the requests it had sent on it.
//
// Lifetime: shared. The lane holds one reference, senders hold one while
// they send, and the stream holds itself until OnDone(); gRPC never touches
// it after OnDone(). The SessionLanes outlive it (their volume waits for
// OnStreamGone). Thread-safety: Send() and Cancel() may be called from any
// thread at any time; reactions may run on any thread.

#ifndef COWBLK_CLIENT_SRC_SESSION_CALL_H_
#define COWBLK_CLIENT_SRC_SESSION_CALL_H_

#include <grpcpp/grpcpp.h>

#include <atomic>
#include <deque>
#include <memory>
#include <mutex>

#include "client/src/client_core.h"
#include "client/src/transport.h"
#include "common/handoff.h"
#include "proto/session_codec.h"

namespace cowblk::internal {

class SessionLanes;

// Raw messages (ByteBuffer): requests come encoded (proto/session_codec.h)
// and answers are parsed by the same codec, so read data is copied straight into the caller's buffer.
class SessionCall final : public grpc::ClientBidiReactor<grpc::ByteBuffer, grpc::ByteBuffer>,
                          public Carrier {
 public:
  // Binds a new call on channel `channel` of `client` for lane `lane` of
  // `lanes`. Nothing is sent until Start(); Send() may come first.
  // REQUIRES: Start() is called once, without the volume's lock held.
  // At most `max_batch` requests leave in one message.
  static std::shared_ptr<SessionCall> Create(SessionLanes* lanes, int lane,
                                             const ClientCore& client, int channel,
                                             size_t max_batch);

  // Starts the call (reading answers). Never blocks.
  void Start() override;
  // Queues `out.message` (an encoded SessionRequest) for sending. Drops it
  // once the stream has ended; the lanes learn of the end in OnStreamDone().
  void Send(Outgoing out) override;
  // Ends the stream (CANCELLED) if it has not ended.
  void Cancel() override { ctx_->TryCancel(); }

  int lane() const { return lane_; }
  // A line for error messages: what the stream is doing.
  std::string DebugState();
  // The server's epoch of the volume (`cowblk-epoch`), empty until the
  // first answer arrived. Set before that answer is handed on.
  const std::string& epoch() const { return epoch_; }

  // Public for make_shared only; use Create().
  SessionCall(SessionLanes* lanes, int lane, size_t max_batch)
      : lanes_(lanes),
        lane_(lane),
        max_batch_(max_batch),
        ctx_(std::make_unique<grpc::ClientContext>()) {}
  // Tells the lanes the stream is gone (SessionLanes::OnStreamGone()).
  ~SessionCall() override;

 private:
  void OnReadInitialMetadataDone(bool ok) override;
  void OnReadDone(bool ok) override;
  void OnWriteDone(bool ok) override;
  void OnDone(const grpc::Status& status) override;

  // Reads the server's initial metadata (batch limit, epoch) the first time
  // either reaction asks; tells the lanes the epoch before returning.
  void LearnInitialMetadata();
  // The stream ended: no more writes; lets OnDone() come once the write in
  // progress (if any) completed.
  void EndWrites();
  // Sends what queued while this thread was corked (see OnReadDone).
  void Uncork();
  // Moves the front of out_ (with what queued behind it, as its batch) into
  // message_. REQUIRES: mu_ held, out_ not empty.
  void BuildMessageLocked();

  static constexpr size_t kMaxBatchBytes = 4 << 20;

  SessionLanes* const lanes_;  // outlive the call: their volume waits for the destructor
  const int lane_;
  const size_t max_batch_;  // the volume's limit of requests per message
  // Holds a reference to the channel. Dropped first in the destructor: the
  // last reference to a grpc::Channel must not go on a gRPC thread (that
  // corrupts gRPC's callback queue), so the volume keeps the client, and
  // with it the channels, until every stream is destroyed.
  std::unique_ptr<grpc::ClientContext> ctx_;
  grpc::ByteBuffer in_;                // touched only between StartRead and OnReadDone
  std::shared_ptr<SessionCall> self_;  // set by Create(), dropped in OnDone()
  // Published by Start() before StartCall; received first in each gRPC
  // reaction (common/handoff.h).
  HandOff handoff_;

  // Guards the context's initial metadata (filled lazily, unlocked, by
  // gRPC) and epoch_. Taken before mu_ or the volume's lock, never while
  // holding them.
  std::mutex metadata_mu_;
  // Set (release) once epoch_ is written and the volume told.
  std::atomic<bool> metadata_learned_{false};
  std::string epoch_;  // written once under metadata_mu_, before any answer is handed on

  std::mutex mu_;                                        // guards everything below
  std::deque<grpc::Slice> out_;  // encoded requests waiting for the next message
  grpc::ByteBuffer message_;     // the message being written (while writing_)
  bool writing_ = false;
  bool ended_ = false;
  // Requests per message: 1 until the server's `cowblk-batch-max` initial
  // metadata says it takes batches, then the smaller of that and max_batch_.
  size_t batch_max_ = 1;
  bool hold_released_ = false;
  bool corked_ = false;  // on a corked thread's list (mu_)
  uint64_t writes_started_ = 0, writes_done_ = 0;  // mu_ (for DebugState)
  std::atomic<uint64_t> reads_done_{0};  // OnReadDone only (one read at a time)
};

}  // namespace cowblk::internal

#endif  // COWBLK_CLIENT_SRC_SESSION_CALL_H_
