// The file system under the data directory, measured with statvfs at scrape
// time:
//   cowblk_data_dir_free_bytes  gauge: bytes an unprivileged process may
//                               still allocate there (f_bavail)
//   cowblk_data_dir_size_bytes  gauge: the file system's size (f_blocks)
// COW files grow with first writes; a full file system fails them ENOSPC.
// docs/metrics.md says what each means. Neither is exposed when statvfs
// fails (the directory vanished): a missing series, not a made-up number.
//
// Thread-safety: Collect may run on any thread.

#ifndef COWBLK_SERVER_METRICS_DATA_DIR_COLLECTOR_H_
#define COWBLK_SERVER_METRICS_DATA_DIR_COLLECTOR_H_

#include <prometheus/collectable.h>
#include <prometheus/metric_family.h>

#include <string>
#include <vector>

namespace cowblk::metrics {

class DataDirCollector : public prometheus::Collectable {
 public:
  explicit DataDirCollector(std::string data_dir) : data_dir_(std::move(data_dir)) {}
  std::vector<prometheus::MetricFamily> Collect() const override;

 private:
  const std::string data_dir_;
};

}  // namespace cowblk::metrics

#endif  // COWBLK_SERVER_METRICS_DATA_DIR_COLLECTOR_H_
