// The per-sector allocation bitmap of a COW file, held in memory in exactly
// its on-disk byte layout: sector n is byte n / 8, mask 1 << (n % 8). That is
// what lets a bitmap block be written straight from memory.
//
// Thread-safety: none; the owner (an engine thread or a tool) serializes use.

#ifndef COWBLK_SERVER_COW_BITMAP_H_
#define COWBLK_SERVER_COW_BITMAP_H_

#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <memory>
#include <vector>

namespace cowblk::cow {

class Bitmap {
 public:
  // All bits clear. Holds ceil(sectors / 8) bytes in a zeroed buffer that
  // is 4096-aligned and padded to a multiple of 4096, so whole bitmap blocks
  // can be written from it with O_DIRECT.
  explicit Bitmap(uint64_t sectors);
  Bitmap(Bitmap&&) = default;
  Bitmap& operator=(Bitmap&&) = default;

  uint64_t sectors() const { return sectors_; }
  // The raw bytes, in on-disk layout. Bits at or past sectors() in the last
  // byte are kept as loaded (UML may leave garbage there) and ignored by
  // every query below.
  unsigned char* data() { return bytes_.get(); }
  const unsigned char* data() const { return bytes_.get(); }
  size_t size_bytes() const { return size_bytes_; }
  // Bytes allocated: size_bytes() rounded up to 4096, the rest zeros.
  size_t capacity_bytes() const { return capacity_bytes_; }

  // REQUIRES for all sector arguments: first + count <= sectors().
  bool Test(uint64_t sector) const {
    return (bytes_[sector >> 3] >> (sector & 7)) & 1;
  }
  void Set(uint64_t sector) {
    bytes_[sector >> 3] |= static_cast<unsigned char>(1u << (sector & 7));
  }
  void Clear(uint64_t sector) {
    bytes_[sector >> 3] &= static_cast<unsigned char>(~(1u << (sector & 7)));
  }
  void SetRange(uint64_t first, uint64_t count);
  void ClearRange(uint64_t first, uint64_t count);
  bool AllSet(uint64_t first, uint64_t count) const;
  bool AllClear(uint64_t first, uint64_t count) const;

  // Length of the run of bits equal to Test(first) that starts at `first`,
  // at most `max_count` long. Returns 0 when max_count is 0.
  uint64_t RunLength(uint64_t first, uint64_t max_count) const;

  // Number of set bits among the first sectors() bits.
  uint64_t CountSet() const;

 private:
  struct Free {
    void operator()(unsigned char* p) const { free(p); }
  };
  uint64_t sectors_;
  size_t size_bytes_;
  size_t capacity_bytes_;
  std::unique_ptr<unsigned char[], Free> bytes_;
};

// A run of sectors with the same bit.
struct SectorRun {
  uint64_t first = 0;
  uint64_t count = 0;
  bool allocated = false;
};

// Splits [first, first + count) into maximal runs of equal bits, in order;
// only the first `max_runs` of them (the cost, in time and memory, of a
// fragmented range stays bounded).
std::vector<SectorRun> SplitRuns(const Bitmap& bitmap, uint64_t first,
                                 uint64_t count, size_t max_runs = SIZE_MAX);

// The bitmap blocks holding the bits of a sector range. Block k covers the
// file bytes [k * block_size, (k + 1) * block_size); writes of it are clipped
// to the bitmap area so they never touch the header or the data.
struct BitmapBlockRange {
  uint64_t first_block = 0;
  uint64_t count = 0;  // 0 only for an empty sector range
};

// REQUIRES: block_size is a power of two >= 512.
BitmapBlockRange BitmapBlocksFor(uint64_t bitmap_offset, uint64_t block_size,
                                 uint64_t first_sector, uint64_t sector_count);

// The part of bitmap block `block` that belongs to the bitmap: the write
// goes to file offset `file_offset` and takes `length` bytes from the
// in-memory bitmap starting at byte `bitmap_byte`.
struct BitmapWrite {
  uint64_t file_offset = 0;
  uint64_t bitmap_byte = 0;
  uint64_t length = 0;
};

// REQUIRES: the block holds at least one bitmap byte (it came from
// BitmapBlocksFor over valid sectors).
BitmapWrite BitmapWriteFor(uint64_t bitmap_offset, uint64_t bitmap_bytes,
                           uint64_t block_size, uint64_t block);

}  // namespace cowblk::cow

#endif  // COWBLK_SERVER_COW_BITMAP_H_
