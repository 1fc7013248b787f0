#include "server/service/block_service.h"

#include <deque>
#include <mutex>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "common/log.h"
#include "server/engine/io.h"
#include "server/service/status_util.h"

namespace cowblk::service {
namespace {

using cowblk::v1::ReadRequest;
using cowblk::v1::ReadResponse;
using cowblk::v1::SessionRequest;
using cowblk::v1::SessionResponse;
using cowblk::v1::WriteRequest;
using cowblk::v1::WriteResponse;

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
      return absl::InvalidArgumentError(absl::StrCat("op: ", static_cast<int>(op), " is not an operation"));
  }
}

// ---- Session -------------------------------------------------------------

class SessionReactor final
    : public grpc::ServerBidiReactor<SessionRequest, SessionResponse> {
 public:
  SessionReactor(BlockServiceImpl* service, grpc::CallbackServerContext* ctx)
      : service_(service), ctx_(ctx), max_in_flight_(service->options().max_in_flight) {
    const auto& md = ctx->client_metadata();
    auto it = md.find("cowblk-batch");
    batch_answers_ = it != md.end() && it->second == "1";
    // Tells the client how many requests one message may carry (sent with
    // the first answer).
    ctx->AddInitialMetadata("cowblk-batch-max", std::to_string(max_in_flight_));
    reading_ = true;
    StartRead(&in_);
  }

  void OnReadDone(bool ok) override {
    if (!ok) {
      std::lock_guard<std::mutex> lock(mu_);
      reading_ = false;
      reads_done_ = true;
      MaybeFinishLocked();
      return;
    }
    Handle();
    std::lock_guard<std::mutex> lock(mu_);
    reading_ = false;
    MaybeReadLocked();
    MaybeFinishLocked();
  }

  void OnWriteDone(bool ok) override {
    std::lock_guard<std::mutex> lock(mu_);
    delete queue_.front();
    queue_.pop_front();
    in_flight_ -= answers_written_;
    if (!ok) broken_ = true;
    while (broken_ && !queue_.empty()) {
      delete queue_.front();
      queue_.pop_front();
      --in_flight_;
    }
    if (!queue_.empty()) {
      StartWriteLocked();
    } else {
      writing_ = false;
    }
    MaybeReadLocked();
    MaybeFinishLocked();
  }

  void OnCancel() override {
    std::lock_guard<std::mutex> lock(mu_);
    cancelled_ = true;
    MaybeFinishLocked();
  }

  void OnDone() override {
    service_->calls()->End();
    delete this;
  }

 private:
  struct Pending {
    SessionReactor* reactor;
    engine::Request request;
    SessionResponse response;
    std::string data;  // write payload, owned here while the engine uses it
  };

  // Handles the message in `in_`: one request, a batch, or both.
  void Handle() {
    if (in_.batch_size() == 0) {
      HandleOne(&in_, in_.volume(), absl::OkStatus());
      return;
    }
    // A batch: the message's own request first (if it holds one), then
    // each request of the batch, as if they had come one per message.
    if (in_.op() != cowblk::v1::OP_UNSPECIFIED || in_.id() != 0 || in_.offset() != 0 ||
        in_.length() != 0 || !in_.data().empty() || in_.fua()) {
      HandleOne(&in_, in_.volume(), absl::OkStatus());
    }
    uint32_t handled = 0;
    for (SessionRequest& r : *in_.mutable_batch()) {
      absl::Status refusal;
      if (r.batch_size() != 0) {
        refusal = absl::InvalidArgumentError("batch: a request in a batch carries no batch");
      } else if (++handled > max_in_flight_) {
        refusal = absl::ResourceExhaustedError(absl::StrFormat(
            "batch: more than the session's window of %u requests in one message",
            max_in_flight_));
      }
      HandleOne(&r, r.volume().empty() ? in_.volume() : r.volume(), refusal);
    }
  }

  // Handles one request; `volume` names its volume (empty: the one bound),
  // and a non-OK `refusal` answers it with that status.
  void HandleOne(SessionRequest* req, const std::string& volume, const absl::Status& refusal) {
    auto* p = new Pending;
    p->reactor = this;
    p->response.set_id(req->id());
    {
      std::lock_guard<std::mutex> lock(mu_);
      ++in_flight_;
    }
    absl::Status s = refusal;
    if (s.ok()) s = Bind(volume);
    auto op = ToEngineOp(req->op());
    if (s.ok() && !op.ok()) s = op.status();
    if (s.ok() && *op != engine::OpType::kRead && !write_allowed_) {
      s = absl::PermissionDeniedError("the token allows reading this volume only");
    }
    if (!s.ok()) {
      Answer(p, s);
      return;
    }
    engine::Request& r = p->request;
    r.op = *op;
    r.offset = req->offset();
    r.length = req->length();
    r.fua = req->fua();
    if (r.op == engine::OpType::kWrite) {
      p->data = std::move(*req->mutable_data());
      r.length = p->data.size();
      r.data = p->data.data();
    } else if (r.op == engine::OpType::kRead) {
      if (r.length > engine::kMaxIoBytes) {
        Answer(p, absl::InvalidArgumentError(absl::StrFormat(
                      "length: %u is above the limit of %u", r.length, engine::kMaxIoBytes)));
        return;
      }
      p->response.mutable_data()->resize(r.length);
      r.data = p->response.mutable_data()->data();
    }
    r.done = [p](absl::Status status) { p->reactor->Answer(p, status); };
    if (!volume_->Submit(&r)) {
      Answer(p, absl::UnavailableError(absl::StrCat("volume ", volume_->name(), " is closed")));
    }
  }

  // Binds the stream to its volume on the first request.
  absl::Status Bind(const std::string& name) {
    if (volume_) {
      if (!name.empty() && name != volume_->name()) {
        return absl::InvalidArgumentError(
            absl::StrCat("volume: this session serves ", volume_->name(), ", not ", name));
      }
      return absl::OkStatus();
    }
    if (name.empty()) {
      return absl::InvalidArgumentError("volume: required in the first request of a session");
    }
    auto handle = service_->OpenVolume(*ctx_, name, Access::kRead);
    if (!handle.ok()) return handle.status();
    volume_ = *handle;
    write_allowed_ = service_->OpenVolume(*ctx_, name, Access::kWrite).ok();
    return absl::OkStatus();
  }

  // Queues the response of `p`; any thread (engine or gRPC).
  void Answer(Pending* p, const absl::Status& status) {
    if (!status.ok()) {
      p->response.set_code(static_cast<int32_t>(status.code()));
      p->response.set_message(std::string(status.message()));
      p->response.clear_data();
      Log(LogLevel::kWarning, "request_failed",
          {{"volume", volume_ ? volume_->name() : in_.volume()},
           {"id", std::to_string(p->response.id())},
           {"code", absl::StatusCodeToString(status.code())},
           {"error", std::string(status.message())}});
    }
    p->data.clear();
    std::lock_guard<std::mutex> lock(mu_);
    if (broken_ || cancelled_) {
      delete p;
      --in_flight_;
      MaybeFinishLocked();
      return;
    }
    queue_.push_back(p);
    if (!writing_) {
      writing_ = true;
      StartWriteLocked();
    }
  }

  // Writes the answer at the front of the queue; for a client that asked
  // for batches, with the answers queued behind it (up to a size that keeps
  // one message small), which leave the queue at once.
  void StartWriteLocked() {
    Pending* front = queue_.front();
    answers_written_ = 1;
    if (batch_answers_) {
      constexpr uint32_t kMaxAnswers = 512;
      constexpr size_t kMaxBytes = 4 << 20;
      size_t bytes = front->response.data().size();
      while (queue_.size() > 1 && answers_written_ < kMaxAnswers) {
        Pending* next = queue_[1];
        if (bytes + next->response.data().size() > kMaxBytes) break;
        bytes += next->response.data().size();
        *front->response.add_batch() = std::move(next->response);
        delete next;
        queue_.erase(queue_.begin() + 1);
        ++answers_written_;
      }
    }
    StartWrite(&front->response);
  }

  void MaybeReadLocked() {
    if (!reading_ && !reads_done_ && service_->calls()->draining()) {
      // Draining: answer what is in flight, then end the stream so the
      // client reconnects elsewhere or after the restart.
      reads_done_ = drained_ = true;
      return;
    }
    if (!reading_ && !reads_done_ && !cancelled_ && !broken_ && in_flight_ < max_in_flight_) {
      reading_ = true;
      StartRead(&in_);
    }
  }

  void MaybeFinishLocked() {
    if (finished_ || in_flight_ != 0 || writing_ || reading_) return;
    if (!(reads_done_ || cancelled_ || broken_)) return;
    finished_ = true;
    Finish(cancelled_ ? grpc::Status::CANCELLED
           : drained_ ? CallTracker::Refusal()
                      : grpc::Status::OK);
  }

  BlockServiceImpl* const service_;
  grpc::CallbackServerContext* const ctx_;
  const uint32_t max_in_flight_;
  SessionRequest in_;  // the read buffer; touched only between StartRead and OnReadDone
  bool batch_answers_ = false;  // the client sent `cowblk-batch: 1`
  std::shared_ptr<VolumeHandle> volume_;
  bool write_allowed_ = false;

  std::mutex mu_;  // guards everything below
  std::deque<Pending*> queue_;  // answers to send; front is being written
  uint32_t answers_written_ = 0;  // answers in the message being written
  uint32_t in_flight_ = 0;      // requests not yet answered on the wire
  bool reading_ = false;
  bool writing_ = false;
  bool reads_done_ = false;
  bool cancelled_ = false;
  bool broken_ = false;
  bool drained_ = false;
  bool finished_ = false;
};

