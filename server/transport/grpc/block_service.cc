#include "server/transport/grpc/block_service.h"

#include "common/block_range.h"
#include "server/store/names.h"
#include "server/transport/grpc/session_reactor.h"
#include "server/transport/grpc/status_util.h"
#include "server/transport/grpc/unary_reactors.h"

namespace cowblk::rpc {
namespace {

// A reactor that only answers "shutting down" (or another error).
template <typename Base>
class Refused : public Base {
 public:
  explicit Refused(const grpc::Status& s) { this->Finish(s); }
  void OnDone() override { delete this; }
};

}  // namespace

absl::StatusOr<std::shared_ptr<store::VolumeHandle>> BlockServiceImpl::OpenVolume(
    const grpc::ServerContextBase& ctx, const std::string& name, Access access) {
  if (absl::Status s = store::ValidateName("volume", name); !s.ok()) return s;
  if (absl::Status s = auth_->Check(ctx, access, name); !s.ok()) return s;
  return store_->FindVolume(name);
}

grpc::ServerBidiReactor<grpc::ByteBuffer, grpc::ByteBuffer>* BlockServiceImpl::Session(
    grpc::CallbackServerContext* ctx) {
  if (!calls_->Begin()) {
    return new Refused<grpc::ServerBidiReactor<grpc::ByteBuffer, grpc::ByteBuffer>>(
        CallTracker::Refusal());
  }
  // Before any message is read: a caller without a valid token costs
  // nothing more.
  if (absl::Status s = auth_->Authenticate(*ctx); !s.ok()) {
    calls_->End();
    return new Refused<grpc::ServerBidiReactor<grpc::ByteBuffer, grpc::ByteBuffer>>(ToGrpc(s));
  }
  return new SessionReactor(this, ctx);
}

grpc::ServerWriteReactor<v1::ReadResponse>* BlockServiceImpl::Read(
    grpc::CallbackServerContext* ctx, const v1::ReadRequest* request) {
  if (!calls_->Begin()) {
    return new Refused<grpc::ServerWriteReactor<v1::ReadResponse>>(CallTracker::Refusal());
  }
  auto fail = [this](const absl::Status& s) {
    calls_->End();
    return new Refused<grpc::ServerWriteReactor<v1::ReadResponse>>(ToGrpc(s));
  };
  auto handle = OpenVolume(*ctx, request->volume(), Access::kRead);
  if (!handle.ok()) return fail(handle.status());
  // The whole range is read in chunks: any length within the volume.
  if (absl::Status s =
          CheckBlockRange(request->offset(), request->length(), (*handle)->size(), RangeRules{});
      !s.ok()) {
    return fail(s);
  }
  return NewReadReactor(this, ctx, *std::move(handle), request->offset(), request->length());
}

grpc::ServerReadReactor<grpc::ByteBuffer>* BlockServiceImpl::Write(
    grpc::CallbackServerContext* ctx, grpc::ByteBuffer* response) {
  if (!calls_->Begin()) {
    return new Refused<grpc::ServerReadReactor<grpc::ByteBuffer>>(CallTracker::Refusal());
  }
  if (absl::Status s = auth_->Authenticate(*ctx); !s.ok()) {  // before any message is read
    calls_->End();
    return new Refused<grpc::ServerReadReactor<grpc::ByteBuffer>>(ToGrpc(s));
  }
  return NewWriteReactor(this, ctx, response);
}

grpc::ServerUnaryReactor* BlockServiceImpl::Flush(grpc::CallbackServerContext* ctx,
                                                  const v1::FlushRequest* request,
                                                  v1::FlushResponse*) {
  auto refuse = [ctx](const grpc::Status& s) {
    grpc::ServerUnaryReactor* reactor = ctx->DefaultReactor();
    reactor->Finish(s);
    return reactor;
  };
  if (!calls_->Begin()) return refuse(CallTracker::Refusal());
  auto handle = OpenVolume(*ctx, request->volume(), Access::kWrite);
  if (!handle.ok()) {
    calls_->End();
    return refuse(ToGrpc(handle.status()));
  }
  return NewFlushReactor(calls_, options_.budget, ctx->peer(), *std::move(handle));
}

}  // namespace cowblk::rpc
