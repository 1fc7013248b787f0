// The server's one request pipeline: every transport (the gRPC Session and
// unary calls, the NBD export) is a codec over it. A transport decodes its
// wire format into Calls; the pipeline decides what the engine is asked and
// keeps what every transport needs in one place:
//  - the volume a stream or connection is bound to, and whether it may
//    write;
//  - validation of each request against that volume (common/block_range.h)
//    before anything is allocated or submitted;
//  - the engine request of each op, with the capabilities the transport
//    asked for: reads answered with where the data lies instead of a copy
//    (zero-copy), writes whose data this thread writes itself (inline);
//  - buffers (page-aligned, not zeroed);
//  - the window: calls in flight and the buffer bytes they hold, checked by
//    the transport before it takes another request; the bytes are also
//    taken from the server-wide budget (budget.h), and a transport told
//    "no room" for its sake is called back when there is;
//  - one engine wake-up per burst of submissions (engine::SubmitBatch);
//  - answers handed over once per batch of engine completions, so answers
//    that complete together leave together (engine::BatchEndListener);
//  - one log line per failed request (`request_failed`).
// The engine decides what happens to the data; the transport decides how
// the bytes move.
//
// Thread-safety: Begin, Submit, Refuse and FlushSubmissions are called by
// one thread at a time (the transport's receiving side). Finish, HasRoom,
// idle and the counters may be called from any thread. Sink::OnAnswered
// runs on an engine thread, or on the thread that called Submit or Refuse
// (a request refused before the engine): call those without holding a lock
// that OnAnswered takes.

#ifndef COWBLK_SERVER_CORE_PIPELINE_H_
#define COWBLK_SERVER_CORE_PIPELINE_H_

#include <atomic>
#include <cstdint>
#include <functional>
#include <list>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <vector>

#include "absl/types/span.h"
#include "server/core/budget.h"
#include "server/core/call.h"
#include "server/core/in_flight_gauges.h"
#include "server/engine/engine.h"
#include "server/store/volume_handle.h"

namespace cowblk::core {

struct PipelineOptions {
  // Names the transport in logs: "session", "nbd", "read", ...
  std::string transport;
  // The client, in logs.
  std::string peer;
  // Calls begun and not finished before HasRoom() says no.
  uint32_t max_in_flight = 256;
  // Buffer bytes (read buffers, write payloads) of those calls before
  // HasRoom() says no (--max-stream-bytes). With requests of up to 32 MiB
  // each, memory would otherwise follow the client's whims. A request of
  // more is refused RESOURCE_EXHAUSTED.
  uint64_t max_bytes = uint64_t{64} << 20;
  // The server-wide budget the bytes are taken from (outlives the
  // pipeline); null: none. A request of more than its limit is refused.
  Budget* budget = nullptr;
  // Called, on the budget's thread, once the budget has room again after
  // HasRoom() said no for its sake: the transport looks at HasRoom() again.
  std::function<void()> on_budget_room;
  // The transport gains from a short latency more than from a free core:
  // with EngineOptions::poll_us the engine polls after these requests.
  bool poll_after = false;
  // Reads of at least this many bytes are answered located (Call::located)
  // when the volume's files can be opened; 0: never.
  uint64_t zero_copy_min_bytes = 0;
  // Writes are written into the COW file by the submitting thread
  // (store::VolumeHandle::WriteAndSubmit) when the volume's files can be
  // opened.
  bool inline_writes = false;
};

class Pipeline final : public engine::BatchEndListener, private Budget::Waiter {
 public:
  class Sink {
   public:
    virtual ~Sink() = default;
    // `calls` were answered (Call::status and the data are set). Once this
    // returns, the pipeline does not touch them until Finish. The pipeline
    // touches nothing of its own after calling this, so the sink may end
    // the transport (and destroy the pipeline) from here once it finished
    // every call.
    virtual void OnAnswered(absl::Span<Call* const> calls) = 0;
  };

  // `sink` must outlive the pipeline.
  Pipeline(Sink* sink, PipelineOptions options);
  // REQUIRES: idle().
  ~Pipeline();
  // No on_budget_room call starts after this returns, and none runs. A
  // transport whose callback touches its own members calls this before they
  // go (the destructor calls it too).
  void StopWaiting();
  Pipeline(const Pipeline&) = delete;
  Pipeline& operator=(const Pipeline&) = delete;

