// What glibc's malloc keeps of the memory cowblkd freed, read with
// mallinfo2() at scrape time:
//   cowblk_malloc_free_bytes   gauge: bytes malloc holds free for reuse
//   cowblk_malloc_heap_bytes   gauge: bytes of its heaps (all arenas, not
//                              counting chunks mapped on their own)
// Freed memory is not all given back to the system: cowblkd keeps large
// buffers in the heap on purpose (common/malloc_tuning.h), and each
// thread arena keeps the top of its heap, up to 64 MiB, which malloc_trim
// cannot return (docs/cowblkd.md, "Limits"). These gauges show that cache.
// Free bytes that malloc_trim returned still count here although they are
// no longer resident: an upper bound.
//
// Thread-safety: Collect may run on any thread (mallinfo2 takes each
// arena's lock in turn).

#ifndef COWBLK_SERVER_METRICS_MALLOC_COLLECTOR_H_
#define COWBLK_SERVER_METRICS_MALLOC_COLLECTOR_H_

#include <prometheus/collectable.h>
#include <prometheus/metric_family.h>

#include <vector>

namespace cowblk::metrics {

class MallocCollector : public prometheus::Collectable {
 public:
  std::vector<prometheus::MetricFamily> Collect() const override;
};

}  // namespace cowblk::metrics

#endif  // COWBLK_SERVER_METRICS_MALLOC_COLLECTOR_H_
