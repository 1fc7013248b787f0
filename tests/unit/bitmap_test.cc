#include "server/cow/bitmap.h"

#include <random>
#include <vector>

#include "gtest/gtest.h"

namespace cowblk::cow {
namespace {

TEST(BitmapTest, SectorNIsByteNOver8LeastSignificantBitFirst) {
  Bitmap b(64);
  b.Set(0);
  b.Set(9);
  b.Set(63);
  EXPECT_EQ(b.data()[0], 0x01);
  EXPECT_EQ(b.data()[1], 0x02);
  EXPECT_EQ(b.data()[7], 0x80);
  EXPECT_TRUE(b.Test(9));
  EXPECT_FALSE(b.Test(8));
  b.Clear(9);
  EXPECT_EQ(b.data()[1], 0x00);
}

TEST(BitmapTest, SetRangeAndClearRangeAcrossByteAndWordEdges) {
  Bitmap b(300);
  b.SetRange(5, 130);  // partial byte, whole bytes, partial byte
  for (uint64_t s = 0; s < 300; ++s) {
    EXPECT_EQ(b.Test(s), s >= 5 && s < 135) << s;
  }
  b.ClearRange(63, 2);  // straddles a 64-sector word
  EXPECT_FALSE(b.Test(63));
  EXPECT_FALSE(b.Test(64));
  EXPECT_TRUE(b.Test(62));
  EXPECT_TRUE(b.Test(65));
  EXPECT_EQ(b.CountSet(), 128u);
}

TEST(BitmapTest, RangeOperationsMatchBitByBitOnRandomRanges) {
  std::mt19937 rng(7);
  Bitmap b(1000);
  std::vector<bool> model(1000);
  for (int i = 0; i < 500; ++i) {
    const uint64_t first = rng() % 1000;
    const uint64_t count = rng() % (1000 - first + 1);
    const bool set = rng() & 1;
    if (set) b.SetRange(first, count); else b.ClearRange(first, count);
    for (uint64_t s = first; s < first + count; ++s) model[s] = set;
    const uint64_t q = rng() % 1000;
    const uint64_t qn = rng() % (1000 - q + 1);
    bool all_set = true, all_clear = true;
    for (uint64_t s = q; s < q + qn; ++s) {
      all_set &= model[s];
      all_clear &= !model[s];
    }
    ASSERT_EQ(b.AllSet(q, qn), all_set);
    ASSERT_EQ(b.AllClear(q, qn), all_clear);
  }
  for (uint64_t s = 0; s < 1000; ++s) ASSERT_EQ(b.Test(s), model[s]) << s;
}

TEST(BitmapTest, RunLengthStopsAtTheFirstDifferentBitOrTheLimit) {
  Bitmap b(200);
  b.SetRange(10, 100);
  EXPECT_EQ(b.RunLength(0, 200), 10u);
  EXPECT_EQ(b.RunLength(10, 200 - 10), 100u);
  EXPECT_EQ(b.RunLength(10, 50), 50u);
  EXPECT_EQ(b.RunLength(110, 90), 90u);
  EXPECT_EQ(b.RunLength(0, 0), 0u);
}

TEST(BitmapTest, CountSetIgnoresGarbageBitsPastTheLastSector) {
  Bitmap b(10);  // two bytes; bits 10..15 are padding
  b.data()[1] = 0xff;
  EXPECT_EQ(b.CountSet(), 2u);
  EXPECT_EQ(b.RunLength(8, 2), 2u);
}

TEST(BitmapTest, SplitRunsCoversTheRangeWithAlternatingRuns) {
  Bitmap b(128);
  b.SetRange(0, 1);
  b.SetRange(63, 2);
  b.Set(127);
  auto runs = SplitRuns(b, 0, 128);
  ASSERT_EQ(runs.size(), 5u);
  EXPECT_EQ(runs[0].first, 0u);   EXPECT_EQ(runs[0].count, 1u);  EXPECT_TRUE(runs[0].allocated);
  EXPECT_EQ(runs[1].first, 1u);   EXPECT_EQ(runs[1].count, 62u); EXPECT_FALSE(runs[1].allocated);
  EXPECT_EQ(runs[2].first, 63u);  EXPECT_EQ(runs[2].count, 2u);  EXPECT_TRUE(runs[2].allocated);
  EXPECT_EQ(runs[3].first, 65u);  EXPECT_EQ(runs[3].count, 62u); EXPECT_FALSE(runs[3].allocated);
  EXPECT_EQ(runs[4].first, 127u); EXPECT_EQ(runs[4].count, 1u);  EXPECT_TRUE(runs[4].allocated);
  auto middle = SplitRuns(b, 60, 4);
  ASSERT_EQ(middle.size(), 2u);
  EXPECT_EQ(middle[0].count, 3u);
  EXPECT_EQ(middle[1].count, 1u);
  EXPECT_TRUE(SplitRuns(b, 5, 0).empty());
}

TEST(BitmapBlocksTest, V3BlocksOf4KiBHold32768SectorsEach) {
  // bitmap_offset 8192: block 2 holds sectors [0, 32768), block 3 the next.
  auto r = BitmapBlocksFor(8192, 4096, 0, 1);
  EXPECT_EQ(r.first_block, 2u);
  EXPECT_EQ(r.count, 1u);
  r = BitmapBlocksFor(8192, 4096, 32767, 1);
  EXPECT_EQ(r.first_block, 2u);
  r = BitmapBlocksFor(8192, 4096, 32767, 2);
  EXPECT_EQ(r.first_block, 2u);
  EXPECT_EQ(r.count, 2u);
  r = BitmapBlocksFor(8192, 4096, 32768, 32768 * 3);
  EXPECT_EQ(r.first_block, 3u);
  EXPECT_EQ(r.count, 3u);
  EXPECT_EQ(BitmapBlocksFor(8192, 4096, 5, 0).count, 0u);
}

TEST(BitmapBlocksTest, WritesAreClippedToTheBitmapArea) {
  // v2: bitmap at 4120, 300 bytes, 512-byte blocks: block 8 is [4096, 4608).
  auto r = BitmapBlocksFor(4120, 512, 0, 300 * 8);
  EXPECT_EQ(r.first_block, 8u);
  EXPECT_EQ(r.count, 1u);
  BitmapWrite w = BitmapWriteFor(4120, 300, 512, 8);
  EXPECT_EQ(w.file_offset, 4120u);  // never the header
  EXPECT_EQ(w.bitmap_byte, 0u);
  EXPECT_EQ(w.length, 300u);        // never the padding or data
  // v3 with a bitmap that ends mid-block.
  w = BitmapWriteFor(8192, 2048, 4096, 2);
  EXPECT_EQ(w.file_offset, 8192u);
  EXPECT_EQ(w.length, 2048u);
  // A middle block of a large bitmap is written whole.
  w = BitmapWriteFor(8192, 1 << 20, 4096, 5);
  EXPECT_EQ(w.file_offset, 5u * 4096);
  EXPECT_EQ(w.bitmap_byte, 3u * 4096);
  EXPECT_EQ(w.length, 4096u);
}

}  // namespace
}  // namespace cowblk::cow
