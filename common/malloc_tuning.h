// glibc malloc settings for processes that move megabyte-sized buffers
// (cowblkd, the cowblk CLI, the benchmarks).
//
// By default glibc serves each allocation of 128 KiB and more with a fresh
// mmap until its dynamic threshold has adapted, and gives memory back to
// the kernel eagerly; every fresh mapping is then page-faulted and zeroed
// again. A 1 MiB read or write through gRPC allocates several such buffers
// per request, so that cost showed up as ~30-40% of the CPU of a 1 MiB
// request (bench/RESULTS.md, "A/B: malloc's mmap threshold"). Raising the
// mmap threshold to 8 MiB and the trim threshold to 256 MiB keeps those
// buffers in the heap for reuse.
//
// Not higher: page-aligned buffers (aligned_alloc) of the same large size
// do not fit back into the holes the freed ones leave (memalign asks for
// the size plus the alignment), so with a 64 MiB threshold 64 streams each
// holding one 32 MiB read in turn left 1.5 GB of free heap resident under a
// 256 MiB byte budget (tests/integration/server_budget_test.cc). Buffers
// of 8 MiB and more get a mapping of their own, returned when freed.
//
// A user's own GLIBC_TUNABLES setting of either threshold wins: then
// nothing is changed.

#ifndef COWBLK_COMMON_MALLOC_TUNING_H_
#define COWBLK_COMMON_MALLOC_TUNING_H_

#include <malloc.h>

#include <cstdlib>
#include <cstring>

namespace cowblk {

inline void TuneMallocForLargeBuffers() {
  const char* tunables = std::getenv("GLIBC_TUNABLES");
  if (tunables != nullptr && (std::strstr(tunables, "mmap_threshold") != nullptr ||
                              std::strstr(tunables, "trim_threshold") != nullptr)) {
    return;
  }
  mallopt(M_MMAP_THRESHOLD, 8 << 20);
  mallopt(M_TRIM_THRESHOLD, 256 << 20);
}

}  // namespace cowblk

#endif  // COWBLK_COMMON_MALLOC_TUNING_H_
