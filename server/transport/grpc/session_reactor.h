// The Session stream (cowblk.v1.BlockService.Session) as a codec over the
// request pipeline (server/core): requests are parsed as SessionRequest,
// each becomes a core::Call; answers are written as SessionResponse, a
// read's data as a slice that owns the page-aligned buffer the engine read
// into (no zero-fill, no copy into a message). The stream is raw gRPC
// (ByteBuffer) for that reason; reflection is unaffected.
//
// Batches (docs/design.md, "The Session wire path"): a message may carry
// many requests (`batch`, at most --max-in-flight); they are submitted together (one engine
// wake-up). A client that sends `cowblk-batch: 1` gets the answers that are
// ready together in one message, up to 512 answers or 4 MiB.
//
// Back-pressure: the stream stops reading while the pipeline's window is
// full (--max-in-flight requests, --max-stream-bytes of their buffers, or
// the server's --max-server-bytes: core/budget.h); a request counts until
// its answer was written. A batch is taken one request at a time: when the
// window fills in the middle of a message, the rest waits for room.
//
// Messages are decoded lazily (proto/session_decoder.h): a message whose
// batch holds more requests than the window ends the stream
// RESOURCE_EXHAUSTED, bytes that are not a SessionRequest end it
// INVALID_ARGUMENT; either way nothing of that message is handled. The
// token is checked before the stream is opened (block_service.cc): a call
// without a valid one reads nothing.
//
// Send timeout: a client that takes no answer for --grpc-send-timeout-seconds
// (an answer write outstanding that long) is cut by the server's
// SendWatchdog (core/send_watchdog.h): the stream is cancelled and the bytes
// of its calls go back to the budget.
//
// Status: a client that cancels once every answer was written closed the
// stream normally, as one that half-closes: it ends OK, and
// grpc_server_handled_total counts a success. A stream that ends with
// answers not written (the client gave up on them) or that the server cut
// ends CANCELLED.
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

#include "absl/status/status.h"
#include "common/handoff.h"
#include "proto/session_decoder.h"
#include "server/core/pipeline.h"
#include "server/core/send_watchdog.h"
#include "server/transport/grpc/call_tracker.h"

namespace cowblk::rpc {

class BlockServiceImpl;

class SessionReactor final : public grpc::ServerBidiReactor<grpc::ByteBuffer, grpc::ByteBuffer>,
                             public CallTracker::DrainListener,
                             public core::Pipeline::Sink,
                             public core::SendWatchdog::Watched {
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
  // The server's byte budget has room again (on the budget's thread).
  void OnBudgetRoom();
  // An answer has waited for the client --grpc-send-timeout-seconds: logged
  // (grpc_send_timeout) and the stream cancelled, which drops its answers.
  void OnSendTimeout() override;

 private:
  // Handles the requests of the message decoder_ started on (one, a batch,
  // or both) while the window has room; pauses when it has none.
  void Continue();
  // Whether a paused message is to be continued now (it is then no longer
  // paused: the caller calls Continue once it released mu_).
  bool ResumeLocked();
  // Handles one request; `volume` names its volume (empty: the one bound),
  // and a non-OK `refusal` answers it with that status. False when the
  // server's byte budget has no room for it yet: it is handled again once
  // the budget calls back.
  bool HandleOne(const wire::DecodedRequest& req, const std::string& volume,
                 const absl::Status& refusal);
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
  // The receiving side's, between StartRead and the end of OnReadDone: the
  // read buffer, its slices, and their decoder (with one entry of a batch).
  grpc::ByteBuffer in_raw_;
  std::vector<grpc::Slice> in_slices_;
  wire::SessionDecoder decoder_;
  wire::DecodedRequest entry_;
  bool head_pending_ = false;  // the message's own request is still to be handled
  bool entry_pending_ = false;  // entry_ is decoded but still to be handled
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
  // An answer was dropped or its write failed, a message was left half
  // handled, or the send timeout cut the stream: the stream ends CANCELLED
  // (counted as a failure). Without it a cancelled stream ends as it would
  // have anyway (OK): the client took every answer, then closed.
  bool lost_ = false;
  bool drained_ = false;
  absl::Status refused_;  // the stream's input was refused: its final status
  bool handling_ = false;  // a message is being handled, or paused
  bool paused_ = false;    // its handling waits for room in the window
  bool finished_ = false;
  uint64_t messages_read_ = 0, messages_written_ = 0;  // for session_cancelled
};

}  // namespace cowblk::rpc

#endif  // COWBLK_SERVER_TRANSPORT_GRPC_SESSION_REACTOR_H_
