// cowblk_build_info{version,commit} 1: which build is running. The version
// and the commit are what --version prints (common/version.h): the CMake
// project version and the build's `git describe --always --dirty
// --abbrev=12`, or -DCOWBLK_COMMIT= (the container build), or "unknown".
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