// ---- Read ----------------------------------------------------------------

class ReadReactor final : public grpc::ServerWriteReactor<ReadResponse> {
 public:
  ReadReactor(CallTracker* calls, std::shared_ptr<VolumeHandle> volume, uint64_t offset,
              uint64_t length, uint32_t chunk)
      : calls_(calls), volume_(std::move(volume)), next_(offset), end_(offset + length),
        chunk_(chunk) {
    Next();
  }

  void OnWriteDone(bool ok) override {
    if (!ok) {
      Finish(grpc::Status(grpc::StatusCode::CANCELLED, "client went away"));
      return;
    }
    Next();
  }
  void OnDone() override {
    calls_->End();
    delete this;
  }

 private:
  void Next() {
    if (next_ >= end_) {
      Finish(grpc::Status::OK);
      return;
    }
    const uint64_t len = std::min<uint64_t>(chunk_, end_ - next_);
    response_.set_offset(next_);
    response_.mutable_data()->resize(len);
    request_ = engine::Request{};
    request_.op = engine::OpType::kRead;
    request_.offset = next_;
    request_.length = len;
    request_.data = response_.mutable_data()->data();
    request_.done = [this, len](absl::Status s) {
      if (!s.ok()) {
        Finish(ToGrpc(s));
        return;
      }
      next_ += len;
      StartWrite(&response_);
    };
    if (!volume_->Submit(&request_)) {
      Finish(grpc::Status(grpc::StatusCode::UNAVAILABLE, "volume is closed"));
    }
  }

