#include "server/cow/cow_header.h"

#include <cstring>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "common/sector.h"

namespace cowblk::cow {
namespace {

// Field readers over a buffer whose length the caller already checked.
uint32_t Load32(const unsigned char* p, bool big_endian) {
  if (big_endian) {
    return uint32_t{p[0]} << 24 | uint32_t{p[1]} << 16 | uint32_t{p[2]} << 8 |
           uint32_t{p[3]};
  }
  return uint32_t{p[3]} << 24 | uint32_t{p[2]} << 16 | uint32_t{p[1]} << 8 |
         uint32_t{p[0]};
}

uint64_t Load64(const unsigned char* p, bool big_endian) {
  const uint64_t a = Load32(p, big_endian);
  const uint64_t b = Load32(p + 4, big_endian);
  return big_endian ? (a << 32 | b) : (b << 32 | a);
}

void Store32(unsigned char* p, uint32_t v) {
  p[0] = static_cast<unsigned char>(v >> 24);
  p[1] = static_cast<unsigned char>(v >> 16);
  p[2] = static_cast<unsigned char>(v >> 8);
  p[3] = static_cast<unsigned char>(v);
}

void Store64(unsigned char* p, uint64_t v) {
  Store32(p, static_cast<uint32_t>(v >> 32));
  Store32(p + 4, static_cast<uint32_t>(v));
}

absl::Status ShortFile(size_t len, size_t need, const char* what) {
  return absl::InvalidArgumentError(absl::StrFormat(
      "short file: %u bytes, a %s header needs %u", len, what, need));
}

// Copies the NUL-terminated path out of a fixed-size field.
absl::StatusOr<std::string> ReadPath(const unsigned char* p, size_t field_len) {
  const void* nul = memchr(p, 0, field_len);
  if (nul == nullptr) {
    return absl::InvalidArgumentError(absl::StrFormat(
        "backing file path is not NUL-terminated within its %u-byte field",
        field_len));
  }
  const size_t n = static_cast<size_t>(static_cast<const unsigned char*>(nul) - p);
  if (n == 0) return absl::InvalidArgumentError("backing file path is empty");
  return std::string(reinterpret_cast<const char*>(p), n);
}

absl::Status ValidateFields(const Header& h) {
  if (h.sectorsize != kSectorSize) {
    return absl::InvalidArgumentError(
        absl::StrFormat("sectorsize %u is not 512", h.sectorsize));
  }
  if (h.layout == Layout::kV3 || h.layout == Layout::kV3Broken) {
    if (h.alignment == 0) return absl::InvalidArgumentError("alignment is 0");
    if (!IsPowerOfTwo(h.alignment)) {
      return absl::InvalidArgumentError(
          absl::StrFormat("alignment %u is not a power of two", h.alignment));
    }
    if (h.alignment > kMaxAlignment) {
      return absl::InvalidArgumentError(absl::StrFormat(
          "alignment %u is above the limit %u", h.alignment, kMaxAlignment));
    }
  }
  if (h.size == 0) return absl::InvalidArgumentError("size is 0");
  if (h.size > kMaxDeviceSize) {
    return absl::InvalidArgumentError(absl::StrFormat(
        "size %u is above the limit %u (16 TiB)", h.size, kMaxDeviceSize));
  }
  return absl::OkStatus();
}

}  // namespace

const char* LayoutName(Layout layout) {
  switch (layout) {
    case Layout::kV1:
      return "v1";
    case Layout::kV2:
      return "v2";
    case Layout::kV3:
      return "v3";
    case Layout::kV3Broken:
      return "v3-broken";
  }
  return "unknown";
}

absl::StatusOr<Header> ParseHeader(const void* buf, size_t len) {
  const auto* p = static_cast<const unsigned char*>(buf);
  if (len < 8) return ShortFile(len, 8, "COW");
  Header h;
  const uint32_t magic_be = Load32(p, true);
  if (magic_be == kCowMagic) {
    h.big_endian = true;
  } else if (Load32(p, false) == kCowMagic) {
    h.big_endian = false;
  } else {
    return absl::InvalidArgumentError(absl::StrFormat(
        "not a COW file: bad magic 0x%08x (want 0x%08x)", magic_be, kCowMagic));
  }
  h.version = Load32(p + 4, h.big_endian);
  if (!h.big_endian && h.version != 1) {
    return absl::InvalidArgumentError(absl::StrFormat(
        "unknown version %u in little-endian header (only v1 is host-order)",
        h.version));
  }
  switch (h.version) {
    case 1: {
      if (len < kV1HeaderSize) return ShortFile(len, kV1HeaderSize, "v1");
      h.layout = Layout::kV1;
      auto path = ReadPath(p + 8, kV1BackingFileLen);
      if (!path.ok()) return path.status();
      h.backing_file = *std::move(path);
      h.mtime = Load32(p + 264, h.big_endian);
      h.size = Load64(p + 268, h.big_endian);
      h.sectorsize = Load32(p + 276, h.big_endian);
      break;
    }
    case 2: {
      if (len < kV2HeaderSize) return ShortFile(len, kV2HeaderSize, "v2");
      h.layout = Layout::kV2;
      auto path = ReadPath(p + 8, kBackingFileLen);
      if (!path.ok()) return path.status();
      h.backing_file = *std::move(path);
      h.mtime = Load32(p + 4104, true);
      h.size = Load64(p + 4108, true);
      h.sectorsize = Load32(p + 4116, true);
      break;
    }
    case 3: {
      if (len < 36) return ShortFile(len, kV3HeaderSize, "v3");
      // Old 64-bit builds padded the struct: four zero bytes where a packed
      // header holds the first byte of the (never empty) backing path.
      const bool broken = Load32(p + 32, true) == 0;
      if (broken) {
        if (len < kV3BrokenHeaderSize) {
          return ShortFile(len, kV3BrokenHeaderSize, "v3 (64-bit broken)");
        }
        h.layout = Layout::kV3Broken;
        h.mtime = Load32(p + 8, true);
        h.size = Load64(p + 16, true);
        h.sectorsize = Load32(p + 24, true);
        h.alignment = Load32(p + 28, true);
        h.cow_format = Load32(p + 32, true);
        auto path = ReadPath(p + 36, kBackingFileLen);
        if (!path.ok()) return path.status();
        h.backing_file = *std::move(path);
      } else {
        if (len < kV3HeaderSize) return ShortFile(len, kV3HeaderSize, "v3");
        h.layout = Layout::kV3;
        h.mtime = Load32(p + 8, true);
        h.size = Load64(p + 12, true);
        h.sectorsize = Load32(p + 20, true);
        h.alignment = Load32(p + 24, true);
        h.cow_format = Load32(p + 28, true);
        auto path = ReadPath(p + 32, kBackingFileLen);
        if (!path.ok()) return path.status();
        h.backing_file = *std::move(path);
      }
      break;
    }
    default:
      return absl::InvalidArgumentError(
          absl::StrFormat("unknown version %u (known: 1, 2, 3)", h.version));
  }
  if (absl::Status s = ValidateFields(h); !s.ok()) return s;
  return h;
}

absl::StatusOr<Geometry> ComputeGeometry(const Header& h) {
  if (absl::Status s = ValidateFields(h); !s.ok()) return s;
  Geometry g;
  g.sectors = SectorsForBytes(h.size);
  g.device_size = g.sectors * kSectorSize;
  g.bitmap_bytes = (g.sectors + 7) / 8;
  bool ok = true;
  switch (h.layout) {
    case Layout::kV1:
    case Layout::kV2:
      g.header_size = h.layout == Layout::kV1 ? kV1HeaderSize : kV2HeaderSize;
      g.bitmap_offset = g.header_size;
      g.bitmap_len = (h.size + 511) / 4096;
      ok = CheckedRoundUp(g.bitmap_offset + g.bitmap_len, kSectorSize,
                          &g.data_offset);
      g.bitmap_block_size = kSectorSize;
      break;
    case Layout::kV3:
    case Layout::kV3Broken:
      g.header_size =
          h.layout == Layout::kV3 ? kV3HeaderSize : kV3BrokenHeaderSize;
      g.bitmap_len = g.bitmap_bytes;
      ok = CheckedRoundUp(g.header_size, h.alignment, &g.bitmap_offset) &&
           CheckedRoundUp(g.bitmap_offset + g.bitmap_len, h.alignment,
                          &g.data_offset);
      g.bitmap_block_size = h.alignment < kSectorSize ? kSectorSize : h.alignment;
      break;
  }
  uint64_t end = 0;
  if (!ok || !CheckedAdd(g.data_offset, g.device_size, &end)) {
    return absl::InvalidArgumentError(
        absl::StrFormat("size %u overflows the file's offsets", h.size));
  }
  if (g.bitmap_offset + g.bitmap_bytes > g.data_offset) {
    return absl::InvalidArgumentError(absl::StrFormat(
        "bitmap of %u sectors (%u bytes at %u) overlaps the data area at %u",
        g.sectors, g.bitmap_bytes, g.bitmap_offset, g.data_offset));
  }
  return g;
}

absl::StatusOr<std::string> EncodeV3Header(const Header& h) {
  Header v3 = h;
  v3.layout = Layout::kV3;
  v3.version = 3;
  v3.big_endian = true;
  if (v3.backing_file.empty()) {
    return absl::InvalidArgumentError("backing file path is empty");
  }
  if (v3.backing_file.size() >= kBackingFileLen) {
    return absl::InvalidArgumentError(absl::StrFormat(
        "backing file path is %u bytes; the v3 header holds at most %u",
        v3.backing_file.size(), kBackingFileLen - 1));
  }
  if (v3.backing_file.find('\0') != std::string::npos) {
    return absl::InvalidArgumentError("backing file path contains a NUL byte");
  }
  if (absl::Status s = ValidateFields(v3); !s.ok()) return s;
  std::string out(kV3HeaderSize, '\0');
  auto* p = reinterpret_cast<unsigned char*>(out.data());
  Store32(p, kCowMagic);
  Store32(p + 4, 3);
  Store32(p + 8, v3.mtime);
  Store64(p + 12, v3.size);
  Store32(p + 20, v3.sectorsize);
  Store32(p + 24, v3.alignment);
  Store32(p + 28, v3.cow_format);
  memcpy(p + 32, v3.backing_file.data(), v3.backing_file.size());
  return out;
}

}  // namespace cowblk::cow
