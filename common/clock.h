// The monotonic clock in nanoseconds, for durations and deadlines inside one
// process (steady_clock; never jumps with the wall clock). Header-only.

#ifndef COWBLK_COMMON_CLOCK_H_
#define COWBLK_COMMON_CLOCK_H_

#include <chrono>
#include <cstdint>

namespace cowblk {

inline int64_t MonotonicNs() {
  return std::chrono::duration_cast<std::chrono::nanoseconds>(
             std::chrono::steady_clock::now().time_since_epoch())
      .count();
}

}  // namespace cowblk

#endif  // COWBLK_COMMON_CLOCK_H_
