#include "server/metrics/build_info.h"

#include "common/version.h"
#include "server/metrics/families.h"

namespace cowblk::metrics {

const char* BuildVersion() { return Version(); }
const char* BuildCommit() { return GitCommit(); }

std::vector<prometheus::MetricFamily> BuildInfoCollector::Collect() const {
  prometheus::MetricFamily f =
      Family("cowblk_build_info", "Always 1; the labels name the running build",
             prometheus::MetricType::Gauge);
  AddGauge(&f, {{"version", BuildVersion()}, {"commit", BuildCommit()}}, 1);
  return {std::move(f)};
}

}  // namespace cowblk::metrics
