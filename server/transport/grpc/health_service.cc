#include "server/transport/grpc/health_service.h"

#include <chrono>

namespace cowblk::rpc {

using grpc::health::v1::HealthCheckRequest;
using grpc::health::v1::HealthCheckResponse;

bool HealthServiceImpl::Known(const std::string& service) {
  return service.empty() || service == "cowblk.v1.BlockService" ||
         service == "cowblk.v1.VolumeService";
}

void HealthServiceImpl::SetServing(bool serving) {
  std::lock_guard<std::mutex> lock(mu_);
  if (serving_ == serving) return;
  serving_ = serving;
  ++version_;
  changed_.notify_all();
}

void HealthServiceImpl::Shutdown() {
  std::lock_guard<std::mutex> lock(mu_);
  serving_ = false;
  shutdown_ = true;
  ++version_;
  changed_.notify_all();
}

grpc::Status HealthServiceImpl::Check(grpc::ServerContext*, const HealthCheckRequest* req,
                                      HealthCheckResponse* resp) {
  if (!Known(req->service())) {
    return grpc::Status(grpc::StatusCode::NOT_FOUND, "unknown service " + req->service());
  }
  std::lock_guard<std::mutex> lock(mu_);
  resp->set_status(serving_ ? HealthCheckResponse::SERVING : HealthCheckResponse::NOT_SERVING);
  return grpc::Status::OK;
}

grpc::Status HealthServiceImpl::Watch(grpc::ServerContext* ctx, const HealthCheckRequest* req,
                                      grpc::ServerWriter<HealthCheckResponse>* writer) {
  std::unique_lock<std::mutex> lock(mu_);
  uint64_t seen = ~uint64_t{0};
  for (;;) {
    if (seen != version_) {  // every change is sent, NOT_SERVING on drain too
      seen = version_;
      HealthCheckResponse resp;
      resp.set_status(!Known(req->service()) ? HealthCheckResponse::SERVICE_UNKNOWN
                      : serving_             ? HealthCheckResponse::SERVING
                                             : HealthCheckResponse::NOT_SERVING);
      lock.unlock();
      const bool ok = writer->Write(resp);
      lock.lock();
      if (!ok) break;
      continue;  // the state may have changed while writing
    }
    if (shutdown_ || ctx->IsCancelled()) break;
    // Cancellation has no notification on the sync API: look again each second.
    changed_.wait_for(lock, std::chrono::seconds(1));
  }
  return grpc::Status::OK;
}

}  // namespace cowblk::rpc
