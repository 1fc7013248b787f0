// Counters and gauges of one volume. Written only by the volume's engine
// thread, read by any thread (metrics, tests): relaxed atomics, no locks, and
// single-writer increments without read-modify-write instructions.

#ifndef COWBLK_SERVER_ENGINE_VOLUME_STATS_H_
#define COWBLK_SERVER_ENGINE_VOLUME_STATS_H_

#include <atomic>
#include <cstdint>

#include "server/engine/request.h"

namespace cowblk::engine {

class Counter {
 public:
  uint64_t value() const { return v_.load(std::memory_order_relaxed); }
  // Engine thread only.
  void Add(uint64_t n = 1) { v_.store(v_.load(std::memory_order_relaxed) + n, std::memory_order_relaxed); }
  void Sub(uint64_t n = 1) { v_.store(v_.load(std::memory_order_relaxed) - n, std::memory_order_relaxed); }
  void Set(uint64_t n) { v_.store(n, std::memory_order_relaxed); }

 private:
  std::atomic<uint64_t> v_{0};
};

struct VolumeStats {
  // Gauges.
  Counter in_flight[kOpTypeCount];   // queue depth by op
  Counter bitmap_writes_pending;     // bitmap block writes in flight
  Counter updates_waiting;           // bitmap updates on the waiting list
  Counter reads_stalled;             // reads held behind a bitmap update
  Counter allocated_sectors;         // bits set in memory
  // Counters.
  Counter ops[kOpTypeCount];         // completed requests
  Counter ops_failed[kOpTypeCount];  // ... of which failed
  Counter bytes[kOpTypeCount];       // bytes of successful requests
  Counter bytes_read_cow;            // read from the COW file
  Counter bytes_read_backing;        // read from the backing file
  Counter bitmap_writes;             // bitmap block writes issued
  Counter bitmap_write_errors;
  Counter updates_coalesced;         // updates that shared a block write
  Counter updates_waited;            // updates that had to wait
  Counter fsyncs;                    // fdatasync calls issued
  Counter read_stalls;               // reads that stalled
  Counter read_stall_ns;             // total time reads spent stalled
  Counter io_errors;                 // failed or short-uncontinuable I/O
};

}  // namespace cowblk::engine

#endif  // COWBLK_SERVER_ENGINE_VOLUME_STATS_H_
