#include "client/src/export_lookup.h"

#include <utility>

#include "client/src/nbd_lane.h"

namespace cowblk::internal {

ExportLookup::ExportLookup(NbdLane* lane, ClientCore* client, std::string volume)
    : lane_(lane), client_(client), ctx_(std::make_unique<grpc::ClientContext>()) {
  request_.set_name(std::move(volume));
  client_->Prepare(ctx_.get(), kTimeout);
}

void ExportLookup::Start() {
  // ctx_ is only reset in Done(), which cannot come before this call.
  client_->volumes()->async()->GetVolume(
      ctx_.get(), &request_, &response_,
      [self = shared_from_this()](grpc::Status status) { self->Done(status); });
}

void ExportLookup::Cancel() {
  std::lock_guard<std::mutex> lock(mu_);
  if (ctx_) ctx_->TryCancel();
}

void ExportLookup::Done(const grpc::Status& status) {
  {
    std::lock_guard<std::mutex> lock(mu_);
    ctx_.reset();  // its channel reference goes while the client surely lives
  }
  lane_->OnLookedUp(this, FromGrpc(status), response_);
}

}  // namespace cowblk::internal
