#include "bench/loadgen/verify.h"

#include <cstring>

#include "absl/strings/str_cat.h"

namespace cowblk::bench {
namespace {

constexpr int kWords = kSector / 8;

inline uint64_t Mix(uint64_t x) {  // splitmix64's finalizer
  x ^= x >> 30;
  x *= 0xbf58476d1ce4e5b9ull;
  x ^= x >> 27;
  x *= 0x94d049bb133111ebull;
  x ^= x >> 31;
  return x;
}

// Every step is a bijection of the state for a fixed word, so two inputs
// that differ in one word always hash differently.
inline uint64_t Hash(const uint64_t* w, int n) {
  uint64_t h = 0x6a09e667f3bcc908ull;
  for (int i = 0; i < n; i++) {
    h ^= w[i];
    h *= 0x9e3779b97f4a7c15ull;
    h ^= h >> 29;
  }
  return Mix(h);
}

inline void Fill(uint64_t* w, uint64_t offset, uint64_t generation, uint64_t seed) {
  w[0] = kVerifyMagic;
  w[1] = offset;
  w[2] = generation;
  w[3] = seed;
  uint64_t x = Mix(offset ^ Mix(generation ^ Mix(seed)));
  for (int i = 4; i < kWords - 1; i++) {
    x += 0x9e3779b97f4a7c15ull;
    w[i] = Mix(x);
  }
  w[kWords - 1] = Hash(w, kWords - 1);
}

}  // namespace

void FillSectors(char* buf, size_t count, uint64_t offset, uint64_t generation, uint64_t seed) {
  uint64_t w[kWords];
  for (size_t i = 0; i < count; i++) {
    Fill(w, offset + i * kSector, generation, seed);
    std::memcpy(buf + i * kSector, w, kSector);
  }
}

SectorResult CheckSector(const char* sector, uint64_t offset, uint64_t generation, uint64_t seed) {
  uint64_t w[kWords];
  std::memcpy(w, sector, kSector);
  if (w[0] != kVerifyMagic) {
    bool zeros = true;
    for (int i = 0; i < kWords && zeros; i++) zeros = w[i] == 0;
    return {zeros ? SectorCheck::kZeros : SectorCheck::kBadMagic, 0};
  }
  if (Hash(w, kWords - 1) != w[kWords - 1]) return {SectorCheck::kBadChecksum, 0};
  if (w[1] != offset) return {SectorCheck::kWrongOffset, w[1]};
  if (w[3] != seed) return {SectorCheck::kWrongSeed, w[3]};
  if (w[2] != generation) return {SectorCheck::kWrongGeneration, w[2]};
  return {SectorCheck::kOk, 0};
}

std::string Describe(const SectorResult& r, uint64_t offset, uint64_t generation, uint64_t seed) {
  switch (r.check) {
    case SectorCheck::kOk:
      return "ok";
    case SectorCheck::kZeros:
      return absl::StrCat("all zeros (never written), want generation ", generation);
    case SectorCheck::kBadMagic:
      return "bad magic (not written by cowblk-bench --verify)";
    case SectorCheck::kBadChecksum:
      return "bad checksum";
    case SectorCheck::kWrongOffset:
      return absl::StrCat("offset field says ", r.found, " (want ", offset, ")");
    case SectorCheck::kWrongSeed:
      return absl::StrCat("seed ", r.found, ", want ", seed);
    case SectorCheck::kWrongGeneration:
      return absl::StrCat("generation ", r.found, ", want ", generation);
  }
  return "?";
}

}  // namespace cowblk::bench
