// Helpers that build prometheus-cpp MetricFamily values by hand, for the
// collectors that read their numbers at scrape time (engine_collector.h,
// grpc_metrics.h, build_info.h) instead of keeping prometheus-cpp metric
// objects on the hot path.

#ifndef COWBLK_SERVER_METRICS_FAMILIES_H_
#define COWBLK_SERVER_METRICS_FAMILIES_H_

#include <prometheus/metric_family.h>

#include <cstdint>
#include <string>
#include <vector>

namespace cowblk::metrics {

using Labels = std::vector<prometheus::ClientMetric::Label>;

inline prometheus::MetricFamily Family(std::string name, std::string help,
                                       prometheus::MetricType type) {
  prometheus::MetricFamily f;
  f.name = std::move(name);
  f.help = std::move(help);
  f.type = type;
  return f;
}

inline void AddGauge(prometheus::MetricFamily* f, Labels labels, double value) {
  prometheus::ClientMetric m;
  m.label = std::move(labels);
  m.gauge.value = value;
  f->metric.push_back(std::move(m));
}

inline void AddCounter(prometheus::MetricFamily* f, Labels labels, double value) {
  prometheus::ClientMetric m;
  m.label = std::move(labels);
  m.counter.value = value;
  f->metric.push_back(std::move(m));
}

// `counts` holds one non-cumulative count per finite bound plus one for
// +Inf (bounds.size() + 1 entries); the serializer adds the +Inf bucket.
inline void AddHistogram(prometheus::MetricFamily* f, Labels labels,
                         const std::vector<double>& bounds, const uint64_t* counts, double sum) {
  prometheus::ClientMetric m;
  m.label = std::move(labels);
  uint64_t cumulative = 0;
  for (size_t i = 0; i < bounds.size(); ++i) {
    cumulative += counts[i];
    m.histogram.bucket.push_back({cumulative, bounds[i]});
  }
  m.histogram.sample_count = cumulative + counts[bounds.size()];
  m.histogram.sample_sum = sum;
  f->metric.push_back(std::move(m));
}

}  // namespace cowblk::metrics

#endif  // COWBLK_SERVER_METRICS_FAMILIES_H_
