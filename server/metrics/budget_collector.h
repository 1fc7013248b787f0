// The server-wide byte budget of requests in flight (server/core/budget.h),
// read at scrape time:
//   cowblk_bytes_in_flight       gauge: request buffer bytes held now, every
//                                transport together
//   cowblk_requests_in_flight{transport}, cowblk_request_bytes_in_flight{transport}
//                                gauges: the requests in flight and their
//                                bytes by transport (core/in_flight_gauges.h)
//   cowblk_server_bytes_limit    gauge: --max-server-bytes
//   cowblk_budget_waits_total    counter: times a stream or connection was
//                                told to wait for the budget (it stopped
//                                reading its client meanwhile)
//   cowblk_grpc_send_timeouts_total  counter: Session and Read calls cut by
//                                --grpc-send-timeout-seconds
//                                (core/send_watchdog.h)
// docs/metrics.md says what each means.
//
// Thread-safety: Collect may run on any thread.

#ifndef COWBLK_SERVER_METRICS_BUDGET_COLLECTOR_H_
#define COWBLK_SERVER_METRICS_BUDGET_COLLECTOR_H_

#include <prometheus/collectable.h>
#include <prometheus/metric_family.h>

#include <vector>

#include "server/core/budget.h"
#include "server/core/send_watchdog.h"

namespace cowblk::metrics {

class BudgetCollector : public prometheus::Collectable {
 public:
  // `budget` and `send_watchdog` outlive the collector's scrapes.
  BudgetCollector(const core::Budget* budget, const core::SendWatchdog* send_watchdog)
      : budget_(budget), send_watchdog_(send_watchdog) {}
  std::vector<prometheus::MetricFamily> Collect() const override;

 private:
  const core::Budget* const budget_;
  const core::SendWatchdog* const send_watchdog_;
};

}  // namespace cowblk::metrics

#endif  // COWBLK_SERVER_METRICS_BUDGET_COLLECTOR_H_
