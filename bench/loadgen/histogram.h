// A log-linear latency histogram (HDR-like): exact below 256 ns, then 128
// buckets per power of two, so a reported percentile (the bucket's middle)
// is within 0.4% of the true value. Fixed size, no allocation after
// construction: Record() is a few instructions.

#ifndef COWBLK_BENCH_LOADGEN_HISTOGRAM_H_
#define COWBLK_BENCH_LOADGEN_HISTOGRAM_H_

#include <algorithm>
#include <bit>
#include <cstdint>
#include <vector>

namespace cowblk::bench {

class Histogram {
 public:
  static constexpr int kSubBits = 8;                     // 256 exact values
  static constexpr int kMaxExponent = 40;                // up to ~2^48 ns (3 days)
  static constexpr int kBuckets = (kMaxExponent + 2) << (kSubBits - 1);

  Histogram() : buckets_(kBuckets, 0) {}

  void Record(uint64_t ns) {
    buckets_[Index(ns)]++;
    count_++;
    sum_ += ns;
    min_ = std::min(min_, ns);
    max_ = std::max(max_, ns);
  }

  void Merge(const Histogram& o) {
    for (int i = 0; i < kBuckets; i++) buckets_[i] += o.buckets_[i];
    count_ += o.count_;
    sum_ += o.sum_;
    min_ = std::min(min_, o.min_);
    max_ = std::max(max_, o.max_);
  }

  uint64_t count() const { return count_; }
  uint64_t max() const { return count_ ? max_ : 0; }
  uint64_t min() const { return count_ ? min_ : 0; }
  double mean() const { return count_ ? static_cast<double>(sum_) / count_ : 0; }

  // The value at quantile q (0 < q <= 1): the smallest recorded value with
  // at least q*count values at or below it, as its bucket's middle (clamped
  // to the exact min and max).
  uint64_t Percentile(double q) const {
    if (count_ == 0) return 0;
    uint64_t rank = static_cast<uint64_t>(q * static_cast<double>(count_) + 0.999999);
    rank = std::clamp<uint64_t>(rank, 1, count_);
    uint64_t seen = 0;
    for (int i = 0; i < kBuckets; i++) {
      seen += buckets_[i];
      if (seen >= rank) return std::clamp(Middle(i), min_, max_);
    }
    return max_;
  }

  static int Index(uint64_t v) {
    constexpr uint64_t kExact = uint64_t{1} << kSubBits;
    if (v < kExact) return static_cast<int>(v);
    int e = (63 - std::countl_zero(v)) - (kSubBits - 1);  // >= 1
    if (e > kMaxExponent) return kBuckets - 1;
    return (e << (kSubBits - 1)) + static_cast<int>(v >> e);
  }
  // The smallest value of bucket i and its width.
  static uint64_t Low(int i) {
    constexpr int kExact = 1 << kSubBits;
    if (i < kExact) return static_cast<uint64_t>(i);
    int e = (i >> (kSubBits - 1)) - 1;
    uint64_t m = static_cast<uint64_t>(i - (e << (kSubBits - 1)));
    return m << e;
  }
  static uint64_t Middle(int i) {
    if (i < (1 << kSubBits)) return static_cast<uint64_t>(i);
    int e = (i >> (kSubBits - 1)) - 1;
    return Low(i) + ((uint64_t{1} << e) >> 1);
  }

 private:
  std::vector<uint64_t> buckets_;
  uint64_t count_ = 0;
  uint64_t sum_ = 0;
  uint64_t min_ = UINT64_MAX;
  uint64_t max_ = 0;
};

}  // namespace cowblk::bench

#endif  // COWBLK_BENCH_LOADGEN_HISTOGRAM_H_
