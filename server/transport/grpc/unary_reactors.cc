#include "server/transport/grpc/unary_reactors.h"

#include <new>

#include "common/log.h"
#include "server/core/out_of_memory.h"
#include "server/transport/grpc/block_service.h"
#include "server/transport/grpc/status_util.h"

namespace cowblk::rpc {
namespace {

using cowblk::v1::ReadResponse;
using cowblk::v1::WriteRequest;
using cowblk::v1::WriteResponse;

// One call at a time. The server's byte budget may have no room for it:
// then `on_room` (on the budget's thread) begins it again.
core::PipelineOptions OneAtATime(const char* transport, std::string peer, core::Budget* budget,
                                 std::function<void()> on_room = nullptr) {
  core::PipelineOptions p;
  p.transport = transport;
  p.peer = std::move(peer);
  p.max_in_flight = 1;
  p.budget = budget;
  p.on_budget_room = std::move(on_room);
  return p;
}

class ReadReactor final : public grpc::ServerWriteReactor<ReadResponse>,
                          public core::Pipeline::Sink,
                          public core::SendWatchdog::Watched {
 public:
  ReadReactor(BlockServiceImpl* service, grpc::CallbackServerContext* ctx,
              std::shared_ptr<store::VolumeHandle> volume, uint64_t offset, uint64_t length)
      : calls_(service->calls()),
        ctx_(ctx),
        watchdog_(service->options().send_watchdog),
        peer_(ctx->peer()),
        pipeline_(this,
                  OneAtATime("read", peer_, service->options().budget, [this] { Next(); })),
        next_(offset),
        end_(offset + length),
        chunk_(service->options().read_chunk) {
    pipeline_.Bind(std::move(volume), /*writable=*/false);
    if (watchdog_ != nullptr) watchdog_->Watch(this);
    Next();
  }

  void OnWriteDone(bool ok) override {
    WriteDone();
    if (!ok) {
      Finish(grpc::Status(grpc::StatusCode::CANCELLED, "client went away"));
      return;
    }
    Next();
  }
  void OnDone() override {
    if (watchdog_ != nullptr) watchdog_->Unwatch(this);
    pipeline_.StopWaiting();
    calls_->End();
    delete this;
  }
  void OnSendTimeout() override {
    Log(LogLevel::kWarning, "grpc_send_timeout",
        {{"call", "Read"}, {"peer", peer_}, {"volume", pipeline_.volume()->name()}});
    ctx_->TryCancel();
  }
  // The chunk is read into the response's own bytes: no copy.
  void OnAnswered(absl::Span<core::Call* const> calls) override {
    core::Call* call = calls[0];
    const absl::Status status = call->status();
    *response_.mutable_data() = call->TakeString();
    pipeline_.Finish(call);
    if (!status.ok()) {
      Finish(ToGrpc(status));
      return;
    }
    next_ += response_.data().size();
    WriteStarted();
    StartWrite(&response_);
  }

 private:
  void Next() {
    if (next_ >= end_) {
      Finish(grpc::Status::OK);
      return;
    }
    const uint64_t len = std::min<uint64_t>(chunk_, end_ - next_);
    response_.set_offset(next_);
    core::Call* call = pipeline_.Begin(0, len);
    if (call == nullptr) return;  // the budget calls Next again
    call->op = engine::OpType::kRead;
    call->offset = next_;
    call->length = len;
    call->UseString(std::move(*response_.mutable_data()));
    pipeline_.SubmitAlone(call);  // last: the answer may finish this reactor
  }

  CallTracker* const calls_;
  grpc::CallbackServerContext* const ctx_;
  core::SendWatchdog* const watchdog_;
  const std::string peer_;
  core::Pipeline pipeline_;
  uint64_t next_;
  const uint64_t end_;
  const uint32_t chunk_;
  ReadResponse response_;
};

class WriteReactor final : public grpc::ServerReadReactor<grpc::ByteBuffer>,
                           public core::Pipeline::Sink {
 public:
  WriteReactor(BlockServiceImpl* service, grpc::CallbackServerContext* ctx,
               grpc::ByteBuffer* response)
      : service_(service),
        ctx_(ctx),
        out_(response),
        pipeline_(this, OneAtATime("write", ctx->peer(), service->options().budget,
                                   [this] { Submit(); })) {
    StartRead(&in_raw_);
  }

  void OnReadDone(bool ok) override {
    if (!ok) {  // the client is done: flush if asked, then answer
      if (!pipeline_.volume()) {
        Finish(grpc::Status(grpc::StatusCode::INVALID_ARGUMENT, "volume: no request received"));
        return;
      }
      if (!flush_) {
        FinishOk();
        return;
      }
      Submit(engine::OpType::kFlush, 0, "");
      return;
    }
    if (absl::Status parsed = Parse(); !parsed.ok()) {
      core::Call* call = pipeline_.Begin(0, 0);
      call->op = engine::OpType::kWrite;
      pipeline_.Refuse(call, std::move(parsed));  // logged; OnAnswered ends the call
      return;
    }
    if (!pipeline_.volume()) {
      auto handle = service_->OpenVolume(*ctx_, in_.volume(), Access::kWrite);
      if (!handle.ok()) {
        Finish(ToGrpc(handle.status()));
        return;
      }
      pipeline_.Bind(*std::move(handle), /*writable=*/true);
    } else if (!in_.volume().empty() && in_.volume() != pipeline_.volume()->name()) {
      Finish(grpc::Status(grpc::StatusCode::INVALID_ARGUMENT,
                          "volume: one Write call writes one volume"));
      return;
    }
    flush_ = in_.flush();
    if (in_.data().empty()) {
      StartRead(&in_raw_);
      return;
    }
    Submit(engine::OpType::kWrite, in_.offset(), std::move(*in_.mutable_data()));
  }
  void OnDone() override {
    pipeline_.StopWaiting();
    service_->calls()->End();
    delete this;
  }
  void OnAnswered(absl::Span<core::Call* const> calls) override {
    core::Call* call = calls[0];
    const absl::Status status = call->status();
    const engine::OpType op = *call->op;
    const uint64_t length = call->length;
    pipeline_.Finish(call);
    if (!status.ok()) {
      Finish(ToGrpc(status));
      return;
    }
    if (op == engine::OpType::kFlush) {
      FinishOk();
      return;
    }
    response_.set_bytes_written(response_.bytes_written() + length);
    StartRead(&in_raw_);
  }

 private:
  // in_raw_ into in_. protobuf allocates a message's data in one piece and
  // throws when it cannot: that fails this call only.
  absl::Status Parse() {
    try {
      if (!grpc::SerializationTraits<WriteRequest>::Deserialize(&in_raw_, &in_).ok()) {
        return absl::InvalidArgumentError("a Write message could not be parsed");
      }
    } catch (const std::bad_alloc&) {
      in_raw_.Clear();
      in_.Clear();
      return core::OutOfMemory("a Write message's data");
    }
    return absl::OkStatus();
  }
  void FinishOk() {
    bool own_buffer;
    grpc::Status s = grpc::SerializationTraits<WriteResponse>::Serialize(response_, out_, &own_buffer);
    Finish(s);
  }

  void Submit(engine::OpType op, uint64_t offset, std::string data) {
    op_ = op;
    offset_ = offset;
    data_ = std::move(data);
    Submit();
  }
  // Submits op_; again from the budget's call when it had no room.
  void Submit() {
    core::Call* call = pipeline_.Begin(0, data_.size());
    if (call == nullptr) return;
    call->op = op_;
    call->offset = offset_;
    call->length = data_.size();
    if (op_ == engine::OpType::kWrite) call->UseString(std::move(data_));
    data_.clear();
    pipeline_.SubmitAlone(call);  // last: the answer may finish this reactor
  }

  BlockServiceImpl* const service_;
  grpc::CallbackServerContext* const ctx_;
  grpc::ByteBuffer* const out_;
  WriteResponse response_;
  core::Pipeline pipeline_;
  grpc::ByteBuffer in_raw_;
  WriteRequest in_;
  bool flush_ = false;
  // The request being submitted (kept while the budget has no room).
  engine::OpType op_ = engine::OpType::kWrite;
  uint64_t offset_ = 0;
  std::string data_;
};

class FlushReactor final : public grpc::ServerUnaryReactor, public core::Pipeline::Sink {
 public:
  FlushReactor(CallTracker* calls, core::Budget* budget, std::string peer,
               std::shared_ptr<store::VolumeHandle> volume)
      : calls_(calls), pipeline_(this, OneAtATime("flush", std::move(peer), budget)) {
    pipeline_.Bind(std::move(volume), /*writable=*/true);
    core::Call* call = pipeline_.Begin(0, 0);
    call->op = engine::OpType::kFlush;
    pipeline_.SubmitAlone(call);  // last: the answer may finish this reactor
  }

