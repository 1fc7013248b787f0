// Crafted headers for every layout and every validation error, checked
// against the formulas of docs/format.md.

#include "server/cow/cow_header.h"

#include <cstring>
#include <string>

#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace cowblk::cow {
namespace {

using ::testing::HasSubstr;

void Put32(std::string& b, size_t off, uint32_t v, bool big_endian = true) {
  for (int i = 0; i < 4; ++i) {
    const int shift = big_endian ? 24 - 8 * i : 8 * i;
    b[off + i] = static_cast<char>(v >> shift);
  }
}

void Put64(std::string& b, size_t off, uint64_t v, bool big_endian = true) {
  if (big_endian) {
    Put32(b, off, static_cast<uint32_t>(v >> 32));
    Put32(b, off + 4, static_cast<uint32_t>(v));
  } else {
    Put32(b, off, static_cast<uint32_t>(v), false);
    Put32(b, off + 4, static_cast<uint32_t>(v >> 32), false);
  }
}

void PutPath(std::string& b, size_t off, const std::string& path) {
  memcpy(&b[off], path.data(), path.size());
}

std::string V3(uint64_t size, uint32_t alignment = 4096,
               const std::string& path = "/images/base.img") {
  std::string b(kV3HeaderSize, '\0');
  Put32(b, 0, kCowMagic);
  Put32(b, 4, 3);
  Put32(b, 8, 1700000000);
  Put64(b, 12, size);
  Put32(b, 20, 512);
  Put32(b, 24, alignment);
  Put32(b, 28, 0);
  PutPath(b, 32, path);
  return b;
}

std::string V3Broken(uint64_t size, uint32_t alignment = 4096) {
  std::string b(kV3BrokenHeaderSize, '\0');
  Put32(b, 0, kCowMagic);
  Put32(b, 4, 3);
  Put32(b, 8, 1700000001);
  Put64(b, 16, size);
  Put32(b, 24, 512);
  Put32(b, 28, alignment);
  Put32(b, 32, 0);  // cow_format, and the four zero bytes that give it away
  PutPath(b, 36, "/images/broken.img");
  return b;
}

std::string V2(uint64_t size) {
  std::string b(kV2HeaderSize, '\0');
  Put32(b, 0, kCowMagic);
  Put32(b, 4, 2);
  PutPath(b, 8, "/images/v2.img");
  Put32(b, 4104, 1600000000);
  Put64(b, 4108, size);
  Put32(b, 4116, 512);
  return b;
}

std::string V1(uint64_t size, bool big_endian) {
  std::string b(kV1HeaderSize, '\0');
  Put32(b, 0, kCowMagic, big_endian);
  Put32(b, 4, 1, big_endian);
  PutPath(b, 8, "/images/v1.img");
  Put32(b, 264, 1500000000, big_endian);
  Put64(b, 268, size, big_endian);
  Put32(b, 276, 512, big_endian);
  return b;
}

Geometry MustGeometry(const std::string& bytes) {
  auto h = ParseHeader(bytes.data(), bytes.size());
  EXPECT_TRUE(h.ok()) << h.status();
  auto g = ComputeGeometry(*h);
  EXPECT_TRUE(g.ok()) << g.status();
  return *g;
}

std::string ParseError(const std::string& bytes) {
  auto h = ParseHeader(bytes.data(), bytes.size());
  EXPECT_FALSE(h.ok());
  if (h.ok()) return "";
  EXPECT_EQ(h.status().code(), absl::StatusCode::kInvalidArgument);
  return std::string(h.status().message());
}

TEST(CowHeaderTest, V3FieldsAreReadAtTheirPackedBigEndianOffsets) {
  const uint64_t size = 0x0000000123456000;  // exercises both halves of the u64
  auto h = ParseHeader(V3(size).data(), kV3HeaderSize);
  ASSERT_TRUE(h.ok()) << h.status();
  EXPECT_EQ(h->layout, Layout::kV3);
  EXPECT_EQ(h->version, 3u);
  EXPECT_EQ(h->mtime, 1700000000u);
  EXPECT_EQ(h->size, size);
  EXPECT_EQ(h->sectorsize, 512u);
  EXPECT_EQ(h->alignment, 4096u);
  EXPECT_EQ(h->backing_file, "/images/base.img");
}

TEST(CowHeaderTest, V3GeometryOf8MiBMatchesTheSpecExample) {
  Geometry g = MustGeometry(V3(8 << 20));
  EXPECT_EQ(g.header_size, 4128u);
  EXPECT_EQ(g.bitmap_offset, 8192u);
  EXPECT_EQ(g.bitmap_len, 2048u);
  EXPECT_EQ(g.data_offset, 12288u);
  EXPECT_EQ(g.sectors, 16384u);
  EXPECT_EQ(g.bitmap_block_size, 4096u);
}

TEST(CowHeaderTest, V3HonoursTheStoredAlignment) {
  Geometry g = MustGeometry(V3(8 << 20, 512));
  EXPECT_EQ(g.bitmap_offset, 4608u);           // round_up(4128, 512)
  EXPECT_EQ(g.data_offset, 4608u + 2048u);     // already a multiple of 512
  Geometry big = MustGeometry(V3(8 << 20, 65536));
  EXPECT_EQ(big.bitmap_offset, 65536u);
  EXPECT_EQ(big.data_offset, 131072u);
}

TEST(CowHeaderTest, V3SizeNotMultipleOf512RoundsTheDeviceUp) {
  Geometry g = MustGeometry(V3((1 << 20) + 100));
  EXPECT_EQ(g.sectors, 2049u);
  EXPECT_EQ(g.device_size, 2049u * 512);
  EXPECT_EQ(g.bitmap_len, 257u);  // ceil(2049 / 8)
}

TEST(CowHeaderTest, BitmapLengthIsCeilingOfSectorsOverEight) {
  EXPECT_EQ(MustGeometry(V3(8 * 512)).bitmap_len, 1u);
  EXPECT_EQ(MustGeometry(V3(9 * 512)).bitmap_len, 2u);
  EXPECT_EQ(MustGeometry(V3(512)).bitmap_len, 1u);
}

TEST(CowHeaderTest, BrokenV3IsDetectedByFourZeroBytesAtOffset32) {
  const std::string b = V3Broken(4 << 20);
  auto h = ParseHeader(b.data(), b.size());
  ASSERT_TRUE(h.ok()) << h.status();
  EXPECT_EQ(h->layout, Layout::kV3Broken);
  EXPECT_EQ(h->mtime, 1700000001u);
  EXPECT_EQ(h->size, uint64_t{4} << 20);
  EXPECT_EQ(h->alignment, 4096u);
  EXPECT_EQ(h->backing_file, "/images/broken.img");
  Geometry g = *ComputeGeometry(*h);
  EXPECT_EQ(g.header_size, 4136u);
  EXPECT_EQ(g.bitmap_offset, 8192u);  // round_up(4136, 4096)
  EXPECT_EQ(g.data_offset, 8192u + 4096u);
}

TEST(CowHeaderTest, V2FieldsAndGeometry) {
  const uint64_t size = 8 << 20;
  auto h = ParseHeader(V2(size).data(), kV2HeaderSize);
  ASSERT_TRUE(h.ok()) << h.status();
  EXPECT_EQ(h->layout, Layout::kV2);
  EXPECT_EQ(h->backing_file, "/images/v2.img");
  EXPECT_EQ(h->mtime, 1600000000u);
  EXPECT_EQ(h->size, size);
  Geometry g = *ComputeGeometry(*h);
  EXPECT_EQ(g.bitmap_offset, 4120u);
  EXPECT_EQ(g.bitmap_len, (size + 511) / 4096);
  EXPECT_EQ(g.data_offset, 6656u);  // round_up(4120 + 2048, 512)
  EXPECT_EQ(g.bitmap_block_size, 512u);
}

TEST(CowHeaderTest, V1IsReadInTheByteOrderOfItsMagic) {
  for (bool big_endian : {true, false}) {
    const std::string b = V1(2 << 20, big_endian);
    auto h = ParseHeader(b.data(), b.size());
    ASSERT_TRUE(h.ok()) << h.status();
    EXPECT_EQ(h->layout, Layout::kV1);
    EXPECT_EQ(h->big_endian, big_endian);
    EXPECT_EQ(h->mtime, 1500000000u);
    EXPECT_EQ(h->size, uint64_t{2} << 20);
    EXPECT_EQ(h->backing_file, "/images/v1.img");
    Geometry g = *ComputeGeometry(*h);
    EXPECT_EQ(g.bitmap_offset, 280u);
    EXPECT_EQ(g.bitmap_len, 512u);
    EXPECT_EQ(g.data_offset, 1024u);  // round_up(280 + 512, 512)
  }
}

TEST(CowHeaderTest, OldLayoutsKeepTheirFloorishBitmapLength) {
  // 1 MiB + 512: 2049 sectors need 257 bytes; (size + 511) / 4096 is 256.
  Geometry g = MustGeometry(V2((1 << 20) + 512));
  EXPECT_EQ(g.bitmap_len, 256u);
  EXPECT_EQ(g.bitmap_bytes, 257u);
  EXPECT_EQ(g.data_offset, 4608u);  // the 257th byte sits in the padding
}

TEST(CowHeaderTest, OldLayoutWhoseLastBitWouldLandInTheDataAreaIsRefused) {
  // v1: 232 bitmap bytes end exactly at 512, but 233 are needed.
  const std::string b = V1(232 * 4096 + 512, true);
  auto h = ParseHeader(b.data(), b.size());
  ASSERT_TRUE(h.ok());
  auto g = ComputeGeometry(*h);
  ASSERT_FALSE(g.ok());
  EXPECT_THAT(g.status().message(), HasSubstr("overlaps the data area"));
}

TEST(CowHeaderTest, EncodeV3RoundTripsAndMatchesTheCraftedBytes) {
  Header h;
  h.backing_file = "/images/base.img";
  h.mtime = 1700000000;
  h.size = 0x0000000123456000;
  h.alignment = 4096;
  auto bytes = EncodeV3Header(h);
  ASSERT_TRUE(bytes.ok()) << bytes.status();
  EXPECT_EQ(*bytes, V3(h.size));
}

TEST(CowHeaderTest, EncodeV3RefusesPathsThatDoNotFit) {
  Header h;
  h.size = 1 << 20;
  h.alignment = 4096;
  EXPECT_FALSE(EncodeV3Header(h).ok());  // empty
  h.backing_file = std::string(4096, 'a');
  auto r = EncodeV3Header(h);
  ASSERT_FALSE(r.ok());
  EXPECT_THAT(r.status().message(), HasSubstr("at most 4095"));
  h.backing_file = std::string(4095, 'a');
  EXPECT_TRUE(EncodeV3Header(h).ok());
}

TEST(CowHeaderErrorTest, ShortFileNamesTheBytesNeeded) {
  EXPECT_THAT(ParseError(""), HasSubstr("short file: 0 bytes"));
  EXPECT_THAT(ParseError(std::string("OOOM\0\0\0", 7)), HasSubstr("short file"));
  EXPECT_THAT(ParseError(V3(1 << 20).substr(0, 4127)),
              HasSubstr("short file: 4127 bytes, a v3 header needs 4128"));
  EXPECT_THAT(ParseError(V3Broken(1 << 20).substr(0, 4135)),
              HasSubstr("needs 4136"));
  EXPECT_THAT(ParseError(V2(1 << 20).substr(0, 4119)), HasSubstr("needs 4120"));
  EXPECT_THAT(ParseError(V1(1 << 20, false).substr(0, 279)), HasSubstr("needs 280"));
}

TEST(CowHeaderErrorTest, BadMagic) {
  std::string b = V3(1 << 20);
  b[3] = 'X';
  EXPECT_THAT(ParseError(b), HasSubstr("not a COW file: bad magic 0x4f4f4f58"));
}

TEST(CowHeaderErrorTest, UnknownVersion) {
  for (uint32_t v : {0u, 4u, 0xffffffffu}) {
    std::string b = V3(1 << 20);
    Put32(b, 4, v);
    EXPECT_THAT(ParseError(b), HasSubstr("unknown version " + std::to_string(v)));
  }
}

TEST(CowHeaderErrorTest, LittleEndianHeaderMustBeV1) {
  std::string b = V1(1 << 20, false);
  Put32(b, 4, 3, false);
  EXPECT_THAT(ParseError(b), HasSubstr("only v1 is host-order"));
}

TEST(CowHeaderErrorTest, AlignmentZero) {
  EXPECT_THAT(ParseError(V3(1 << 20, 0)), HasSubstr("alignment is 0"));
  EXPECT_THAT(ParseError(V3Broken(1 << 20, 0)), HasSubstr("alignment is 0"));
}

TEST(CowHeaderErrorTest, AlignmentNotAPowerOfTwo) {
  EXPECT_THAT(ParseError(V3(1 << 20, 3000)),
              HasSubstr("alignment 3000 is not a power of two"));
}

TEST(CowHeaderErrorTest, AlignmentAboveTheLimit) {
  EXPECT_THAT(ParseError(V3(1 << 20, 0x80000000u)), HasSubstr("above the limit"));
}

TEST(CowHeaderErrorTest, SectorsizeOtherThan512) {
  for (uint32_t ss : {0u, 4096u, 511u}) {
    std::string b = V3(1 << 20);
    Put32(b, 20, ss);
    EXPECT_THAT(ParseError(b),
                HasSubstr("sectorsize " + std::to_string(ss) + " is not 512"));
  }
}

TEST(CowHeaderErrorTest, SizeZero) {
  EXPECT_THAT(ParseError(V3(0)), HasSubstr("size is 0"));
}

TEST(CowHeaderErrorTest, SizesThatWouldOverflowOrAllocateHugeBitmapsAreRefused) {
  for (uint64_t size : {kMaxDeviceSize + 1, uint64_t{1} << 63, ~uint64_t{0},
                        ~uint64_t{0} - 511}) {
    EXPECT_THAT(ParseError(V3(size)), HasSubstr("above the limit"));
  }
  EXPECT_TRUE(ParseHeader(V3(kMaxDeviceSize).data(), kV3HeaderSize).ok());
}

TEST(CowHeaderErrorTest, GeometryOverflowIsReportedNotWrapped) {
  Header h = *ParseHeader(V3(1 << 20).data(), kV3HeaderSize);
  h.size = ~uint64_t{0};  // bypassing ParseHeader's own limit
  auto g = ComputeGeometry(h);
  ASSERT_FALSE(g.ok());
}

TEST(CowHeaderErrorTest, BackingPathNotNulTerminated) {
  std::string v3 = V3(1 << 20);
  memset(&v3[32], 'a', 4096);
  EXPECT_THAT(ParseError(v3), HasSubstr("not NUL-terminated within its 4096-byte"));
  std::string v1 = V1(1 << 20, true);
  memset(&v1[8], 'a', 256);
  EXPECT_THAT(ParseError(v1), HasSubstr("within its 256-byte"));
  std::string v2 = V2(1 << 20);
  memset(&v2[8], 'a', 4096);
  EXPECT_THAT(ParseError(v2), HasSubstr("not NUL-terminated"));
}

TEST(CowHeaderErrorTest, BackingPathEmpty) {
  std::string v3 = V3(1 << 20);
  memset(&v3[32], 0, 4096);
  v3[33] = 'x';  // not the broken layout: only byte 32 is zero
  EXPECT_THAT(ParseError(v3), HasSubstr("backing file path is empty"));
  std::string v2 = V2(1 << 20);
  memset(&v2[8], 0, 4096);
  EXPECT_THAT(ParseError(v2), HasSubstr("backing file path is empty"));
}

TEST(CowHeaderErrorTest, GarbageAfterThePathNulIsIgnored) {
  std::string b = V3(1 << 20);
  memset(&b[32 + 17], 0x5a, 4096 - 17);
  auto h = ParseHeader(b.data(), b.size());
  ASSERT_TRUE(h.ok()) << h.status();
  EXPECT_EQ(h->backing_file, "/images/base.img");
}

}  // namespace
}  // namespace cowblk::cow
