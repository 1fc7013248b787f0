#include "server/transport/grpc/health_service.h"

#include "absl/strings/str_cat.h"
#include "common/handoff.h"
#include "server/transport/grpc/status_util.h"

namespace cowblk::rpc {

using grpc::health::v1::HealthCheckRequest;
using grpc::health::v1::HealthCheckResponse;

// One Watch stream. Sends the current status, then every change, one write
// at a time (a change during a write is sent when it completes: only the
// latest status, never a queue). Frees itself in OnDone.
class HealthServiceImpl::Watcher final
    : public grpc::ServerWriteReactor<HealthCheckResponse> {
 public:
  // REQUIRES: service->mu_ held (the watcher registers itself).
  Watcher(HealthServiceImpl* service, bool known) : service_(service), known_(known) {
    service_->watchers_.insert(this);
    if (service_->shutdown_) {
      FinishLocked();
    } else {
      SendLocked();
    }
    handoff_.Publish();
  }

  // The service's state changed. REQUIRES: service_->mu_ held.
  void ChangedLocked() {
    if (finished_) return;
    if (writing_) {
      dirty_ = true;
    } else {
      SendLocked();
    }
  }

  void OnWriteDone(bool ok) override {
    handoff_.Receive();
    std::lock_guard<std::mutex> lock(service_->mu_);
    writing_ = false;
    if (!ok) {  // the peer is gone
      FinishLocked();
    } else if (dirty_) {
      SendLocked();
    } else if (service_->shutdown_) {
      FinishLocked();
    }
  }

  void OnCancel() override {
    handoff_.Receive();
    std::lock_guard<std::mutex> lock(service_->mu_);
    if (!writing_) FinishLocked();
    // else OnWriteDone(false) follows and finishes.
  }

  void OnDone() override {
    handoff_.Receive();
    {
      std::lock_guard<std::mutex> lock(service_->mu_);
      service_->watchers_.erase(this);
      service_->gone_.notify_all();
    }
    delete this;
  }

 private:
  void SendLocked() {
    dirty_ = false;
    writing_ = true;
    response_.set_status(service_->StatusLocked(known_));
    StartWrite(&response_);
  }
  void FinishLocked() {
    if (finished_) return;
    finished_ = true;
    Finish(grpc::Status::OK);
  }

  HealthServiceImpl* const service_;
  const bool known_;
  // Guarded by service_->mu_.
  HealthCheckResponse response_;  // the one being written
  bool writing_ = false;
  bool dirty_ = false;  // a change came during the write
  bool finished_ = false;
  // Built on the handler's thread, reacted to on gRPC's: common/handoff.h.
  HandOff handoff_;
};

bool HealthServiceImpl::Known(const std::string& service) {
  return service.empty() || service == "cowblk.v1.BlockService" ||
         service == "cowblk.v1.VolumeService";
}

HealthCheckResponse::ServingStatus HealthServiceImpl::StatusLocked(bool known) const {
  return !known ? HealthCheckResponse::SERVICE_UNKNOWN
         : serving_ ? HealthCheckResponse::SERVING
                    : HealthCheckResponse::NOT_SERVING;
}

void HealthServiceImpl::SetServing(bool serving) {
  std::lock_guard<std::mutex> lock(mu_);
  if (serving_ == serving || shutdown_) return;
  serving_ = serving;
  for (Watcher* w : watchers_) w->ChangedLocked();
}

void HealthServiceImpl::Shutdown() {
  std::lock_guard<std::mutex> lock(mu_);
  if (shutdown_) return;
  serving_ = false;
  shutdown_ = true;
  for (Watcher* w : watchers_) w->ChangedLocked();  // NOT_SERVING, then the end
}

bool HealthServiceImpl::WaitWatchersGone(std::chrono::steady_clock::time_point deadline) {
  std::unique_lock<std::mutex> lock(mu_);
  return gone_.wait_until(lock, deadline, [this] { return watchers_.empty(); });
}

namespace {

// INVALID_ARGUMENT for a name no service could have; OK otherwise.
grpc::Status CheckName(const std::string& service) {
  if (service.size() <= HealthServiceImpl::kMaxServiceName) return grpc::Status::OK;
  return grpc::Status(
      grpc::StatusCode::INVALID_ARGUMENT,
      absl::StrCat("service: a name of ", service.size(), " bytes (at most ",
                   HealthServiceImpl::kMaxServiceName, "): ",
                   Abbreviated(service)));
}

}  // namespace

grpc::ServerUnaryReactor* HealthServiceImpl::Check(grpc::CallbackServerContext* ctx,
                                                   const HealthCheckRequest* req,
                                                   HealthCheckResponse* resp) {
  grpc::ServerUnaryReactor* reactor = ctx->DefaultReactor();
  grpc::Status status = CheckName(req->service());
  if (status.ok() && !Known(req->service())) {
    status = grpc::Status(grpc::StatusCode::NOT_FOUND,
                          "unknown service " + Abbreviated(req->service()));
  }
  if (status.ok()) {
    std::lock_guard<std::mutex> lock(mu_);
    resp->set_status(StatusLocked(true));
  }
  reactor->Finish(status);
  return reactor;
}

grpc::ServerWriteReactor<HealthCheckResponse>* HealthServiceImpl::Watch(
    grpc::CallbackServerContext*, const HealthCheckRequest* req) {
  const grpc::Status name = CheckName(req->service());
  if (!name.ok()) {
    // A reactor that only finishes: the smallest one gRPC's API allows.
    class Refused final : public grpc::ServerWriteReactor<HealthCheckResponse> {
     public:
      explicit Refused(const grpc::Status& s) { Finish(s); }
      void OnDone() override { delete this; }
    };
    return new Refused(name);
  }
  std::lock_guard<std::mutex> lock(mu_);
  return new Watcher(this, Known(req->service()));
}

}  // namespace cowblk::rpc
