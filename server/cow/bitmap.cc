#include "server/cow/bitmap.h"

#include <algorithm>
#include <bit>
#include <cstring>

namespace cowblk::cow {

Bitmap::Bitmap(uint64_t sectors)
    : sectors_(sectors),
      size_bytes_((sectors + 7) / 8),
      capacity_bytes_((size_bytes_ + 4095) / 4096 * 4096) {
  void* p = nullptr;
  if (posix_memalign(&p, 4096, capacity_bytes_ == 0 ? 4096 : capacity_bytes_) != 0) {
    abort();  // callers bound the size (kMaxDeviceSize): this is out of memory
  }
  memset(p, 0, capacity_bytes_);
  bytes_.reset(static_cast<unsigned char*>(p));
}

// Range operations touch the partial bytes at either end bit by bit and the
// middle a byte at a time: bitmaps of terabyte volumes are gigabytes.
void Bitmap::SetRange(uint64_t first, uint64_t count) {
  uint64_t s = first;
  const uint64_t end = first + count;
  for (; s < end && (s & 7) != 0; ++s) Set(s);
  if (end - s >= 8) {
    const uint64_t whole = (end - s) / 8;
    memset(&bytes_[s >> 3], 0xff, whole);
    s += whole * 8;
  }
  for (; s < end; ++s) Set(s);
}

void Bitmap::ClearRange(uint64_t first, uint64_t count) {
  uint64_t s = first;
  const uint64_t end = first + count;
  for (; s < end && (s & 7) != 0; ++s) Clear(s);
  if (end - s >= 8) {
    const uint64_t whole = (end - s) / 8;
    memset(&bytes_[s >> 3], 0, whole);
    s += whole * 8;
  }
  for (; s < end; ++s) Clear(s);
}

bool Bitmap::AllSet(uint64_t first, uint64_t count) const {
  if (count == 0) return true;
  return Test(first) && RunLength(first, count) == count;
}

bool Bitmap::AllClear(uint64_t first, uint64_t count) const {
  if (count == 0) return true;
  return !Test(first) && RunLength(first, count) == count;
}

uint64_t Bitmap::RunLength(uint64_t first, uint64_t max_count) const {
  if (max_count == 0) return 0;
  const bool value = Test(first);
  const unsigned char same = value ? 0xff : 0x00;
  const uint64_t end = first + max_count;
  uint64_t s = first;
  for (; s < end && (s & 7) != 0; ++s) {
    if (Test(s) != value) return s - first;
  }
  while (end - s >= 8 && bytes_[s >> 3] == same) s += 8;
  for (; s < end; ++s) {
    if (Test(s) != value) return s - first;
  }
  return max_count;
}

uint64_t Bitmap::CountSet() const {
  const uint64_t whole = sectors_ / 8;
  uint64_t n = 0;
  for (uint64_t i = 0; i < whole; ++i) n += std::popcount(bytes_[i]);
  for (uint64_t s = whole * 8; s < sectors_; ++s) n += Test(s);
  return n;
}

std::vector<SectorRun> SplitRuns(const Bitmap& bitmap, uint64_t first,
                                 uint64_t count, size_t max_runs) {
  std::vector<SectorRun> runs;
  uint64_t s = first;
  const uint64_t end = first + count;
  while (s < end && runs.size() < max_runs) {
    const uint64_t n = bitmap.RunLength(s, end - s);
    runs.push_back(SectorRun{s, n, bitmap.Test(s)});
    s += n;
  }
  return runs;
}

BitmapBlockRange BitmapBlocksFor(uint64_t bitmap_offset, uint64_t block_size,
                                 uint64_t first_sector, uint64_t sector_count) {
  if (sector_count == 0) return {};
  const uint64_t first_byte = bitmap_offset + first_sector / 8;
  const uint64_t last_byte = bitmap_offset + (first_sector + sector_count - 1) / 8;
  const uint64_t first_block = first_byte / block_size;
  return {first_block, last_byte / block_size - first_block + 1};
}

BitmapWrite BitmapWriteFor(uint64_t bitmap_offset, uint64_t bitmap_bytes,
                           uint64_t block_size, uint64_t block) {
  const uint64_t start = std::max(block * block_size, bitmap_offset);
  const uint64_t end =
      std::min((block + 1) * block_size, bitmap_offset + bitmap_bytes);
  return {start, start - bitmap_offset, end - start};
}

}  // namespace cowblk::cow
