#include "server/metrics/engine_collector.h"

#include <memory>

#include "common/sector.h"
#include "server/engine/request.h"
#include "server/engine/volume_stats.h"
#include "server/metrics/families.h"

namespace cowblk::metrics {
namespace {

using engine::LatencyHistogram;
using engine::OpType;
using engine::VolumeStats;
using prometheus::MetricFamily;
using prometheus::MetricType;

const std::vector<double>& LatencyBounds() {
  static const std::vector<double> bounds = [] {
    std::vector<double> b;
    for (int i = 0; i < LatencyHistogram::kBounds; ++i) {
      b.push_back(LatencyHistogram::UpperBoundSeconds(i));
    }
    return b;
  }();
  return bounds;
}

void AddLatency(MetricFamily* f, Labels labels, const LatencyHistogram& h) {
  uint64_t counts[LatencyHistogram::kBuckets];
  for (int i = 0; i < LatencyHistogram::kBuckets; ++i) counts[i] = h.bucket(i);
  AddHistogram(f, std::move(labels), LatencyBounds(), counts,
               static_cast<double>(h.sum_ns()) / 1e9);
}

double D(const engine::Counter& c) { return static_cast<double>(c.value()); }

// --metrics-detail server: the histograms of every volume summed, exposed
// once per server (by op), not per volume.
struct ServerHistograms {
  struct Sum {
    uint64_t counts[LatencyHistogram::kBuckets] = {};
    uint64_t sum_ns = 0;
    void Add(const LatencyHistogram& h) {
      for (int i = 0; i < LatencyHistogram::kBuckets; ++i) counts[i] += h.bucket(i);
      sum_ns += h.sum_ns();
    }
    void Expose(MetricFamily* f, Labels labels) const {
      AddHistogram(f, std::move(labels), LatencyBounds(), counts, static_cast<double>(sum_ns) / 1e9);
    }
  };
  Sum duration[engine::kOpTypeCount];
  Sum stall;
  Sum fdatasync;
};

// Every family, in the order they are exposed.
struct Families {
  MetricFamily queue_depth =
      Family("cowblk_io_queue_depth", "Requests submitted to the engine and not completed, by op",
             MetricType::Gauge);
  MetricFamily pending = Family("cowblk_bitmap_writes_pending",
                                "Bitmap block writes issued and not completed", MetricType::Gauge);
  MetricFamily updates_waiting =
      Family("cowblk_bitmap_updates_waiting",
             "Bitmap updates waiting behind a bitmap block write in flight or an earlier update",
             MetricType::Gauge);
  MetricFamily waiting =
      Family("cowblk_bitmap_writes_waiting",
             "DEPRECATED, removed in the next release: use cowblk_bitmap_updates_waiting (the "
             "same value; it counts updates, not writes)",
             MetricType::Gauge);
  MetricFamily uncommitted =
      Family("cowblk_bitmap_updates_uncommitted",
             "Deferred durability: acknowledged writes whose bitmap bits are not written "
             "to the COW file yet (a flush waits for them)",
             MetricType::Gauge);
  MetricFamily stalled =
      Family("cowblk_reads_stalled", "Reads held until an overlapping bitmap update completes",
             MetricType::Gauge);
  MetricFamily inflight =
      Family("cowblk_uring_inflight",
             "I/O backend operations in flight on an engine thread (io_uring or worker threads)",
             MetricType::Gauge);
  MetricFamily inbox_depth =
      Family("cowblk_engine_inbox_depth",
             "Requests handed to an engine thread and not yet taken from its inbox",
             MetricType::Gauge);
  MetricFamily backend = Family("cowblk_io_backend_info",
                                "Always 1; the label names the I/O backend the engines run",
                                MetricType::Gauge);
  MetricFamily size = Family("cowblk_volume_size_bytes", "Volume size", MetricType::Gauge);
  MetricFamily allocated =
      Family("cowblk_volume_allocated_bytes", "Bytes of the volume held in its COW file (bits set)",
             MetricType::Gauge);
  MetricFamily ops =
      Family("cowblk_io_ops_total", "Completed requests by op and result", MetricType::Counter);
  MetricFamily bytes =
      Family("cowblk_io_bytes_total",
             "Bytes transferred: reads by the file they came from (cow or backing), writes (cow)",
             MetricType::Counter);
  MetricFamily bitmap_writes =
      Family("cowblk_bitmap_writes_total", "Bitmap block writes issued", MetricType::Counter);
  MetricFamily coalesced =
      Family("cowblk_bitmap_updates_coalesced_total",
             "Bitmap updates that shared a block write with another", MetricType::Counter);
  MetricFamily waited = Family("cowblk_bitmap_updates_waited_total",
                               "Bitmap updates that had to wait for another", MetricType::Counter);
  MetricFamily fsyncs =
      Family("cowblk_fsyncs_total", "fdatasync calls on the COW file", MetricType::Counter);
  MetricFamily stalls = Family("cowblk_read_stalls_total",
                               "Reads that stalled behind a bitmap update", MetricType::Counter);
  MetricFamily errors =
      Family("cowblk_io_errors_total", "File operations that failed (the errno is in the log)",
             MetricType::Counter);
  MetricFamily duration =
      Family("cowblk_io_duration_seconds",
             "Request time in the engine, from submission to completion", MetricType::Histogram);
  MetricFamily stall_time =
      Family("cowblk_read_stall_seconds", "Time a stalled read waited for the bitmap update",
             MetricType::Histogram);
  MetricFamily fdatasync =
      Family("cowblk_fdatasync_duration_seconds",
             "Time an fdatasync of the COW file took, from submission to completion",
             MetricType::Histogram);
  MetricFamily inbox_wait =
      Family("cowblk_engine_inbox_wait_seconds",
             "Time a request waited in an engine thread's inbox, from Submit until taken",
             MetricType::Histogram);

