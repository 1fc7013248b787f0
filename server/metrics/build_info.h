// cowblk_build_info{version,commit} 1: which build is running. The version
// is the CMake project version; the commit is `git rev-parse --short=12
// HEAD` at configure time, or "unknown" outside a git checkout.
//
// Thread-safety: immutable; Collect may run on any thread.

#ifndef COWBLK_SERVER_METRICS_BUILD_INFO_H_
#define COWBLK_SERVER_METRICS_BUILD_INFO_H_

#include <prometheus/collectable.h>
#include <prometheus/metric_family.h>

#include <string>
#include <vector>

namespace cowblk::metrics {

const char* BuildVersion();
const char* BuildCommit();

class BuildInfoCollector : public prometheus::Collectable {
 public:
  std::vector<prometheus::MetricFamily> Collect() const override;
};

}  // namespace cowblk::metrics

#endif  // COWBLK_SERVER_METRICS_BUILD_INFO_H_
