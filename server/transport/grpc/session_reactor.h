// The Session stream (cowblk.v1.BlockService.Session) as a codec over the
// request pipeline (server/core): requests are parsed as SessionRequest,
// each becomes a core::Call; answers are written as SessionResponse, a
// read's data as a slice that owns the page-aligned buffer the engine read
// into (no zero-fill, no copy into a message). The stream is raw gRPC
// (ByteBuffer) for that reason; reflection is unaffected.
//
// Batches (docs/design.md, "The Session wire path"): a message may carry
// many requests (`batch`); they are submitted together (one engine
// wake-up). A client that sends `cowblk-batch: 1` gets the answers that are
// ready together in one message, up to 512 answers or 4 MiB.
//
// Back-pressure: the stream stops reading while the pipeline's window is
// full (--max-in-flight requests, or their buffers' byte budget); a
// request counts until its answer was written.
//
// Lifetime (gRPC's callback API): the reactor owns its per-call state,
// never blocks, and frees itself only in OnDone; it calls Finish only once
// the pipeline is idle, so nothing of the engine's can reach it after.

#ifndef COWBLK_SERVER_TRANSPORT_GRPC_SESSION_REACTOR_H_
#define COWBLK_SERVER_TRANSPORT_GRPC_SESSION_REACTOR_H_

#include <grpcpp/grpcpp.h>

#include <cstdint>
#include <deque>
#include <memory>
#include <mutex>
#include <string>
#include <vector>

#include "common/handoff.h"
#include "cowblk/v1/block.pb.h"
#include "server/core/pipeline.h"
#include "server/transport/grpc/call_tracker.h"

namespace cowblk::rpc {

class BlockServiceImpl;

class SessionReactor final : public grpc::ServerBidiReactor<grpc::ByteBuffer, grpc::ByteBuffer>,
                             public CallTracker::DrainListener,
                             public core::Pipeline::Sink {
 public:
  // `service` outlives the reactor; the caller has counted the call in the
  // service's CallTracker (Begin), which OnDone ends.
  SessionReactor(BlockServiceImpl* service, grpc::CallbackServerContext* ctx);

  // The drain started: read no more requests; once the ones in flight are
  // answered, end the stream UNAVAILABLE even while a read waits (an idle
  // client would otherwise hold the drain open).
  void OnDrain() override;
  void OnReadDone(bool ok) override;
  void OnWriteDone(bool ok) override;
  void OnCancel() override;
  void OnDone() override;
  void OnAnswered(absl::Span<core::Call* const> calls) override;

 private:
  // Handles the message in `in_`: one request, a batch, or both.
  void Handle();
  // Handles one request; `volume` names its volume (empty: the one bound),
  // and a non-OK `refusal` answers it with that status.
  void HandleOne(v1::SessionRequest* req, const std::string& volume, const absl::Status& refusal);
  // Binds the stream to its volume on the first request.
  absl::Status Bind(const std::string& name);
  // All REQUIRE mu_ held.
  void StartWriteLocked();
  void DropQueueLocked();
  void MaybeReadLocked();
  void MaybeFinishLocked();

  BlockServiceImpl* const service_;
  grpc::CallbackServerContext* const ctx_;
  const uint32_t max_in_flight_;
  const std::string peer_;  // for the logs (gRPC forgets it once cancelled)
  core::Pipeline pipeline_;
  grpc::ByteBuffer in_raw_;  // the read buffer; touched only between StartRead and OnReadDone
  v1::SessionRequest in_;    // in_raw_ parsed, until the next StartRead
  grpc::ByteBuffer out_raw_;  // the message being written
  bool batch_answers_ = false;  // the client sent `cowblk-batch: 1`
  // Published last in the constructor; received first in each gRPC
  // reaction (common/handoff.h).
  HandOff handoff_;

  std::mutex mu_;  // guards everything below
  std::deque<core::Call*> queue_;     // answered, waiting for the message being written
  std::vector<core::Call*> written_;  // in the message being written
  bool reading_ = false;
  bool writing_ = false;
  bool reads_done_ = false;
  bool cancelled_ = false;
  bool broken_ = false;
  bool drained_ = false;
  bool malformed_ = false;
  bool handling_ = false;  // OnReadDone is handling a message
  bool finished_ = false;
  uint64_t messages_read_ = 0, messages_written_ = 0;  // for session_cancelled
};

}  // namespace cowblk::rpc

#endif  // COWBLK_SERVER_TRANSPORT_GRPC_SESSION_REACTOR_H_