  std::vector<MetricFamily> Take() {
    std::vector<MetricFamily> all;
    for (MetricFamily* f :
         {&queue_depth, &pending, &updates_waiting, &waiting, &uncommitted, &stalled, &inflight,
          &inbox_depth, &backend, &size, &allocated, &ops, &bytes, &bitmap_writes, &coalesced,
          &waited, &fsyncs, &stalls, &errors, &duration, &stall_time, &fdatasync, &inbox_wait}) {
      all.push_back(std::move(*f));
    }
    return all;
  }
};

// `server` non-null: the volume's histograms go there, not into `f`.
void AddVolume(Families& f, const std::string& name, const engine::Volume& v,
               ServerHistograms* server) {
  const VolumeStats& s = v.stats();
  const Labels vol = {{"volume", name}};
  for (int i = 0; i < engine::kOpTypeCount; ++i) {
    const std::string op = engine::OpTypeName(static_cast<OpType>(i));
    AddGauge(&f.queue_depth, {{"volume", name}, {"op", op}}, D(s.in_flight[i]));
    // Read `ops` after `ops_failed`: both grow, so ok never goes negative.
    const uint64_t failed = s.ops_failed[i].value();
    const uint64_t all = s.ops[i].value();
    AddCounter(&f.ops, {{"volume", name}, {"op", op}, {"code", "ok"}},
               static_cast<double>(all >= failed ? all - failed : 0));
    AddCounter(&f.ops, {{"volume", name}, {"op", op}, {"code", "error"}},
               static_cast<double>(failed));
    if (server != nullptr) {
      server->duration[i].Add(s.io_duration[i]);
    } else {
      AddLatency(&f.duration, {{"volume", name}, {"op", op}}, s.io_duration[i]);
    }
  }
  AddGauge(&f.pending, vol, D(s.bitmap_writes_pending));
  AddGauge(&f.updates_waiting, vol, D(s.updates_waiting));
  AddGauge(&f.waiting, vol, D(s.updates_waiting));
  AddGauge(&f.uncommitted, vol, D(s.updates_uncommitted));
  AddGauge(&f.stalled, vol, D(s.reads_stalled));
  AddGauge(&f.size, vol, static_cast<double>(v.size()));
  AddGauge(&f.allocated, vol, D(s.allocated_sectors) * kSectorSize);
  AddCounter(&f.bytes, {{"volume", name}, {"op", "read"}, {"source", "cow"}}, D(s.bytes_read_cow));
  AddCounter(&f.bytes, {{"volume", name}, {"op", "read"}, {"source", "backing"}},
             D(s.bytes_read_backing));
  AddCounter(&f.bytes, {{"volume", name}, {"op", "write"}, {"source", "cow"}},
             D(s.bytes[static_cast<int>(OpType::kWrite)]));
  AddCounter(&f.bitmap_writes, vol, D(s.bitmap_writes));
  AddCounter(&f.coalesced, vol, D(s.updates_coalesced));
  AddCounter(&f.waited, vol, D(s.updates_waited));
  AddCounter(&f.fsyncs, vol, D(s.fsyncs));
  AddCounter(&f.stalls, vol, D(s.read_stalls));
  AddCounter(&f.errors, vol, D(s.io_errors));
  if (server != nullptr) {
    server->stall.Add(s.read_stall);
    server->fdatasync.Add(s.fdatasync_duration);
  } else {
    AddLatency(&f.stall_time, vol, s.read_stall);
    AddLatency(&f.fdatasync, vol, s.fdatasync_duration);
  }
}

}  // namespace

EngineCollector::EngineCollector(std::vector<const engine::Engine*> engines, NameFn name_of,
                                 MetricsDetail detail)
    : engines_(std::move(engines)), name_of_(std::move(name_of)), detail_(detail) {}

std::vector<MetricFamily> EngineCollector::Collect() const {
  Families f;
  std::unique_ptr<ServerHistograms> server;  // about 1 KiB: not on the stack
  if (detail_ == MetricsDetail::kServer) server = std::make_unique<ServerHistograms>();
  // Every engine of a process runs the same backend (--io-backend).
  if (!engines_.empty()) AddGauge(&f.backend, {{"backend", engines_[0]->io_backend()}}, 1);
  for (size_t i = 0; i < engines_.size(); ++i) {
    const Labels engine = {{"engine", std::to_string(i)}};
    AddGauge(&f.inflight, engine, static_cast<double>(engines_[i]->io_in_flight()));
    AddGauge(&f.inbox_depth, engine, static_cast<double>(engines_[i]->inbox_depth()));
    AddLatency(&f.inbox_wait, engine, engines_[i]->inbox_wait());
    engines_[i]->ForEachVolume(
        [&](const engine::Volume& v) { AddVolume(f, name_of_(v), v, server.get()); });
  }
  if (server) {
    for (int i = 0; i < engine::kOpTypeCount; ++i) {
      server->duration[i].Expose(&f.duration, {{"op", engine::OpTypeName(static_cast<OpType>(i))}});
    }
    server->stall.Expose(&f.stall_time, {});
    server->fdatasync.Expose(&f.fdatasync, {});
  }
  return f.Take();
}

std::string StoreVolumeName(const engine::Volume& volume) {
  const std::string& path = volume.file().path();
  std::string name = path.substr(path.rfind('/') + 1);  // npos + 1 == 0
  const std::string suffix = ".cow";
  if (name.size() > suffix.size() &&
      name.compare(name.size() - suffix.size(), suffix.size(), suffix) == 0) {
    name.resize(name.size() - suffix.size());
  }
  return name;
}

}  // namespace cowblk::metrics
