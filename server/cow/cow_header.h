// The on-disk header of a User-Mode Linux ubd COW file, and the geometry
// (bitmap and data offsets) that follows from it.
//
// Four layouts are read: v1 (280 bytes, host byte order), v2 (4120 bytes,
// big-endian), v3 (4128 bytes, packed big-endian) and the "broken" v3 that
// old 64-bit builds wrote (4136 bytes, unpacked). Only v3 is ever written.
// The spec is docs/format.md; every formula there is implemented here.
//
// Thread-safety: pure functions on values; safe from any thread.

#ifndef COWBLK_SERVER_COW_COW_HEADER_H_
#define COWBLK_SERVER_COW_COW_HEADER_H_

#include <cstddef>
#include <cstdint>
#include <string>

#include "absl/status/status.h"
#include "absl/status/statusor.h"

namespace cowblk::cow {

inline constexpr uint32_t kCowMagic = 0x4f4f4f4d;  // "OOOM" in big-endian
inline constexpr size_t kV1HeaderSize = 280;
inline constexpr size_t kV2HeaderSize = 4120;
inline constexpr size_t kV3HeaderSize = 4128;
inline constexpr size_t kV3BrokenHeaderSize = 4136;
// Enough bytes for any layout: callers read min(file size, this) and parse.
inline constexpr size_t kMaxHeaderSize = kV3BrokenHeaderSize;
inline constexpr size_t kV1BackingFileLen = 256;
inline constexpr size_t kBackingFileLen = 4096;  // v2 and v3
// The largest device we accept. It bounds the in-memory bitmap (4 GiB) so a
// hostile header cannot make us allocate without limit; uml_moo itself stops
// at 2 TiB.
inline constexpr uint64_t kMaxDeviceSize = uint64_t{1} << 44;  // 16 TiB
// Upper bound for the v3 alignment field, for the same reason.
inline constexpr uint32_t kMaxAlignment = uint32_t{1} << 30;
// What UML and uml_mkcow store on x86 (the page size).
inline constexpr uint32_t kDefaultAlignment = 4096;

enum class Layout { kV1, kV2, kV3, kV3Broken };

// "v1", "v2", "v3" or "v3-broken".
const char* LayoutName(Layout layout);

struct Header {
  Layout layout = Layout::kV3;
  bool big_endian = true;  // v1 only may be little-endian
  uint32_t version = 3;
  std::string backing_file;  // as stored, up to the first NUL
  uint32_t mtime = 0;        // backing file's st_mtime, low 32 bits
  uint64_t size = 0;         // backing file size in bytes
  uint32_t sectorsize = 512;
  uint32_t alignment = 0;    // v3 only; 0 for v1/v2
  uint32_t cow_format = 0;   // v3 only
};

struct Geometry {
  uint64_t header_size = 0;    // bytes of the on-disk header
  uint64_t bitmap_offset = 0;  // file offset of bit 0
  uint64_t bitmap_len = 0;     // bitmap bytes as the format defines them
  uint64_t data_offset = 0;    // file offset of sector 0's data
  uint64_t sectors = 0;        // device sectors: ceil(size / 512)
  uint64_t device_size = 0;    // sectors * 512
  // Bitmap bytes that hold the bits of all `sectors` (ceil(sectors / 8)).
  // For v1/v2 this can exceed bitmap_len (an old rounding bug); the extra
  // byte lives in the padding before data_offset.
  uint64_t bitmap_bytes = 0;
  // Granularity of bitmap writes: file offsets aligned to this. The alignment
  // for v3 (at least 512), 512 for the older layouts.
  uint64_t bitmap_block_size = 0;
};

// Parses and validates the header in the first `len` bytes of a COW file
// (pass min(file size, kMaxHeaderSize)). Errors are InvalidArgument with a
// message naming the problem: short file, bad magic, unknown version,
// sectorsize other than 512, alignment 0 or not a power of two, size 0 or
// above kMaxDeviceSize, backing path empty or not NUL-terminated.
// Never reads past buf[len - 1].
absl::StatusOr<Header> ParseHeader(const void* buf, size_t len);

// Computes the layout's offsets with overflow checks. Fails (InvalidArgument)
// when the bitmap would overlap the data area.
absl::StatusOr<Geometry> ComputeGeometry(const Header& header);

// Returns the 4128-byte v3 encoding of `header` (layout and version are
// ignored: v3 is the only layout written). Fails when the backing path is
// empty or longer than 4095 bytes, or the fields would not parse back.
absl::StatusOr<std::string> EncodeV3Header(const Header& header);

}  // namespace cowblk::cow

#endif  // COWBLK_SERVER_COW_COW_HEADER_H_
