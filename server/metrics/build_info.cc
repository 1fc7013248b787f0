#include "server/metrics/build_info.h"

#include "server/metrics/families.h"

namespace cowblk::metrics {

// COWBLK_VERSION and COWBLK_COMMIT come from server/metrics/CMakeLists.txt.
const char* BuildVersion() { return COWBLK_VERSION; }
const char* BuildCommit() { return COWBLK_COMMIT; }

std::vector<prometheus::MetricFamily> BuildInfoCollector::Collect() const {
  prometheus::MetricFamily f =
      Family("cowblk_build_info", "Always 1; the labels name the running build",
             prometheus::MetricType::Gauge);
  AddGauge(&f, {{"version", BuildVersion()}, {"commit", BuildCommit()}}, 1);
  return {std::move(f)};
}

}  // namespace cowblk::metrics
