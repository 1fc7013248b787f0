#include "server/metrics/data_dir_collector.h"

#include <sys/statvfs.h>

#include "server/metrics/families.h"

namespace cowblk::metrics {

std::vector<prometheus::MetricFamily> DataDirCollector::Collect() const {
  using prometheus::MetricType;
  std::vector<prometheus::MetricFamily> out;
  struct statvfs fs;
  if (statvfs(data_dir_.c_str(), &fs) != 0) return out;
  const double unit = static_cast<double>(fs.f_frsize);
  out.push_back(Family("cowblk_data_dir_free_bytes",
                       "Bytes still available to cowblkd on the data directory's file system",
                       MetricType::Gauge));
  AddGauge(&out.back(), {}, static_cast<double>(fs.f_bavail) * unit);
  out.push_back(Family("cowblk_data_dir_size_bytes",
                       "Size of the data directory's file system", MetricType::Gauge));
  AddGauge(&out.back(), {}, static_cast<double>(fs.f_blocks) * unit);
  return out;
}

}  // namespace cowblk::metrics
