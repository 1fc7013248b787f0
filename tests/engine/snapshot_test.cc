// Volume snapshots (server/engine/snapshot.h) over ManualIo: the moment
// waits for the writes in flight and no longer; a write is held only where
// it would change snapshot data not yet copied, and that chunk is copied
// next; the copier gets the bits of the moment; closing ends a snapshot.

#include "server/engine/snapshot.h"

#include <optional>

#include "tests/engine/volume_fixture.h"

namespace cowblk::engine {
namespace {

constexpr uint64_t kChunk = kSnapshotChunkSectors;

class SnapshotTest : public VolumeFixture {
 protected:
  void SetUp() override { Open(4 * kOneMiB, Durability::kUnordered); }

  // A write run to its end (data and bitmap block released).
  void WriteDone(uint64_t sector, uint64_t count, char fill) {
    Call* w = Write(sector, count, fill);
    while (!w->done) io_.Release(0);
    ASSERT_TRUE(w->status.ok()) << w->status;
  }
  void Begin() {
    ASSERT_TRUE(vol_->BeginSnapshot([this](absl::Status s) { taken_ = s; }).ok());
  }
  SnapshotChunk Next(std::optional<uint64_t> copied = std::nullopt) {
    SnapshotChunk chunk;
    const uint64_t c = copied.value_or(0);
    auto more = vol_->NextSnapshotChunk(copied ? &c : nullptr, &chunk);
    EXPECT_TRUE(more.ok() && *more) << more.status();
    return chunk;
  }
  // Whether `write`'s data write reached the backend.
  bool Started(const Call* write) const {
    return io_.Find([&](const IoOp& o) {
             return o.opcode == IoOpcode::kWrite && o.offset == data_offset_ + write->req.offset;
           }) >= 0 ||
           write->done;
  }

  std::optional<absl::Status> taken_;
};

TEST_F(SnapshotTest, MomentComesWhenTheWritesInFlightCompletedAndHoldsNewOnesUntilThen) {
  Call* before = Write(0, 8, 'a');  // in flight: its data is queued
  Begin();
  EXPECT_FALSE(taken_.has_value());
  Call* after = Write(3 * kChunk, 8, 'b');
  EXPECT_FALSE(Started(after));
  while (!before->done) io_.Release(0);
  ASSERT_TRUE(taken_.has_value());
  EXPECT_TRUE(taken_->ok());
  // Its sectors were clear at the moment: it goes on at once.
  EXPECT_TRUE(Started(after));
  const SnapshotChunk first = Next();
  EXPECT_EQ(first.index, 0u);
  ASSERT_FALSE(first.runs.empty());
  EXPECT_TRUE(first.runs[0].allocated);
  EXPECT_EQ(first.runs[0].count, 8u);
  vol_->EndSnapshot();
}

TEST_F(SnapshotTest, WriteOverSnapshotDataWaitsForItsChunkWhichIsCopiedNext) {
  WriteDone(2 * kChunk + 16, 8, 'a');
  Begin();
  ASSERT_TRUE(taken_.has_value() && taken_->ok());
  Call* over = Write(2 * kChunk + 16, 8, 'b');
  EXPECT_FALSE(Started(over));
  const SnapshotChunk asked = Next();
  EXPECT_EQ(asked.index, 2u);  // ahead of chunks 0 and 1
  EXPECT_FALSE(Started(over));  // still being copied
  const SnapshotChunk then = Next(asked.index);
  EXPECT_TRUE(Started(over));
  EXPECT_EQ(then.index, 0u);
  const SnapshotStats stats = vol_->EndSnapshot();
  EXPECT_EQ(stats.held_writes, 1u);
  EXPECT_EQ(stats.chunks_early, 1u);
}

TEST_F(SnapshotTest, CopierGetsTheBitsOfTheMomentAfterWritesSetNewOnes) {
  Begin();
  ASSERT_TRUE(taken_.has_value() && taken_->ok());
  WriteDone(kChunk + 8, 8, 'n');  // clear at the moment: not held
  EXPECT_TRUE(MemBit(kChunk + 8));
  Next();  // chunk 0
  const SnapshotChunk c1 = Next(0);
  EXPECT_EQ(c1.index, 1u);
  ASSERT_EQ(c1.runs.size(), 1u);
  EXPECT_FALSE(c1.runs[0].allocated);  // read from the backing file
  EXPECT_EQ(c1.runs[0].count, kChunk);
  vol_->EndSnapshot();
}

TEST_F(SnapshotTest, ClosingEndsTheSnapshotAndStartsTheWritesItHeld) {
  WriteDone(8, 8, 'a');
  Begin();
  Call* over = Write(8, 8, 'b');
  EXPECT_FALSE(Started(over));
  vol_->BeginClose();
  EXPECT_TRUE(Started(over));
  SnapshotChunk chunk;
  EXPECT_EQ(vol_->NextSnapshotChunk(nullptr, &chunk).status().code(),
            absl::StatusCode::kFailedPrecondition);
}

TEST_F(SnapshotTest, ClosingBeforeTheMomentTellsTheCopierWhy) {
  Write(0, 8, 'a');  // never released before the close
  Begin();
  EXPECT_FALSE(taken_.has_value());
  vol_->BeginClose();
  ASSERT_TRUE(taken_.has_value());
  EXPECT_EQ(taken_->code(), absl::StatusCode::kFailedPrecondition);
}

TEST_F(SnapshotTest, OneSnapshotAtATime) {
  Begin();
  EXPECT_EQ(vol_->BeginSnapshot([](absl::Status) {}).code(),
            absl::StatusCode::kFailedPrecondition);
  vol_->EndSnapshot();
  taken_.reset();
  Begin();
  EXPECT_TRUE(taken_.has_value());
  vol_->EndSnapshot();
}

}  // namespace
}  // namespace cowblk::engine
