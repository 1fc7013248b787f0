#include "server/transport/grpc/session_reactor.h"

#include <cstdlib>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "common/log.h"
#include "proto/session_codec.h"
#include "server/core/out_of_memory.h"
#include "server/transport/grpc/status_util.h"
#include "server/transport/grpc/block_service.h"

namespace cowblk::rpc {
namespace {

absl::StatusOr<engine::OpType> ToEngineOp(cowblk::v1::Op op) {
  switch (op) {
    case cowblk::v1::OP_READ:
      return engine::OpType::kRead;
    case cowblk::v1::OP_WRITE:
      return engine::OpType::kWrite;
    case cowblk::v1::OP_FLUSH:
      return engine::OpType::kFlush;
    case cowblk::v1::OP_TRIM:
      return engine::OpType::kTrim;
    case cowblk::v1::OP_WRITE_ZEROES:
      return engine::OpType::kWriteZeroes;
    default:
      return absl::InvalidArgumentError(
          absl::StrCat("op: ", static_cast<int>(op), " is not an operation"));
  }
}

void FreeReadBuffer(void* p) { std::free(p); }

// The answer of `c`: a read answered OK carries its data.
wire::AnswerFields Fields(const core::Call* c) {
  const absl::Status& s = c->status();
  wire::AnswerFields f;
  f.id = c->tag;
  f.code = static_cast<int32_t>(s.code());
  f.message = std::string_view(s.message().data(), s.message().size());
  f.data_length = s.ok() && c->op == engine::OpType::kRead ? c->length : 0;
  return f;
}

// Appends the answer of `c` to `slices`: its header, then the read data as
// a slice that owns c's buffer (gRPC frees it once sent).
void EncodeAnswer(core::Call* c, const wire::AnswerFields& f, bool batch_entry,
                  std::vector<grpc::Slice>* slices) {
  slices->push_back(wire::EncodeAnswerHeader(f, batch_entry));
  if (f.data_length != 0) slices->emplace_back(c->ReleaseBuffer(), f.data_length, &FreeReadBuffer);
}

core::PipelineOptions SessionPipeline(const BlockServiceOptions& o, std::string peer,
                                      SessionReactor* reactor) {
  core::PipelineOptions p;
  p.transport = "session";
  p.peer = std::move(peer);
  p.max_in_flight = o.max_in_flight;
  p.max_bytes = o.max_stream_bytes;
  p.budget = o.budget;
  p.on_budget_room = [reactor] { reactor->OnBudgetRoom(); };
  return p;
}

}  // namespace

SessionReactor::SessionReactor(BlockServiceImpl* service, grpc::CallbackServerContext* ctx)
    : service_(service),
      ctx_(ctx),
      max_in_flight_(service->options().max_in_flight),
      peer_(ctx->peer()),
      pipeline_(this, SessionPipeline(service->options(), peer_, this)) {
  const auto& md = ctx->client_metadata();
  auto it = md.find("cowblk-batch");
  batch_answers_ = it != md.end() && it->second == "1";
  // Tells the client how many requests one message may carry (sent with
  // the first answer).
  ctx->AddInitialMetadata("cowblk-batch-max", std::to_string(max_in_flight_));
  Log(LogLevel::kDebug, "session_started", {{"peer", peer_}});
  reading_ = true;
  StartRead(&in_raw_);
  service->calls()->Watch(this);
  if (auto* w = service->options().send_watchdog) w->Watch(this);
  handoff_.Publish();
}

void SessionReactor::OnSendTimeout() {
  {
    std::lock_guard<std::mutex> lock(mu_);
    Log(LogLevel::kWarning, "grpc_send_timeout",
        {{"call", "Session"},
         {"peer", peer_},
         {"volume", pipeline_.volume() ? pipeline_.volume()->name() : ""},
         {"in_flight", std::to_string(pipeline_.in_flight())},
         {"bytes_in_flight", std::to_string(pipeline_.bytes_in_flight())}});
    lost_ = true;  // the server cut it: a failure, whatever else happened
  }
  ctx_->TryCancel();  // no lock held: gRPC may call OnCancel from here
}

void SessionReactor::OnDrain() {
  std::lock_guard<std::mutex> lock(mu_);
  if (reads_done_) return;
  reads_done_ = drained_ = true;
  MaybeFinishLocked();
}

void SessionReactor::OnReadDone(bool ok) {
  handoff_.Receive();
  {
    std::lock_guard<std::mutex> lock(mu_);
    if (!ok || finished_) {
      // The client is done, or the stream ended (drained) while this read
      // waited: a request read now goes unanswered, and the client sends it
      // again after the UNAVAILABLE status.
      Log(LogLevel::kDebug, "session_reads_ended",
          {{"volume", pipeline_.volume() ? pipeline_.volume()->name() : ""},
           {"peer", peer_},
           {"ok", ok ? "1" : "0"},
           {"in_flight", std::to_string(pipeline_.in_flight())},
           {"cancelled", cancelled_ ? "1" : "0"},
           {"finished", finished_ ? "1" : "0"}});
      reading_ = false;
      reads_done_ = true;
      MaybeFinishLocked();
      return;
    }
    handling_ = true;
    ++messages_read_;
  }
  in_slices_.clear();
  absl::Status decoded = in_raw_.Dump(&in_slices_).ok()
                             ? decoder_.Start(in_slices_, max_in_flight_)
                             : absl::InvalidArgumentError("a Session message could not be read");
  if (!decoded.ok()) {
    // Nothing of the message is handled: answer what is in flight, then
    // end the stream with why.
    Log(LogLevel::kWarning, "session_refused",
        {{"peer", peer_}, {"error", std::string(decoded.message())}});
    in_slices_.clear();
    std::lock_guard<std::mutex> lock(mu_);
    reading_ = handling_ = false;
    reads_done_ = true;
    refused_ = std::move(decoded);
    MaybeFinishLocked();
    return;
  }
  head_pending_ = decoder_.batch_size() == 0 || decoder_.head().IsRequest();
  entry_pending_ = false;
  Continue();
}

// A batch: the message's own request first (if it holds one), then each
// request of the batch, as if they had come one per message; each only once
// the window has room for it, so a message asks for no more than a stream
// may hold.
void SessionReactor::Continue() {
  const wire::DecodedRequest& head = decoder_.head();
  while (true) {
    bool done = false;
    while (pipeline_.HasRoom()) {
      if (head_pending_) {
        // Still pending when the budget has no room for it yet.
        head_pending_ = !HandleOne(head, head.volume, absl::OkStatus());
      } else if (entry_pending_ || decoder_.NextEntry(&entry_)) {
        absl::Status refusal;
        if (entry_.has_batch) {
          refusal = absl::InvalidArgumentError("batch: a request in a batch carries no batch");
        }
        entry_pending_ =
            !HandleOne(entry_, entry_.volume.empty() ? head.volume : entry_.volume, refusal);
      } else {
        done = true;
        break;
      }
    }
    pipeline_.FlushSubmissions();  // one engine wake-up for what was submitted
    std::lock_guard<std::mutex> lock(mu_);
    if (done || cancelled_ || broken_) {  // nobody would read the rest's answers
      in_slices_.clear();
      reading_ = handling_ = false;
      MaybeReadLocked();
      MaybeFinishLocked();
      return;
    }
    // Out of room: an answer sent, or the budget's call, resumes.
    paused_ = true;
    if (!ResumeLocked()) return;
  }
}

bool SessionReactor::ResumeLocked() {
  if (!paused_ || !pipeline_.HasRoom()) return false;
  paused_ = false;
  return true;
}

void SessionReactor::OnBudgetRoom() {
  bool resume;
  {
    std::lock_guard<std::mutex> lock(mu_);
    resume = ResumeLocked();
    MaybeReadLocked();
  }
  if (resume) Continue();
}

bool SessionReactor::HandleOne(const wire::DecodedRequest& req, const std::string& volume,
                               const absl::Status& refusal) {
  const bool write = req.op == cowblk::v1::OP_WRITE;
  const uint64_t buffer = write ? req.data.size() : req.op == cowblk::v1::OP_READ ? req.length : 0;
  core::Call* call = pipeline_.Begin(req.id, buffer);
  if (call == nullptr) return false;  // the budget calls back
  auto op = ToEngineOp(static_cast<cowblk::v1::Op>(req.op));
  if (op.ok()) call->op = *op;
  call->offset = req.offset;
  call->fua = req.fua;
  call->length = write ? req.data.size() : req.length;  // a write's length is its data's
  absl::Status s = refusal;
  if (s.ok()) s = Bind(volume);
  if (s.ok()) s = op.status();
  if (s.ok() && write) {
    // Into a buffer of its own (the message's slices go with the message);
    // without memory for it, this request fails and the stream goes on.
    if (char* payload = call->PayloadBuffer(); payload != nullptr) {
      req.data.CopyTo(payload);
    } else {
      s = core::OutOfMemory("a write's data");
    }
  }
  if (!s.ok()) {
    pipeline_.Refuse(call, std::move(s));
    return true;
  }
  pipeline_.Submit(call);
  return true;
}

absl::Status SessionReactor::Bind(const std::string& name) {
  if (const auto& bound = pipeline_.volume()) {
    if (!name.empty() && name != bound->name()) {
      return absl::InvalidArgumentError(
          absl::StrCat("volume: this session serves ", bound->name(), ", not ", name));
    }
    return absl::OkStatus();
  }
  if (name.empty()) {
    return absl::InvalidArgumentError("volume: required in the first request of a session");
  }
  auto handle = service_->OpenVolume(*ctx_, name, Access::kRead);
  if (!handle.ok()) return handle.status();
  const bool writable = service_->OpenVolume(*ctx_, name, Access::kWrite).ok();
  // Bound by the first request, before any answer (which carries the
  // initial metadata) was written.
  if (!(*handle)->epoch().empty()) ctx_->AddInitialMetadata("cowblk-epoch", (*handle)->epoch());
  if (service_->options().nbd_port != 0) {
    ctx_->AddInitialMetadata("cowblk-nbd-port", std::to_string(service_->options().nbd_port));
  }
  pipeline_.Bind(*std::move(handle), writable);
  return absl::OkStatus();
}

void SessionReactor::OnAnswered(absl::Span<core::Call* const> calls) {
  bool resume;
  {
    std::lock_guard<std::mutex> lock(mu_);
    if (broken_ || cancelled_) {  // nobody will read them
      for (core::Call* c : calls) pipeline_.Finish(c);
      if (!calls.empty()) lost_ = true;
    } else {
      queue_.insert(queue_.end(), calls.begin(), calls.end());
      if (!writing_) {
        writing_ = true;
        StartWriteLocked();
      }
    }
    resume = ResumeLocked();
    MaybeReadLocked();
    MaybeFinishLocked();
  }
  if (resume) Continue();
}

void SessionReactor::OnWriteDone(bool ok) {
  handoff_.Receive();
  bool resume;
  {
    std::lock_guard<std::mutex> lock(mu_);
    WriteDone();
    out_raw_.Clear();
    for (core::Call* c : written_) pipeline_.Finish(c);
    written_.clear();
    if (!ok) broken_ = lost_ = true;
    if (broken_) DropQueueLocked();
    if (!queue_.empty()) {
      StartWriteLocked();
    } else {
      writing_ = false;
    }
    resume = ResumeLocked();
    MaybeReadLocked();
    MaybeFinishLocked();
  }
  if (resume) Continue();
}

void SessionReactor::OnCancel() {
  // Often the first reaction, on another thread than the constructor's.
  handoff_.Receive();
  std::lock_guard<std::mutex> lock(mu_);
  cancelled_ = true;
  const size_t in_flight = pipeline_.in_flight();
  if (in_flight != 0 || !reading_) {
    // The client gave up on a stream with requests in it (a deadline): say
    // where they were, for whoever debugs a stuck request.
    Log(LogLevel::kInfo, "session_cancelled",
        {{"volume", pipeline_.volume() ? pipeline_.volume()->name() : ""},
         {"peer", peer_},
         {"messages_read", std::to_string(messages_read_)},
         {"messages_written", std::to_string(messages_written_)},
         {"in_flight", std::to_string(in_flight)},
         {"queued_answers", std::to_string(queue_.size())},
         {"reading", reading_ ? "1" : "0"},
         {"reads_done", reads_done_ ? "1" : "0"},
         {"handling", handling_ ? "1" : "0"},
         {"writing", writing_ ? "1" : "0"},
         {"finished", finished_ ? "1" : "0"}});
  }
  DropQueueLocked();
  if (paused_) {  // the rest of the message will not be handled
    lost_ = true;
    paused_ = false;
    reading_ = handling_ = false;
  }
  MaybeFinishLocked();
}

void SessionReactor::OnDone() {
  handoff_.Receive();
  if (auto* w = service_->options().send_watchdog) w->Unwatch(this);  // its callback locks mu_
  pipeline_.StopWaiting();  // its callback locks mu_
  {
    // Every other reaction, and the pipeline's callback, ended with mu_
    // released: taking it once makes them happen-before the delete for
    // TSan too (gRPC orders them already, unseen: common/handoff.h).
    std::lock_guard<std::mutex> lock(mu_);
  }
  service_->calls()->Unwatch(this);
  service_->calls()->End();
  delete this;
}

void SessionReactor::DropQueueLocked() {
  if (!queue_.empty()) lost_ = true;
  while (!queue_.empty()) {
    pipeline_.Finish(queue_.front());
    queue_.pop_front();
  }
}

// Writes the answer at the front of the queue; for a client that asked for
// batches, with the answers queued behind it (up to a size that keeps one
// message small) in the message's `batch` field. Every answer written leaves
// the queue at once (its data now belongs to the message).
void SessionReactor::StartWriteLocked() {
  constexpr uint32_t kMaxAnswers = 512;
  constexpr size_t kMaxBytes = 4 << 20;
  std::vector<grpc::Slice> slices;
  core::Call* front = queue_.front();
  queue_.pop_front();
  const wire::AnswerFields first = Fields(front);
  EncodeAnswer(front, first, /*batch_entry=*/false, &slices);
  size_t bytes = wire::AnswerSize(first);
  written_.push_back(front);
  while (batch_answers_ && !queue_.empty() && written_.size() < kMaxAnswers) {
    core::Call* next = queue_.front();
    const wire::AnswerFields f = Fields(next);
    const size_t size = wire::AnswerSize(f);
    if (bytes + size > kMaxBytes) break;
    EncodeAnswer(next, f, /*batch_entry=*/true, &slices);
    bytes += size;
    queue_.pop_front();
    written_.push_back(next);
  }
  out_raw_ = grpc::ByteBuffer(slices.data(), slices.size());
  ++messages_written_;
  WriteStarted();
  StartWrite(&out_raw_);
}

void SessionReactor::MaybeReadLocked() {
  if (!reading_ && !reads_done_ && service_->calls()->draining()) {
    // Draining: answer what is in flight, then end the stream so the client
    // reconnects elsewhere or after the restart.
    reads_done_ = drained_ = true;
    return;
  }
  if (!reading_ && !reads_done_ && !cancelled_ && !broken_ && pipeline_.HasRoom()) {
    reading_ = true;
    StartRead(&in_raw_);
  }
}

void SessionReactor::MaybeFinishLocked() {
  if (finished_ || writing_ || handling_ || !pipeline_.idle()) return;
  // A read may wait only when drained (Finish() ends it, ok = false).
  if (reading_ && !drained_) return;
  if (!(reads_done_ || cancelled_ || broken_)) return;
  finished_ = true;
  Log(LogLevel::kDebug, "session_finish",
      {{"volume", pipeline_.volume() ? pipeline_.volume()->name() : ""},
       {"peer", peer_},
       {"cancelled", cancelled_ ? "1" : "0"},
       {"lost", lost_ ? "1" : "0"},
       {"broken", broken_ ? "1" : "0"},
       {"drained", drained_ ? "1" : "0"},
       {"refused", refused_.ok() ? "" : std::string(refused_.message())}});
  // The status is what grpc_server_handled_total counts (a cancelled
  // client never sees it): a client that cancelled or half-closed once
  // every answer was written closed normally, OK; one that left answers
  // behind, or that the server cut, failed (Canceled).
  Finish(lost_          ? grpc::Status::CANCELLED
         : !refused_.ok() ? ToGrpc(refused_)
         : drained_     ? CallTracker::Refusal()
                        : grpc::Status::OK);
}

}  // namespace cowblk::rpc
