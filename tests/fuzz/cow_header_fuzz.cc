// libFuzzer target for the COW header parser and the geometry derived from
// it: the first bytes of a COW file are the one input cowblk takes from any
// file it is pointed at, so the parser must stay safe and self-consistent on
// arbitrary bytes. The bytes after the header also feed the bitmap helpers,
// which is where they would sit on disk.

#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "server/cow/bitmap.h"
#include "server/cow/cow_header.h"
#include "tests/fuzz/fuzz_check.h"

namespace cowblk::cow {
namespace {

// Keeps the bitmap checks cheap (512 bytes) whatever size the header claims.
constexpr uint64_t kMaxFuzzSectors = 4096;

bool IsV3Layout(Layout layout) {
  return layout == Layout::kV3 || layout == Layout::kV3Broken;
}

uint64_t HeaderSizeOf(Layout layout) {
  switch (layout) {
    case Layout::kV1:
      return kV1HeaderSize;
    case Layout::kV2:
      return kV2HeaderSize;
    case Layout::kV3:
      return kV3HeaderSize;
    case Layout::kV3Broken:
      return kV3BrokenHeaderSize;
  }
  return 0;
}

void CheckGeometry(const Header& h, const Geometry& g) {
  FUZZ_CHECK(g.header_size == HeaderSizeOf(h.layout));
  FUZZ_CHECK(g.bitmap_offset >= g.header_size);
  FUZZ_CHECK(g.bitmap_offset + g.bitmap_bytes <= g.data_offset);
  FUZZ_CHECK(g.sectors * 512 == g.device_size);
  FUZZ_CHECK(g.device_size >= h.size);
  // One sector less would not hold the last byte of the backing file.
  FUZZ_CHECK(g.device_size - h.size < 512);
  FUZZ_CHECK(g.bitmap_bytes == (g.sectors + 7) / 8);
  // BitmapBlocksFor() REQUIRES this of every block size it is given.
  FUZZ_CHECK(g.bitmap_block_size >= 512 &&
             (g.bitmap_block_size & (g.bitmap_block_size - 1)) == 0);
  if (IsV3Layout(h.layout)) {
    // Aligned bitmap-block writes rely on the bitmap area being whole
    // alignment blocks, so they can never touch the header or the data.
    FUZZ_CHECK(g.data_offset % h.alignment == 0);
    FUZZ_CHECK(g.bitmap_offset % h.alignment == 0);
    FUZZ_CHECK(g.bitmap_len == g.bitmap_bytes);
  }
}

// Whatever cowblk read from a v3 file it must be able to write back unchanged,
// or rewriting a header (e.g. after a commit) would silently alter it.
// Broken v3 is included: it is what an upgrade to packed v3 goes through.
void CheckV3RoundTrip(const Header& h, const uint8_t* data, size_t size) {
  absl::StatusOr<std::string> encoded = EncodeV3Header(h);
  FUZZ_CHECK(encoded.ok());
  FUZZ_CHECK(encoded->size() == kV3HeaderSize);
  absl::StatusOr<Header> again = ParseHeader(encoded->data(), encoded->size());
  FUZZ_CHECK(again.ok());
  FUZZ_CHECK(again->layout == Layout::kV3);
  FUZZ_CHECK(again->version == 3);
  FUZZ_CHECK(again->big_endian);
  FUZZ_CHECK(again->backing_file == h.backing_file);
  FUZZ_CHECK(again->mtime == h.mtime);
  FUZZ_CHECK(again->size == h.size);
  FUZZ_CHECK(again->sectorsize == h.sectorsize);
  FUZZ_CHECK(again->alignment == h.alignment);
  FUZZ_CHECK(again->cow_format == h.cow_format);
  if (h.layout == Layout::kV3) {
    // A packed input must come back byte for byte up to the path's NUL; only
    // the garbage after it may differ.
    const size_t meaningful = 32 + h.backing_file.size() + 1;
    FUZZ_CHECK(size >= meaningful);
    FUZZ_CHECK(std::memcmp(encoded->data(), data, meaningful) == 0);
  }
}

// A nonempty sector range inside [0, sectors), chosen by the input's last 16
// bytes so the fuzzer can steer it independently of the header fields.
struct SectorRange {
  uint64_t first = 0;
  uint64_t count = 0;
};

SectorRange PickRange(const uint8_t* data, size_t size, uint64_t sectors) {
  uint64_t a = 0;
  uint64_t b = 0;
  if (size >= 16) {
    std::memcpy(&a, data + size - 16, sizeof(a));
    std::memcpy(&b, data + size - 8, sizeof(b));
  }
  const uint64_t first = a % sectors;
  return {first, b % (sectors - first) + 1};
}

bool InRange(uint64_t bit, SectorRange r) {
  return bit >= r.first && bit - r.first < r.count;
}

// Every bit outside `r`, including the unused bits of the last byte, must be
// as it was: a range write that strays corrupts other sectors' allocation.
void CheckOnlyRangeChanged(const std::vector<unsigned char>& before,
                           const Bitmap& bitmap, SectorRange r) {
  for (uint64_t bit = 0; bit < before.size() * 8; ++bit) {
    if (InRange(bit, r)) continue;
    const unsigned mask = 1u << (bit & 7);
    FUZZ_CHECK((before[bit >> 3] & mask) == (bitmap.data()[bit >> 3] & mask));
  }
}

void CheckRuns(const Bitmap& bitmap) {
  const uint64_t sectors = bitmap.sectors();
  const std::vector<SectorRun> runs = SplitRuns(bitmap, 0, sectors);
  uint64_t next = 0;
  uint64_t allocated = 0;
  for (size_t i = 0; i < runs.size(); ++i) {
    const SectorRun& run = runs[i];
    FUZZ_CHECK(run.first == next);
    FUZZ_CHECK(run.count > 0);
    FUZZ_CHECK(run.count <= sectors - run.first);
    // Alternation is what makes the runs maximal.
    if (i > 0) FUZZ_CHECK(run.allocated != runs[i - 1].allocated);
    for (uint64_t s = run.first; s < run.first + run.count; ++s) {
      FUZZ_CHECK(bitmap.Test(s) == run.allocated);
    }
    FUZZ_CHECK(run.allocated ? bitmap.AllSet(run.first, run.count)
                             : bitmap.AllClear(run.first, run.count));
    if (run.allocated) allocated += run.count;
    next = run.first + run.count;
  }
  FUZZ_CHECK(next == sectors);
  FUZZ_CHECK(bitmap.CountSet() == allocated);
}

void CheckRangeOps(Bitmap& bitmap, SectorRange r) {
  const std::vector<unsigned char> before(
      bitmap.data(), bitmap.data() + bitmap.size_bytes());
  const uint64_t set_before = bitmap.CountSet();
  uint64_t set_in_range = 0;
  for (uint64_t s = r.first; s < r.first + r.count; ++s) {
    set_in_range += bitmap.Test(s);
  }

  bitmap.SetRange(r.first, r.count);
  FUZZ_CHECK(bitmap.AllSet(r.first, r.count));
  FUZZ_CHECK(bitmap.CountSet() == set_before + (r.count - set_in_range));
  CheckOnlyRangeChanged(before, bitmap, r);

  bitmap.ClearRange(r.first, r.count);
  FUZZ_CHECK(bitmap.AllClear(r.first, r.count));
  FUZZ_CHECK(bitmap.CountSet() == set_before - set_in_range);
  CheckOnlyRangeChanged(before, bitmap, r);
}

// Loads the bytes that follow the header, where they would sit on disk, into
// a small bitmap; the unused bits of the last byte stay as loaded, so the
// queries' promise to ignore them is exercised too.
void CheckBitmap(const Geometry& g, const uint8_t* data, size_t size) {
  const uint64_t sectors = std::min(g.sectors, kMaxFuzzSectors);
  Bitmap bitmap(sectors);
  const size_t start = std::min<uint64_t>(g.header_size, size);
  const size_t n = std::min(bitmap.size_bytes(), size - start);
  if (n > 0) std::memcpy(bitmap.data(), data + start, n);
  CheckRuns(bitmap);
  CheckRangeOps(bitmap, PickRange(data, size, sectors));
}

// The bitmap-block arithmetic works on the full device, so it sees the large
// offsets a real volume has; only a few blocks at each end of the range are
// checked to keep an execution cheap.
void CheckBitmapBlocks(const Header& h, const Geometry& g, SectorRange r) {
  constexpr uint64_t kEdgeBlocks = 4;
  const uint64_t bs = g.bitmap_block_size;
  const BitmapBlockRange blocks =
      BitmapBlocksFor(g.bitmap_offset, bs, r.first, r.count);
  const uint64_t first_byte = g.bitmap_offset + r.first / 8;
  const uint64_t last_byte = g.bitmap_offset + (r.first + r.count - 1) / 8;
  FUZZ_CHECK(blocks.count >= 1);
  const uint64_t last_block = blocks.first_block + blocks.count - 1;
  FUZZ_CHECK(blocks.first_block * bs <= first_byte);
  FUZZ_CHECK(first_byte < (blocks.first_block + 1) * bs);
  FUZZ_CHECK(last_block * bs <= last_byte);
  FUZZ_CHECK(last_byte < (last_block + 1) * bs);

  for (uint64_t i = 0; i < blocks.count; ++i) {
    if (i == kEdgeBlocks && blocks.count > 2 * kEdgeBlocks) {
      i = blocks.count - kEdgeBlocks;
    }
    const uint64_t k = blocks.first_block + i;
    const BitmapWrite w =
        BitmapWriteFor(g.bitmap_offset, g.bitmap_bytes, bs, k);
    FUZZ_CHECK(w.length > 0);
    // Clipped to the bitmap: never the header, never the data.
    FUZZ_CHECK(w.file_offset >= g.bitmap_offset);
    FUZZ_CHECK(w.file_offset + w.length <= g.bitmap_offset + g.bitmap_bytes);
    FUZZ_CHECK(w.file_offset + w.length <= g.data_offset);
    FUZZ_CHECK(w.file_offset >= k * bs);
    FUZZ_CHECK(w.file_offset + w.length <= (k + 1) * bs);
    FUZZ_CHECK(w.bitmap_byte == w.file_offset - g.bitmap_offset);
    // It must carry every byte of the range's bits that lies in this block,
    // or a bit set in memory would never reach the disk.
    const uint64_t lo = std::max(first_byte, k * bs);
    const uint64_t hi = std::min(last_byte, (k + 1) * bs - 1);
    FUZZ_CHECK(lo <= hi);
    FUZZ_CHECK(w.file_offset <= lo && hi < w.file_offset + w.length);
    if (IsV3Layout(h.layout) && h.alignment >= 512) {
      // The spec's promise for v3: whole aligned blocks are bitmap only.
      FUZZ_CHECK(k * bs >= g.bitmap_offset && (k + 1) * bs <= g.data_offset);
    }
  }
}

int FuzzOneInput(const uint8_t* data, size_t size) {
  absl::StatusOr<Header> header = ParseHeader(data, size);
  if (!header.ok()) return 0;
  // Error messages print it, so every parsed layout must have a name.
  FUZZ_CHECK(std::strcmp(LayoutName(header->layout), "unknown") != 0);
  if (IsV3Layout(header->layout)) CheckV3RoundTrip(*header, data, size);
  absl::StatusOr<Geometry> geometry = ComputeGeometry(*header);
  if (!geometry.ok()) return 0;
  CheckGeometry(*header, *geometry);
  CheckBitmap(*geometry, data, size);
  CheckBitmapBlocks(*header, *geometry,
                    PickRange(data, size, geometry->sectors));
  return 0;
}

}  // namespace
}  // namespace cowblk::cow

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  return cowblk::cow::FuzzOneInput(data, size);
}