  void OnAnswered(absl::Span<core::Call* const> calls) override {
    const absl::Status status = calls[0]->status();
    pipeline_.Finish(calls[0]);
    Finish(ToGrpc(status));
  }
  void OnDone() override {
    calls_->End();
    delete this;
  }

 private:
  CallTracker* const calls_;
  core::Pipeline pipeline_;
};

}  // namespace

grpc::ServerWriteReactor<ReadResponse>* NewReadReactor(
    BlockServiceImpl* service, grpc::CallbackServerContext* ctx,
    std::shared_ptr<store::VolumeHandle> volume, uint64_t offset, uint64_t length) {
  return new ReadReactor(service, ctx, std::move(volume), offset, length);
}

grpc::ServerReadReactor<grpc::ByteBuffer>* NewWriteReactor(BlockServiceImpl* service,
                                                           grpc::CallbackServerContext* ctx,
                                                           grpc::ByteBuffer* response) {
  return new WriteReactor(service, ctx, response);
}

grpc::ServerUnaryReactor* NewFlushReactor(CallTracker* calls, core::Budget* budget,
                                          std::string peer,
                                          std::shared_ptr<store::VolumeHandle> volume) {
  return new FlushReactor(calls, budget, std::move(peer), std::move(volume));
}

}  // namespace cowblk::rpc
