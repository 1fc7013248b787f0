// Sector ranges every interop pattern includes: the first and last sector,
// and the edges of the 64-sector words UML's bitmap writes cover and of
// the bitmap's 4096-byte blocks. Header-only test data.

#ifndef COWBLK_TESTS_SUPPORT_EDGE_RANGES_H_
#define COWBLK_TESTS_SUPPORT_EDGE_RANGES_H_

#include <cstdint>
#include <utility>
#include <vector>

namespace cowblk::testing {

// (first sector, count) pairs that fit a device of `sectors` sectors.
inline std::vector<std::pair<uint64_t, uint64_t>> EdgeRanges(uint64_t sectors) {
  std::vector<std::pair<uint64_t, uint64_t>> ranges = {
      {0, 1},   {sectors - 1, 1}, {63, 2},   {127, 1},
      {128, 1}, {191, 66},        {4095, 2}, {4096 * 8 - 1, 2}};
  std::erase_if(ranges, [&](auto r) { return r.first + r.second > sectors; });
  return ranges;
}

}  // namespace cowblk::testing

#endif  // COWBLK_TESTS_SUPPORT_EDGE_RANGES_H_
