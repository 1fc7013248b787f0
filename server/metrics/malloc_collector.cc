#include "server/metrics/malloc_collector.h"

#include <malloc.h>

#include "server/metrics/families.h"

namespace cowblk::metrics {

std::vector<prometheus::MetricFamily> MallocCollector::Collect() const {
  const struct mallinfo2 info = mallinfo2();
  std::vector<prometheus::MetricFamily> out;
  out.push_back(Family("cowblk_malloc_free_bytes",
                       "Bytes malloc holds free for reuse, in all arenas (an upper bound on "
                       "freed memory not given back to the system)",
                       prometheus::MetricType::Gauge));
  AddGauge(&out.back(), {}, static_cast<double>(info.fordblks));
  out.push_back(Family("cowblk_malloc_heap_bytes",
                       "Bytes of malloc's heaps in all arenas (chunks mapped on their own "
                       "not included)",
                       prometheus::MetricType::Gauge));
  AddGauge(&out.back(), {}, static_cast<double>(info.arena));
  return out;
}

}  // namespace cowblk::metrics
