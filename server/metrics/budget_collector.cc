#include "server/metrics/budget_collector.h"

#include "server/metrics/families.h"

namespace cowblk::metrics {

std::vector<prometheus::MetricFamily> BudgetCollector::Collect() const {
  using prometheus::MetricType;
  std::vector<prometheus::MetricFamily> out;
  out.push_back(Family("cowblk_bytes_in_flight",
                       "Request buffer bytes (read buffers, write data) held by requests in "
                       "flight, over every transport",
                       MetricType::Gauge));
  AddGauge(&out.back(), {}, static_cast<double>(budget_->used()));
  out.push_back(Family("cowblk_server_bytes_limit",
                       "The server-wide budget of request bytes in flight (--max-server-bytes)",
                       MetricType::Gauge));
  AddGauge(&out.back(), {}, static_cast<double>(budget_->limit()));
  out.push_back(Family("cowblk_budget_waits_total",
                       "Times a stream or connection stopped reading its client to wait for "
                       "the server-wide byte budget",
                       MetricType::Counter));
  AddCounter(&out.back(), {}, static_cast<double>(budget_->waits()));
  out.push_back(Family("cowblk_grpc_send_timeouts_total",
                       "Session and Read calls cancelled because their client took no answer "
                       "for --grpc-send-timeout-seconds",
                       MetricType::Counter));
  AddCounter(&out.back(), {}, static_cast<double>(send_watchdog_->timeouts()));
  return out;
}

}  // namespace cowblk::metrics
