// grpc.health.v1.Health, implemented here rather than with gRPC's built-in
// service: the built-in one does not register the health proto's
// descriptors, so reflection clients (grpcurl) could not call it.
//
// Both methods are callback (reactor) methods: a Watch stream is a small
// object registered here, not a thread parked on a condition variable, so
// watchers cost memory, never threads (500 watchers held 515 threads on the
// synchronous API).
//
// Service names: at most kMaxServiceName bytes are looked at; a longer name
// is refused with INVALID_ARGUMENT, and no answer echoes more than
// 64 bytes of a name (Abbreviated, status_util.h).
//
// Thread-safety: all methods are thread-safe.

#ifndef COWBLK_SERVER_TRANSPORT_GRPC_HEALTH_SERVICE_H_
#define COWBLK_SERVER_TRANSPORT_GRPC_HEALTH_SERVICE_H_

#include <chrono>
#include <condition_variable>
#include <cstddef>
#include <mutex>
#include <set>
#include <string>

#include "grpc/health/v1/health.grpc.pb.h"

namespace cowblk::rpc {

class HealthServiceImpl final : public grpc::health::v1::Health::CallbackService {
 public:
  // Longest service name looked up (a gRPC full service name is far shorter).
  static constexpr size_t kMaxServiceName = 256;
  // NOT_SERVING until SetServing(true). The overall status ("") and the
  // cowblk services share one state.
  void SetServing(bool serving);
  // Sends NOT_SERVING to every Watch stream and ends it (on shutdown, so the
  // server can stop); later Watch calls end at once.
  void Shutdown();

  grpc::ServerUnaryReactor* Check(grpc::CallbackServerContext* ctx,
                                  const grpc::health::v1::HealthCheckRequest* req,
                                  grpc::health::v1::HealthCheckResponse* resp) override;
  grpc::ServerWriteReactor<grpc::health::v1::HealthCheckResponse>* Watch(
      grpc::CallbackServerContext* ctx, const grpc::health::v1::HealthCheckRequest* req) override;

  // Waits until every Watch stream has ended (after Shutdown(), so that
  // they end with OK rather than cancelled by the server's own shutdown), or
  // until `deadline`; false at the deadline.
  bool WaitWatchersGone(std::chrono::steady_clock::time_point deadline);

 private:
  class Watcher;
  static bool Known(const std::string& service);
  // The status a watcher of a known (or unknown) service is told now.
  // REQUIRES: mu_ held.
  grpc::health::v1::HealthCheckResponse::ServingStatus StatusLocked(bool known) const;

  // Guards the state below and every Watcher's state.
  std::mutex mu_;
  std::condition_variable gone_;  // a watcher ended
  bool serving_ = false;
  bool shutdown_ = false;
  std::set<Watcher*> watchers_;
};

}  // namespace cowblk::rpc

#endif  // COWBLK_SERVER_TRANSPORT_GRPC_HEALTH_SERVICE_H_
