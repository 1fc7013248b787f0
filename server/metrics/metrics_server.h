// MetricsServer: the HTTP endpoint Prometheus scrapes (GET /metrics), a
// prometheus-cpp Exposer serving the given collectables.
//
// Destroying it takes about 2 s (the HTTP server's shutdown; see
// ../shared/docs/DESIGN.md), which is why cowblkd never does: it exits with
// _exit once everything is flushed.
//
// Thread-safety: Start and the accessors may be called from any thread; the
// collectables are called on the HTTP server's threads.

#ifndef COWBLK_SERVER_METRICS_METRICS_SERVER_H_
#define COWBLK_SERVER_METRICS_METRICS_SERVER_H_

#include <prometheus/collectable.h>

#include <memory>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "server/engine/engine.h"
#include "server/metrics/engine_collector.h"

namespace grpc {
class ServerBuilder;
}
namespace prometheus {
class Exposer;
}

namespace cowblk::metrics {

class MetricsServer {
 public:
  // Listens on `address` (host:port; port 0 picks a free one). Unavailable
  // when the address cannot be bound. The collectables are kept alive.
  static absl::StatusOr<std::unique_ptr<MetricsServer>> Start(
      const std::string& address,
      std::vector<std::shared_ptr<prometheus::Collectable>> collectables);
  ~MetricsServer();

  // host:port with the port actually bound.
  const std::string& address() const { return address_; }
  // Serves `collectable` too, from the next scrape on (kept alive). One
  // thread at a time; scrapes may go on meanwhile.
  void Add(std::shared_ptr<prometheus::Collectable> collectable);

 private:
  MetricsServer() = default;
  std::unique_ptr<prometheus::Exposer> exposer_;
  std::vector<std::shared_ptr<prometheus::Collectable>> collectables_;
  std::string address_;
};

// Everything cowblkd exposes, served on `address`: the engine collector over
// `engines` (volumes named as the Store names them), gRPC server metrics for
// the services named in `grpc_services` (full names, e.g.
// "cowblk.v1.BlockService", looked up in the generated descriptor pool)
// through an interceptor added to `builder`, and cowblk_build_info.
// `detail` is --metrics-detail (engine_collector.h).
// REQUIRES: `engines` outlives the result; `builder` has not built yet.
absl::StatusOr<std::unique_ptr<MetricsServer>> StartCowblkdMetrics(
    const std::string& address, const engine::EngineGroup& engines,
    const std::vector<std::string>& grpc_services, grpc::ServerBuilder* builder,
    MetricsDetail detail = MetricsDetail::kVolume);

}  // namespace cowblk::metrics

#endif  // COWBLK_SERVER_METRICS_METRICS_SERVER_H_
