#include "server/metrics/grpc_refused_collector.h"

#include "server/metrics/families.h"

namespace cowblk::metrics {

std::vector<prometheus::MetricFamily> GrpcRefusedCollector::Collect() const {
  std::vector<prometheus::MetricFamily> out;
  out.push_back(Family("cowblk_grpc_connections_refused_total",
                       "gRPC connections closed at once because cowblkd had no descriptor "
                       "left to serve them",
                       prometheus::MetricType::Counter));
  AddCounter(&out.back(), {{"reason", "descriptors"}},
             static_cast<double>(refused_->load(std::memory_order_relaxed)));
  return out;
}

}  // namespace cowblk::metrics