  CallTracker* const calls_;
  std::shared_ptr<VolumeHandle> volume_;
  uint64_t next_, end_;
  const uint32_t chunk_;
  ReadResponse response_;
  engine::Request request_;
};

// ---- Write ---------------------------------------------------------------

class WriteReactor final : public grpc::ServerReadReactor<WriteRequest> {
 public:
  WriteReactor(BlockServiceImpl* service, grpc::CallbackServerContext* ctx,
               WriteResponse* response)
      : service_(service), ctx_(ctx), response_(response) {
    StartRead(&in_);
  }

  void OnReadDone(bool ok) override {
    if (!ok) {  // the client is done: flush if asked, then answer
      if (!volume_) {
        Finish(grpc::Status(grpc::StatusCode::INVALID_ARGUMENT, "volume: no request received"));
        return;
      }
      if (!flush_) {
        Finish(grpc::Status::OK);
        return;
      }
      Submit(engine::OpType::kFlush, 0, 0);
      return;
    }
    if (!volume_) {
      auto handle = service_->OpenVolume(*ctx_, in_.volume(), Access::kWrite);
      if (!handle.ok()) {
        Finish(ToGrpc(handle.status()));
        return;
      }
      volume_ = *handle;
    } else if (!in_.volume().empty() && in_.volume() != volume_->name()) {
      Finish(grpc::Status(grpc::StatusCode::INVALID_ARGUMENT,
                          "volume: one Write call writes one volume"));
      return;
    }
    flush_ = in_.flush();
    data_ = std::move(*in_.mutable_data());
    if (data_.empty()) {
      StartRead(&in_);
      return;
    }
    Submit(engine::OpType::kWrite, in_.offset(), data_.size());
  }

  void OnDone() override {
    service_->calls()->End();
    delete this;
  }

 private:
  void Submit(engine::OpType op, uint64_t offset, uint64_t length) {
    request_ = engine::Request{};
    request_.op = op;
    request_.offset = offset;
    request_.length = length;
    request_.data = data_.data();
    request_.done = [this, op, length](absl::Status s) {
      if (!s.ok()) {
        Finish(ToGrpc(s));
        return;
      }
      if (op == engine::OpType::kFlush) {
        Finish(grpc::Status::OK);
        return;
      }
      response_->set_bytes_written(response_->bytes_written() + length);
      StartRead(&in_);
    };
    if (!volume_->Submit(&request_)) {
      Finish(grpc::Status(grpc::StatusCode::UNAVAILABLE, "volume is closed"));
    }
  }

