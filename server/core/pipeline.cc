#include "server/core/pipeline.h"

#include <algorithm>
#include <new>

#include "absl/container/inlined_vector.h"
#include "absl/strings/str_cat.h"
#include "common/block_range.h"
#include "common/log.h"
#include "server/core/out_of_memory.h"
#include "server/store/client_text.h"

namespace cowblk::core {

Pipeline::Pipeline(Sink* sink, PipelineOptions options)
    : sink_(sink),
      options_(std::move(options)),
      transport_(InFlightGauges::Of(options_.transport)),
      zero_copy_min_bytes_(options_.zero_copy_min_bytes),
      inline_writes_(options_.inline_writes) {}

Pipeline::~Pipeline() { StopWaiting(); }

void Pipeline::StopWaiting() {
  if (options_.budget != nullptr) options_.budget->Cancel(this);
}

void Pipeline::OnBudgetRoom() {
  budget_wait_.store(false, std::memory_order_release);
  if (options_.on_budget_room) options_.on_budget_room();
}

void Pipeline::Bind(std::shared_ptr<store::VolumeHandle> volume, bool writable) {
  volume_ = std::move(volume);
  writable_ = writable;
  inline_writes_ = inline_writes_ && writable_;
  if (zero_copy_min_bytes_ == 0 && !inline_writes_) return;
  auto files = volume_->OpenFiles(/*writable=*/inline_writes_);
  if (files.ok()) {
    files_ = *std::move(files);
  } else if (files.status().code() != absl::StatusCode::kFailedPrecondition) {
    // Copies through the engine still work: serve, and say why. (Volumes
    // without the page cache never have the files: nothing to say.)
    Log(LogLevel::kWarning, absl::StrCat(options_.transport, "_files_unavailable"),
        {{"peer", options_.peer},
         {"volume", volume_->name()},
         {"error", std::string(files.status().message())}});
  }
}

bool Pipeline::HasRoom() {
  if (budget_wait_.load(std::memory_order_acquire)) return false;
  {
    std::lock_guard<std::mutex> lock(mu_);
    if (calls_.size() >= options_.max_in_flight) return false;
    if (calls_.empty()) return true;
    if (bytes_ >= options_.max_bytes) return false;
  }
  return options_.budget == nullptr || options_.budget->RoomOrWait(this);
}

uint64_t Pipeline::max_request_bytes() const {
  return std::min(options_.max_bytes,
                  options_.budget != nullptr ? options_.budget->limit() : options_.max_bytes);
}

Call* Pipeline::Begin(uint64_t tag, uint64_t buffer_bytes) {
  // A request that asks for more is refused before anything is allocated.
  const uint64_t window_bytes = std::min(buffer_bytes, kMaxTransferBytes);
  std::lock_guard<std::mutex> lock(mu_);
  if (options_.budget != nullptr && window_bytes <= max_request_bytes()) {
    budget_wait_.store(true, std::memory_order_release);  // before the callback may run
    if (!options_.budget->TryTake(window_bytes, !calls_.empty(), this)) return nullptr;
    budget_wait_.store(false, std::memory_order_release);
  }
  Call& call = calls_.emplace_back();
  call.self_ = std::prev(calls_.end());
  call.tag = tag;
  call.window_bytes_ = window_bytes;
  call.budget_bytes_ = options_.budget != nullptr && window_bytes <= max_request_bytes()
                           ? window_bytes
                           : 0;  // refused alone by Start, never allocated
  bytes_ += call.window_bytes_;
  if (options_.budget != nullptr) {
    options_.budget->in_flight().Add(transport_, 1, static_cast<int64_t>(call.budget_bytes_));
  }
  return &call;
}

absl::Status Pipeline::Prepare(Call* call) {
  engine::Request& r = call->request_;
  r.offset = call->offset;
  r.length = call->length;
  switch (*call->op) {
    case engine::OpType::kRead:
      if (zero_copy() && call->length >= zero_copy_min_bytes_) {
        call->located_ = true;
        ++counters_.located_reads;
        r.kind = engine::LocateRead{&call->extents_};
        break;
      }
      if (call->uses_string_) {
        try {
          call->string_.resize(call->length);
        } catch (const std::bad_alloc&) {
          return OutOfMemory("the read buffer");
        }
      } else if (!call->buffer_) {
        call->buffer_ = AllocateAligned(call->length);
        if (!call->buffer_) return OutOfMemory("the read buffer");
      }
      r.kind = engine::Read{call->storage()};
      break;
    case engine::OpType::kWrite:
      r.kind = engine::Write{call->storage(), call->fua};
      break;
    case engine::OpType::kFlush:
      r.kind = engine::Flush{};
      r.offset = r.length = 0;
      break;
    case engine::OpType::kTrim:
      r.kind = engine::Trim{call->fua};
      break;
    case engine::OpType::kWriteZeroes:
      r.kind = engine::WriteZeroes{call->fua, call->no_hole};
      break;
  }
  return absl::OkStatus();
}

void Pipeline::Submit(Call* call) {
  if (!batch_) batch_.emplace(options_.poll_after);
  Start(call, &*batch_);
}

void Pipeline::SubmitAlone(Call* call) { Start(call, nullptr); }

void Pipeline::Start(Call* call, engine::SubmitBatch* batch) {
  const engine::OpType op = *call->op;
  if (op != engine::OpType::kRead && !writable_) {
    Refuse(call, absl::PermissionDeniedError("the token allows reading this volume only"));
    return;
  }
  if (const uint64_t limit = max_request_bytes(); call->window_bytes_ > limit) {
    Refuse(call, absl::ResourceExhaustedError(absl::StrCat(
                     "length: ", call->window_bytes_, " bytes is more than the ", limit,
                     " bytes the server lets a stream hold in flight (--max-stream-bytes, "
                     "--max-server-bytes)")));
    return;
  }
  if (op != engine::OpType::kFlush) {
    const bool transfer = op == engine::OpType::kRead || op == engine::OpType::kWrite;
    absl::Status valid = CheckBlockRange(call->offset, call->length, volume_->size(),
                                         transfer ? kTransferRules : kExtentRules);
    if (!valid.ok()) {
      Refuse(call, std::move(valid));
      return;
    }
  }
  if (absl::Status s = Prepare(call); !s.ok()) {
    Refuse(call, std::move(s));
    return;
  }
  engine::Request& r = call->request_;
  r.done = [this, call](absl::Status s) { OnEngineDone(call, std::move(s)); };
  r.batch_end = this;
  // Without a batch the transport may end (and free this pipeline) as soon
  // as the engine has the call: keep the handle alive through Submit, and
  // touch nothing of this pipeline once the call was handed over.
  const std::shared_ptr<store::VolumeHandle> volume =
      batch == nullptr ? volume_ : std::shared_ptr<store::VolumeHandle>();
  store::VolumeHandle& handle = *volume_;
  const bool inline_write = op == engine::OpType::kWrite && inline_writes();
  if (inline_write) ++counters_.inline_writes;
  const bool submitted = inline_write ? handle.WriteAndSubmit(*files_, &r, batch)
                                      : handle.Submit(&r, batch);
  if (submitted) return;
  if (inline_write) --counters_.inline_writes;
  Refuse(call, absl::UnavailableError(absl::StrCat("volume ", handle.name(), " is closed")));
}

void Pipeline::FlushSubmissions() { batch_.reset(); }

void Pipeline::Refuse(Call* call, absl::Status why) {
  call->status_ = std::move(why);
  call->located_ = false;
  LogFailure(*call);
  call->status_ = store::ForClients(call->status_);  // the log kept the paths
  Call* const calls[] = {call};
  sink_->OnAnswered(calls);
}

void Pipeline::AnswerDirectly(Call* call) {
  call->status_ = absl::OkStatus();
  call->located_ = false;
  Call* const calls[] = {call};
  sink_->OnAnswered(calls);
}

void Pipeline::OnEngineDone(Call* call, absl::Status status) {
  if (call->op == engine::OpType::kWrite) {
    // The engine is done with the payload: the memory goes back now, not
    // when the answer is sent.
    call->buffer_.reset();
    call->string_ = std::string();
  }
  if (!status.ok()) {
    call->located_ = false;
    call->buffer_.reset();  // nothing to send: the memory goes back now
    call->status_ = std::move(status);
    LogFailure(*call);
    call->status_ = store::ForClients(call->status_);  // the log kept the paths
  }
  std::lock_guard<std::mutex> lock(mu_);
  answered_.push_back(call);
  // Set before `done` returns: the engine calls OnBatchEnd after that, and
  // the transport must not end before.
  batch_end_pending_ = true;
}

void Pipeline::OnBatchEnd() {
  absl::InlinedVector<Call*, 32> calls;
  {
    std::lock_guard<std::mutex> lock(mu_);
    calls.assign(answered_.begin(), answered_.end());
    answered_.clear();
    batch_end_pending_ = false;
  }
  // Last: once the sink has them, the transport may finish them and end.
  if (!calls.empty()) sink_->OnAnswered(absl::MakeConstSpan(calls));
}

void Pipeline::Finish(Call* call) {
  uint64_t bytes;
  {
    std::lock_guard<std::mutex> lock(mu_);
    bytes = call->budget_bytes_;
    bytes_ -= call->window_bytes_;
    calls_.erase(call->self_);
  }
  if (options_.budget != nullptr) {
    options_.budget->in_flight().Add(transport_, -1, -static_cast<int64_t>(bytes));
    options_.budget->Give(bytes);
  }
}

bool Pipeline::idle() const {
  std::lock_guard<std::mutex> lock(mu_);
  return calls_.empty() && !batch_end_pending_;
}

size_t Pipeline::in_flight() const {
  std::lock_guard<std::mutex> lock(mu_);
  return calls_.size();
}

uint64_t Pipeline::bytes_in_flight() const {
  std::lock_guard<std::mutex> lock(mu_);
  return bytes_;
}

void Pipeline::LogFailure(const Call& call) const {
  const absl::Status& s = call.status_;
  Log(LogLevel::kWarning, "request_failed",
      {{"transport", options_.transport},
       {"peer", options_.peer},
       {"volume", volume_ ? volume_->name() : ""},
       {"id", std::to_string(call.tag)},
       {"op", call.op ? engine::OpTypeName(*call.op) : "unknown"},
       {"offset", std::to_string(call.offset)},
       {"length", std::to_string(call.length)},
       {"code", absl::StatusCodeToString(s.code())},
       {"error", std::string(s.message())}});
}

}  // namespace cowblk::core
