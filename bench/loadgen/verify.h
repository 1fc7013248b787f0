// The self-describing 512-byte sectors that `cowblk-bench --verify` writes,
// and their check. A sector is 64 little-endian 64-bit words:
//
//   word 0      magic "CKWBVRF1"
//   word 1      the sector's byte offset on the device
//   word 2      generation (1 for the first write of a block, +1 per rewrite)
//   word 3      the run's --seed
//   words 4-62  pseudo-random fill derived from (offset, generation, seed)
//   word 63     a 64-bit hash of words 0-62
//
// A flipped bit anywhere fails the hash; a sector written elsewhere (a
// misdirected write) fails the offset; a lost write fails the generation.

#ifndef COWBLK_BENCH_LOADGEN_VERIFY_H_
#define COWBLK_BENCH_LOADGEN_VERIFY_H_

#include <cstddef>
#include <cstdint>
#include <string>

namespace cowblk::bench {

inline constexpr size_t kSector = 512;
inline constexpr uint64_t kVerifyMagic = 0x3146525642574b43ull;  // "CKWBVRF1"

enum class SectorCheck {
  kOk,
  kZeros,         // all zero: never written (or trimmed)
  kBadMagic,      // not a sector of ours
  kBadChecksum,   // ours, but changed
  kWrongOffset,   // ours, written for another offset
  kWrongSeed,     // ours, from a run with another --seed
  kWrongGeneration,
};

// Writes `count` sectors at `buf` for device offset `offset`.
void FillSectors(char* buf, size_t count, uint64_t offset, uint64_t generation, uint64_t seed);

struct SectorResult {
  SectorCheck check = SectorCheck::kOk;
  uint64_t found = 0;  // the offset, seed or generation the sector holds
};
SectorResult CheckSector(const char* sector, uint64_t offset, uint64_t generation, uint64_t seed);

// "generation 3, want 4", "bad checksum", ... for a failed check.
std::string Describe(const SectorResult& r, uint64_t offset, uint64_t generation, uint64_t seed);

}  // namespace cowblk::bench

#endif  // COWBLK_BENCH_LOADGEN_VERIFY_H_
