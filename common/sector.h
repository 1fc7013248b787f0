// Sector arithmetic shared by the server, the tools and the client.
//
// cowblk speaks in 512-byte sectors on the wire and on disk, whatever a COW
// header's sectorsize field says (UML does the same).

#ifndef COWBLK_COMMON_SECTOR_H_
#define COWBLK_COMMON_SECTOR_H_

#include <cstdint>
#include <limits>

namespace cowblk {

inline constexpr uint64_t kSectorSize = 512;
inline constexpr uint32_t kSectorShift = 9;

// True when `value` is a multiple of the sector size.
constexpr bool IsSectorAligned(uint64_t value) {
  return (value & (kSectorSize - 1)) == 0;
}

// True when `value` is a non-zero power of two.
constexpr bool IsPowerOfTwo(uint64_t value) {
  return value != 0 && (value & (value - 1)) == 0;
}

// Sets *out to the smallest multiple of `align` that is >= value.
// Returns false (and leaves *out alone) on overflow.
// REQUIRES: align > 0.
constexpr bool CheckedRoundUp(uint64_t value, uint64_t align, uint64_t* out) {
  const uint64_t rem = value % align;
  if (rem == 0) {
    *out = value;
    return true;
  }
  const uint64_t add = align - rem;
  if (value > std::numeric_limits<uint64_t>::max() - add) return false;
  *out = value + add;
  return true;
}

// Sets *out = a + b. Returns false on overflow.
constexpr bool CheckedAdd(uint64_t a, uint64_t b, uint64_t* out) {
  if (a > std::numeric_limits<uint64_t>::max() - b) return false;
  *out = a + b;
  return true;
}

// Number of sectors needed to hold `bytes` (the last one may be partial).
constexpr uint64_t SectorsForBytes(uint64_t bytes) {
  return bytes / kSectorSize + (bytes % kSectorSize != 0 ? 1 : 0);
}

}  // namespace cowblk

#endif  // COWBLK_COMMON_SECTOR_H_
