// The server-wide byte budget of requests in flight (server/core/budget.h),
// read at scrape time:
//   cowblk_bytes_in_flight       gauge: request buffer bytes held now, every
//                                transport together
//   cowblk_server_bytes_limit    gauge: --max-server-bytes
//   cowblk_budget_waits_total    counter: times a stream or connection was
//                                told to wait for the budget (it stopped
//                                reading its client meanwhile)
// docs/metrics.md says what each means.
//
// Thread-safety: Collect may run on any thread.

#ifndef COWBLK_SERVER_METRICS_BUDGET_COLLECTOR_H_
#define COWBLK_SERVER_METRICS_BUDGET_COLLECTOR_H_

#include <prometheus/collectable.h>
#include <prometheus/metric_family.h>

#include <vector>

#include "server/core/budget.h"

namespace cowblk::metrics {

class BudgetCollector : public prometheus::Collectable {
 public:
  // `budget` outlives the collector's scrapes.
  explicit BudgetCollector(const core::Budget* budget) : budget_(budget) {}
  std::vector<prometheus::MetricFamily> Collect() const override;

 private:
  const core::Budget* const budget_;
};

}  // namespace cowblk::metrics

#endif  // COWBLK_SERVER_METRICS_BUDGET_COLLECTOR_H_
