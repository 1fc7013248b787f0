// The volumes of the data directory as the Store sees them, read at scrape
// time:
//   cowblk_volume_state{volume,state}  gauge: 1 for the volume's state
//                                      ("ready" or "error"), 0 for the other
//   cowblk_volume_epoch_changes_total  counter: volumes whose epoch was
//                                      renewed since start (a possible crash
//                                      loss reported, store/epoch.h)
// The engine's families (engine_collector.h) cover open volumes only; a
// volume kept out of service at start (a bad COW header, a missing or
// changed backing file) has no engine volume, so without this it would
// vanish from the metrics. docs/metrics.md says what each means.
//
// Thread-safety: Collect may run on any thread (it takes the Store's lock
// for the listing, as ListVolumes does).

#ifndef COWBLK_SERVER_METRICS_VOLUME_STATE_COLLECTOR_H_
#define COWBLK_SERVER_METRICS_VOLUME_STATE_COLLECTOR_H_

#include <prometheus/collectable.h>
#include <prometheus/metric_family.h>

#include <vector>

#include "server/store/store.h"

namespace cowblk::metrics {

class VolumeStateCollector : public prometheus::Collectable {
 public:
  // `store` outlives the collector's scrapes.
  explicit VolumeStateCollector(store::Store* store) : store_(store) {}
  std::vector<prometheus::MetricFamily> Collect() const override;

 private:
  store::Store* const store_;
};

}  // namespace cowblk::metrics

#endif  // COWBLK_SERVER_METRICS_VOLUME_STATE_COLLECTOR_H_
