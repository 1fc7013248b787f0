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
  const core::InFlightGauges& in_flight = budget_->in_flight();
  out.push_back(Family("cowblk_requests_in_flight",
                       "Requests taken and not yet answered and sent, by transport (session, "
                       "read, write, flush: gRPC calls; nbd: NBD connections)",
                       MetricType::Gauge));
  for (int t = 0; t < core::InFlightGauges::kTransports; ++t) {
    AddGauge(&out.back(), {{"transport", core::InFlightGauges::Name(t)}},
             static_cast<double>(in_flight.calls(t)));
  }
  out.push_back(Family("cowblk_request_bytes_in_flight",
                       "Request buffer bytes held by the requests in flight, by transport "
                       "(their sum is cowblk_bytes_in_flight)",
                       MetricType::Gauge));
  for (int t = 0; t < core::InFlightGauges::kTransports; ++t) {
    AddGauge(&out.back(), {{"transport", core::InFlightGauges::Name(t)}},
             static_cast<double>(in_flight.bytes(t)));
  }
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
