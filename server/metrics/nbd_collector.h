// The NBD export's connection metrics, read from its NbdStats
// (server/transport/nbd/nbd_stats.h) at scrape time:
//   cowblk_nbd_connections                     gauge: open connections
//   cowblk_nbd_connections_total               counter: connections served
//   cowblk_nbd_connections_refused_total{reason}  limit, threads, memory
//   cowblk_nbd_timeouts_total{phase}           handshake, idle, send
//   cowblk_nbd_accept_pauses_total             accept failed (EMFILE, ...)
//   cowblk_nbd_memory_trims_total              malloc_trim after connections ended
//   cowblk_nbd_requests_total{command}         requests answered
//   cowblk_nbd_request_errors_total{command}   those answered with an error
// docs/metrics.md says what each means.
//
// Thread-safety: Collect may run on any thread (the stats are atomics).

#ifndef COWBLK_SERVER_METRICS_NBD_COLLECTOR_H_
#define COWBLK_SERVER_METRICS_NBD_COLLECTOR_H_

#include <prometheus/collectable.h>
#include <prometheus/metric_family.h>

#include <memory>
#include <vector>

#include "server/transport/nbd/nbd_stats.h"

namespace cowblk::metrics {

class NbdCollector : public prometheus::Collectable {
 public:
  explicit NbdCollector(std::shared_ptr<const nbd::NbdStats> stats) : stats_(std::move(stats)) {}
  std::vector<prometheus::MetricFamily> Collect() const override;

 private:
  const std::shared_ptr<const nbd::NbdStats> stats_;
};

}  // namespace cowblk::metrics

#endif  // COWBLK_SERVER_METRICS_NBD_COLLECTOR_H_
