// EngineCollector: the engine's Prometheus metrics, read at scrape time.
//
// The engine keeps its numbers in VolumeStats (relaxed atomics written only
// by the volume's engine thread, server/engine/volume_stats.h), so the I/O
// path takes no lock and looks up no label: this collector walks every open
// volume of every engine when Prometheus scrapes (Engine::ForEachVolume keeps
// each volume alive while it is read) and turns the numbers into families.
// Volumes appear and disappear with the engines' own lists; nothing
// registers or unregisters.
//
// Families (docs/metrics.md has the table): per volume
// cowblk_io_queue_depth{op}, cowblk_bitmap_writes_pending,
// cowblk_bitmap_updates_waiting (and its deprecated old name
// cowblk_bitmap_writes_waiting), cowblk_reads_stalled,
// cowblk_io_ops_total{op,code}, cowblk_io_bytes_total{op,source},
// cowblk_bitmap_writes_total, cowblk_bitmap_updates_coalesced_total,
// cowblk_bitmap_updates_waited_total, cowblk_fsyncs_total,
// cowblk_read_stalls_total, cowblk_io_errors_total,
// cowblk_io_duration_seconds{op}, cowblk_read_stall_seconds,
// cowblk_fdatasync_duration_seconds, cowblk_volume_size_bytes,
// cowblk_volume_allocated_bytes; per engine cowblk_uring_inflight,
// cowblk_engine_inbox_depth, cowblk_engine_inbox_wait_seconds.
//
// Detail (--metrics-detail): kVolume exposes the latency histograms
// (cowblk_io_duration_seconds, cowblk_read_stall_seconds,
// cowblk_fdatasync_duration_seconds) per volume, 189 of a volume's 222
// series; kServer sums them over every volume and exposes them once per
// server, without the `volume` label, keeping every other series per
// volume: 33 series a volume.
//
// Thread-safety: Collect may run on any thread, concurrently with itself.

#ifndef COWBLK_SERVER_METRICS_ENGINE_COLLECTOR_H_
#define COWBLK_SERVER_METRICS_ENGINE_COLLECTOR_H_

#include <prometheus/collectable.h>
#include <prometheus/metric_family.h>

#include <functional>
#include <string>
#include <vector>

#include "server/engine/engine.h"

namespace cowblk::metrics {

// How much the engine's metrics say per volume (see above).
enum class MetricsDetail { kVolume, kServer };

class EngineCollector : public prometheus::Collectable {
 public:
  // The `volume` label of a volume.
  using NameFn = std::function<std::string(const engine::Volume&)>;

  // `engines` (labelled "0", "1", ... in order) must outlive the collector.
  EngineCollector(std::vector<const engine::Engine*> engines, NameFn name_of,
                  MetricsDetail detail = MetricsDetail::kVolume);

  std::vector<prometheus::MetricFamily> Collect() const override;

 private:
  const std::vector<const engine::Engine*> engines_;
  const NameFn name_of_;
  const MetricsDetail detail_;
};

// The name cowblkd's Store serves a volume under: its COW file is
// DATA_DIR/volumes/NAME.cow (server/store/store.h), so NAME is the file
// name without ".cow".
std::string StoreVolumeName(const engine::Volume& volume);

}  // namespace cowblk::metrics

#endif  // COWBLK_SERVER_METRICS_ENGINE_COLLECTOR_H_
