// cowblk_grpc_connections_refused_total{reason="descriptors"}: gRPC
// connections refused at the descriptor limit (server/transport/grpc/
// accept_guard.h), read at scrape time.
//
// Thread-safety: Collect may run on any thread.

#ifndef COWBLK_SERVER_METRICS_GRPC_REFUSED_COLLECTOR_H_
#define COWBLK_SERVER_METRICS_GRPC_REFUSED_COLLECTOR_H_

#include <prometheus/collectable.h>
#include <prometheus/metric_family.h>

#include <atomic>
#include <cstdint>
#include <vector>

namespace cowblk::metrics {

class GrpcRefusedCollector : public prometheus::Collectable {
 public:
  // `refused` must outlive the collector.
  explicit GrpcRefusedCollector(const std::atomic<uint64_t>* refused) : refused_(refused) {}
  std::vector<prometheus::MetricFamily> Collect() const override;

 private:
  const std::atomic<uint64_t>* const refused_;
};

}  // namespace cowblk::metrics

#endif  // COWBLK_SERVER_METRICS_GRPC_REFUSED_COLLECTOR_H_
