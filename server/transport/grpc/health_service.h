// grpc.health.v1.Health, implemented here rather than with gRPC's built-in
// service: the built-in one does not register the health proto's
// descriptors, so reflection clients (grpcurl) could not call it.
//
// Thread-safety: all methods are thread-safe.

#ifndef COWBLK_SERVER_TRANSPORT_GRPC_HEALTH_SERVICE_H_
#define COWBLK_SERVER_TRANSPORT_GRPC_HEALTH_SERVICE_H_

#include <condition_variable>
#include <mutex>

#include "grpc/health/v1/health.grpc.pb.h"

namespace cowblk::rpc {

class HealthServiceImpl final : public grpc::health::v1::Health::Service {
 public:
  // NOT_SERVING until SetServing(true). The overall status ("") and the
  // cowblk services share one state.
  void SetServing(bool serving);
  // Ends every Watch stream (on shutdown, so the server can stop).
  void Shutdown();

  grpc::Status Check(grpc::ServerContext* ctx, const grpc::health::v1::HealthCheckRequest* req,
                     grpc::health::v1::HealthCheckResponse* resp) override;
  grpc::Status Watch(grpc::ServerContext* ctx, const grpc::health::v1::HealthCheckRequest* req,
                     grpc::ServerWriter<grpc::health::v1::HealthCheckResponse>* writer) override;

 private:
  static bool Known(const std::string& service);

  std::mutex mu_;
  std::condition_variable changed_;
  bool serving_ = false;
  bool shutdown_ = false;
  uint64_t version_ = 0;
};

}  // namespace cowblk::rpc

#endif  // COWBLK_SERVER_TRANSPORT_GRPC_HEALTH_SERVICE_H_
