// The process metrics every Prometheus client library exports, read from
// /proc/self at scrape time:
//   process_cpu_seconds_total      counter: user + system CPU time
//   process_resident_memory_bytes  gauge: resident set size
//   process_virtual_memory_bytes   gauge: mapped address space
//   process_open_fds               gauge: open descriptors
//   process_max_fds                gauge: the soft RLIMIT_NOFILE
//   process_start_time_seconds     gauge: start time, seconds since the epoch
// A value /proc does not give is left out of the scrape (never a made-up 0).
//
// Thread-safety: Collect may run on any thread.

#ifndef COWBLK_SERVER_METRICS_PROCESS_COLLECTOR_H_
#define COWBLK_SERVER_METRICS_PROCESS_COLLECTOR_H_

#include <prometheus/collectable.h>
#include <prometheus/metric_family.h>

#include <vector>

namespace cowblk::metrics {

class ProcessCollector : public prometheus::Collectable {
 public:
  std::vector<prometheus::MetricFamily> Collect() const override;
};

}  // namespace cowblk::metrics

#endif  // COWBLK_SERVER_METRICS_PROCESS_COLLECTOR_H_
