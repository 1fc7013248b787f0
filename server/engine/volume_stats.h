// Counters and gauges of one volume. Written only by the volume's engine
// thread, read by any thread (metrics, tests): relaxed atomics, no locks, and
// single-writer increments without read-modify-write instructions.

#ifndef COWBLK_SERVER_ENGINE_VOLUME_STATS_H_
#define COWBLK_SERVER_ENGINE_VOLUME_STATS_H_

#include <atomic>
#include <bit>
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

// A latency histogram with fixed power-of-two buckets: finite bucket i
// counts samples of at most 1 us << i (1 us ... 8.4 s), bucket kBounds the
// rest. Counts are per bucket, not cumulative; readers add them up, so the
// total always equals the sum of the buckets.
class LatencyHistogram {
 public:
  static constexpr int kBounds = 24;
  static constexpr int kBuckets = kBounds + 1;  // the last one is +Inf
  static double UpperBoundSeconds(int i) { return 1e-6 * static_cast<double>(uint64_t{1} << i); }

  // Engine thread only. A division by a constant and a bit count, no search.
  void Record(uint64_t ns) {
    const uint64_t us = (ns + 999) / 1000;  // rounded up: ns <= 1000 << i
    int i = us <= 1 ? 0 : std::bit_width(us - 1);
    if (i > kBounds) i = kBounds;
    buckets_[i].Add();
    sum_ns_.Add(ns);
  }
  uint64_t bucket(int i) const { return buckets_[i].value(); }
  uint64_t sum_ns() const { return sum_ns_.value(); }

 private:
  Counter buckets_[kBuckets];
  Counter sum_ns_;
};

struct VolumeStats {
  // Gauges.
  Counter in_flight[kOpTypeCount];   // queue depth by op
  Counter bitmap_writes_pending;     // bitmap block writes in flight
  Counter updates_waiting;           // bitmap updates on the waiting list
  Counter updates_uncommitted;       // deferred: acknowledged, bits not yet
                                     // written to the COW file
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
  // Histograms.
  LatencyHistogram io_duration[kOpTypeCount];  // Submit to completion, by op
                                               // (VolumeOptions::latency_histograms)
  LatencyHistogram read_stall;                 // how long each stalled read waited
  LatencyHistogram fdatasync_duration;         // each fdatasync, submission to completion
                                               // in the backend (latency_histograms)
};

}  // namespace cowblk::engine

#endif  // COWBLK_SERVER_ENGINE_VOLUME_STATS_H_