  BlockServiceImpl* const service_;
  grpc::CallbackServerContext* const ctx_;
  WriteResponse* const response_;
  WriteRequest in_;
  std::shared_ptr<VolumeHandle> volume_;
  std::string data_;
  bool flush_ = false;
  engine::Request request_;
};

}  // namespace

absl::StatusOr<std::shared_ptr<VolumeHandle>> BlockServiceImpl::OpenVolume(
    const grpc::ServerContextBase& ctx, const std::string& name, Access access) {
  if (absl::Status s = ValidateName("volume", name); !s.ok()) return s;
  if (absl::Status s = auth_->Check(ctx, access, name); !s.ok()) return s;
  return store_->FindVolume(name);
}

// A reactor that only answers "shutting down" (or another error).
template <typename Base>
class Refused : public Base {
 public:
  explicit Refused(const grpc::Status& s) { this->Finish(s); }
  void OnDone() override { delete this; }
};

grpc::ServerBidiReactor<SessionRequest, SessionResponse>* BlockServiceImpl::Session(
    grpc::CallbackServerContext* ctx) {
  if (!calls_->Begin()) {
    return new Refused<grpc::ServerBidiReactor<SessionRequest, SessionResponse>>(
        CallTracker::Refusal());
  }
  return new SessionReactor(this, ctx);
}

grpc::ServerWriteReactor<ReadResponse>* BlockServiceImpl::Read(grpc::CallbackServerContext* ctx,
                                                               const ReadRequest* request) {
  if (!calls_->Begin()) {
    return new Refused<grpc::ServerWriteReactor<ReadResponse>>(CallTracker::Refusal());
  }
  auto fail = [this](const absl::Status& s) {
    calls_->End();
    return new Refused<grpc::ServerWriteReactor<ReadResponse>>(ToGrpc(s));
  };
  auto handle = OpenVolume(*ctx, request->volume(), Access::kRead);
  if (!handle.ok()) return fail(handle.status());
  const uint64_t offset = request->offset(), length = request->length();
  const uint64_t size = (*handle)->size();
  if (offset % 512 != 0) {
    return fail(absl::InvalidArgumentError(absl::StrFormat("offset: %u is not a multiple of 512", offset)));
  }
  if (length == 0 || length % 512 != 0) {
    return fail(absl::InvalidArgumentError(
        absl::StrFormat("length: %u is not a positive multiple of 512", length)));
  }
  if (offset > size || length > size - offset) {
    return fail(absl::OutOfRangeError(absl::StrFormat(
        "offset %u length %u: beyond the volume size %u", offset, length, size)));
  }
  return new ReadReactor(calls_, *std::move(handle), offset, length, options_.read_chunk);
}

grpc::ServerReadReactor<WriteRequest>* BlockServiceImpl::Write(grpc::CallbackServerContext* ctx,
                                                               WriteResponse* response) {
  if (!calls_->Begin()) {
    return new Refused<grpc::ServerReadReactor<WriteRequest>>(CallTracker::Refusal());
  }
  return new WriteReactor(this, ctx, response);
}

grpc::ServerUnaryReactor* BlockServiceImpl::Flush(grpc::CallbackServerContext* ctx,
                                                  const cowblk::v1::FlushRequest* request,
                                                  cowblk::v1::FlushResponse*) {
  grpc::ServerUnaryReactor* reactor = ctx->DefaultReactor();
  if (!calls_->Begin()) {
    reactor->Finish(CallTracker::Refusal());
    return reactor;
  }
  auto handle = OpenVolume(*ctx, request->volume(), Access::kWrite);
  if (!handle.ok()) {
    calls_->End();
    reactor->Finish(ToGrpc(handle.status()));
    return reactor;
  }
  struct FlushCall {
    std::shared_ptr<VolumeHandle> volume;
    engine::Request request;
  };
  auto* call = new FlushCall{*handle, {}};
  call->request.op = engine::OpType::kFlush;
  CallTracker* calls = calls_;
  call->request.done = [reactor, call, calls](absl::Status s) {
    reactor->Finish(ToGrpc(s));
    delete call;  // the engine is done with the request
    calls->End();
  };
  if (!call->volume->Submit(&call->request)) {
    delete call;
    calls_->End();
    reactor->Finish(grpc::Status(grpc::StatusCode::UNAVAILABLE, "volume is closed"));
  }
  return reactor;
}

}  // namespace cowblk::service