  // Binds the pipeline to `volume`, which it may write when `writable`;
  // opens the volume's files when a capability needs them (a failure is
  // logged, and that capability is off). Before any Submit; once.
  void Bind(std::shared_ptr<store::VolumeHandle> volume, bool writable);
  const std::shared_ptr<store::VolumeHandle>& volume() const { return volume_; }
  // Capabilities in effect after Bind.
  bool zero_copy() const { return zero_copy_min_bytes_ > 0 && files_ != nullptr; }
  bool inline_writes() const { return inline_writes_ && files_ != nullptr; }
  // The transport cannot send located reads after all (no pipe, say).
  void DisableZeroCopy() { zero_copy_min_bytes_ = 0; }
  // The volume's files, for sending located reads; null without them.
  const store::VolumeFiles* files() const { return files_.get(); }

  // Whether the window takes another call: below max_in_flight calls, and
  // with none in flight always (every client makes progress); else below
  // max_bytes and the budget's line (see budget.h; when only the budget
  // says no, on_budget_room is called once it says yes).
  bool HasRoom();
  // Takes a call into the window, holding `buffer_bytes` of the byte budget
  // (at most a request's limit is counted). The transport asks HasRoom()
  // first; the pipeline's own max_bytes may be passed by this one call, the
  // server's budget never: when `buffer_bytes` do not fit there, nothing is
  // taken, null is returned, HasRoom() says no and on_budget_room is called
  // once it may say yes (the transport keeps the request and begins it
  // again then). A request over max_request_bytes() takes no budget: Submit
  // refuses it.
  Call* Begin(uint64_t tag, uint64_t buffer_bytes);
  // The most one request may hold: max_bytes and the budget's limit.
  uint64_t max_request_bytes() const;
  // Validates `call` against the bound volume and submits it to the engine,
  // which FlushSubmissions wakes. A request that fails validation, or meets
  // a closed volume, is answered at once. REQUIRES: call->op is set; Bind()
  // was called; the transport does not end (destroy the pipeline) before
  // Submit and FlushSubmissions returned.
  void Submit(Call* call);
  // Submit with a wake-up of its own, for a transport with one call at a
  // time that may end as soon as it is answered: nothing of the pipeline is
  // touched once the engine has the call.
  void SubmitAlone(Call* call);
  // Answers `call` with `why` without submitting it (logged once).
  void Refuse(Call* call, absl::Status why);
  // Answers `call` OK without the engine: a request the transport served
  // itself (NBD's block status), its answer in the call (UseString).
  void AnswerDirectly(Call* call);
  // Wakes the engine for what Submit queued since the last flush. Call it
  // before the receiving thread blocks.
  void FlushSubmissions();
  // The transport is done with `call` (its answer sent or dropped): frees it
  // and gives its room back.
  void Finish(Call* call);
  // No call alive and no answer on its way to the sink: the transport may
  // end (and destroy the pipeline).
  bool idle() const;

  // The window's fill, for logs and metrics. Any thread.
  size_t in_flight() const;
  uint64_t bytes_in_flight() const;
  // What Submit did. The submitting thread, or any thread once it ended.
  struct Counters {
    uint64_t located_reads = 0;  // reads answered with where the data lies
    uint64_t inline_writes = 0;  // writes written by the submitting thread
  };
  const Counters& counters() const { return counters_; }

 private:
  void OnBatchEnd() override;
  void OnBudgetRoom() override;
  // Submit and SubmitAlone; `batch` null for the latter.
  void Start(Call* call, engine::SubmitBatch* batch);
  void OnEngineDone(Call* call, absl::Status status);
  void LogFailure(const Call& call) const;
  // Builds call->request_ for `op`; a status when it cannot (no memory).
  absl::Status Prepare(Call* call);

  Sink* const sink_;
  // Begin waits for the budget's callback: HasRoom says no until it came.
  std::atomic<bool> budget_wait_{false};
  const PipelineOptions options_;
  const int transport_;  // InFlightGauges::Of(options_.transport)
  uint64_t zero_copy_min_bytes_;
  bool inline_writes_;

  // Set by Bind, before any Submit; read by Submit and the send side.
  std::shared_ptr<store::VolumeHandle> volume_;
  bool writable_ = false;
  std::unique_ptr<store::VolumeFiles> files_;

  // The submitting thread's.
  std::optional<engine::SubmitBatch> batch_;
  Counters counters_;

  mutable std::mutex mu_;  // guards below
  std::list<Call> calls_;  // every call begun and not finished
  uint64_t bytes_ = 0;     // their window_bytes_
  std::vector<Call*> answered_;   // by the engine, not yet handed over
  bool batch_end_pending_ = false;  // the engine will call OnBatchEnd
};

}  // namespace cowblk::core

#endif  // COWBLK_SERVER_CORE_PIPELINE_H_
