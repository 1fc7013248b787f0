#include "server/metrics/volume_state_collector.h"

#include <cstdint>

#include "server/metrics/families.h"

namespace cowblk::metrics {

std::vector<prometheus::MetricFamily> VolumeStateCollector::Collect() const {
  using prometheus::MetricType;
  std::vector<prometheus::MetricFamily> out;
  out.push_back(Family("cowblk_volume_state",
                       "1 for the state the volume is in (ready, or error: kept out of "
                       "service, the reason is in the log and in GetVolume), 0 for the other",
                       MetricType::Gauge));
  for (const store::VolumeInfo& v : store_->ListVolumes("", SIZE_MAX)) {
    AddGauge(&out.back(), {{"volume", v.name}, {"state", "ready"}}, v.ready ? 1 : 0);
    AddGauge(&out.back(), {{"volume", v.name}, {"state", "error"}}, v.ready ? 0 : 1);
  }
  out.push_back(Family("cowblk_volume_epoch_changes_total",
                       "Volumes whose epoch was renewed since start: acknowledged writes that "
                       "no flush covered may have been lost in a crash (log: "
                       "volume_epoch_changed)",
                       MetricType::Counter));
  AddCounter(&out.back(), {}, static_cast<double>(store_->epoch_changes()));
  return out;
}

}  // namespace cowblk::metrics
