// Deterministic tests of `deferred` durability over ManualIo: a write is
// acknowledged once its data is written; its bits reach the disk through the
// volume's commit loop (fdatasync, then bitmap blocks from the shadow
// bitmap), and FLUSH/FUA wait for that loop.

#include <unistd.h>

#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "server/engine/manual_io.h"
#include "server/engine/volume.h"
#include "tests/engine/volume_fixture.h"

namespace cowblk::engine {
namespace {

using ::testing::HasSubstr;

class DeferredTest : public VolumeFixture {
 protected:
  // Writes `count` sectors at `sector` and releases the data write: the
  // write is acknowledged then.
  Call* AckedWrite(uint64_t sector, uint64_t count, char fill, bool fua = false) {
    Call* w = Write(sector, count, fill, fua);
    const int data = DataWrite();
    EXPECT_GE(data, 0);
    if (data >= 0) io_.Release(data);
    return w;
  }
};

TEST_F(DeferredTest, WriteIsAcknowledgedAfterItsDataAndReadableWithoutAStall) {
  Open(kOneMiB, Durability::kDeferred);
  Call* w = AckedWrite(0, 4, 'a');
  EXPECT_TRUE(w->done);
  EXPECT_TRUE(w->status.ok()) << w->status;
  EXPECT_TRUE(MemBit(0) && MemBit(3));
  EXPECT_FALSE(DiskBit(0));  // the commit loop has not written it yet
  EXPECT_EQ(vol_->stats().updates_uncommitted.value(), 1u);
  Call* r = Read(0, 4);
  EXPECT_EQ(CountReads(), 1);  // not held: nothing can expose unwritten data
  io_.Release(io_.FindOpcode(IoOpcode::kRead));
  EXPECT_TRUE(r->done);
  EXPECT_EQ(r->buf, std::string(4 * 512, 'a'));
  EXPECT_EQ(vol_->stats().read_stalls.value(), 0u);
}

TEST_F(DeferredTest, CommitSyncsTheDataBeforeWritingTheBits) {
  Open(kOneMiB, Durability::kDeferred);
  AckedWrite(0, 1, 'a');
  ASSERT_EQ(io_.queued().size(), 1u);
  EXPECT_EQ(io_.queued()[0].opcode, IoOpcode::kFdatasync);  // no bitmap write yet
  io_.Release(Sync());
  ASSERT_EQ(CountBitmapWrites(), 1);
  EXPECT_FALSE(DiskBit(0));
  io_.Release(BitmapWrite());
  EXPECT_TRUE(DiskBit(0));
  EXPECT_TRUE(io_.queued().empty());  // nothing left to commit: the loop stops
  EXPECT_EQ(vol_->stats().updates_uncommitted.value(), 0u);
  EXPECT_EQ(vol_->requests_in_flight(), 0u);
}

TEST_F(DeferredTest, BitsOfWritesAcknowledgedDuringASyncWaitForTheNextOne) {
  Open(kOneMiB, Durability::kDeferred);
  AckedWrite(0, 1, 'a');  // its sync is in flight
  AckedWrite(8, 1, 'b');
  AckedWrite(16, 1, 'c');
  EXPECT_EQ(Count(IoOpcode::kFdatasync, false), 1);
  io_.Release(Sync());  // covered a's data only
  ASSERT_EQ(CountBitmapWrites(), 1);
  io_.Release(BitmapWrite());
  EXPECT_TRUE(DiskBit(0));
  EXPECT_FALSE(DiskBit(8));  // the block on disk holds only a's new bit
  EXPECT_FALSE(DiskBit(16));
  ASSERT_GE(Sync(), 0);  // the next round covers b and c together
  io_.Release(Sync());
  ASSERT_EQ(CountBitmapWrites(), 1);  // one block, one write
  io_.Release(BitmapWrite());
  EXPECT_TRUE(DiskBit(8) && DiskBit(16));
  EXPECT_EQ(vol_->stats().fsyncs.value(), 2u);
  EXPECT_EQ(vol_->stats().updates_coalesced.value(), 1u);
}

TEST_F(DeferredTest, BitmapBlockIsWrittenFromTheShadowNotFromMemory) {
  Open(kOneMiB, Durability::kDeferred);
  AckedWrite(0, 1, 'a');
  io_.Release(Sync());
  ASSERT_EQ(CountBitmapWrites(), 1);
  // b is acknowledged while a's block write is queued: its bit is in
  // memory, in the same bitmap byte, but its data is not durable yet.
  AckedWrite(1, 1, 'b');
  EXPECT_TRUE(MemBit(1));
  io_.Release(BitmapWrite());
  EXPECT_TRUE(DiskBit(0));
  EXPECT_FALSE(DiskBit(1));
  io_.ReleaseAll();
  EXPECT_TRUE(DiskBit(1));
}

TEST_F(DeferredTest, FlushWaitsUntilTheBitsOfEarlierWritesAreDurable) {
  Open(kOneMiB, Durability::kDeferred);
  AckedWrite(0, 1, 'a');
  Call* flush = Flush();
  io_.Release(Sync());  // a's data is durable, its bit is not written yet
  EXPECT_FALSE(flush->done);
  io_.Release(BitmapWrite());
  EXPECT_FALSE(flush->done);  // written, not yet durable
  ASSERT_GE(Sync(), 0);
  io_.Release(Sync());
  EXPECT_TRUE(flush->done);
  EXPECT_TRUE(flush->status.ok()) << flush->status;
  EXPECT_TRUE(io_.queued().empty());
}

TEST_F(DeferredTest, FlushWithEverythingWrittenNeedsOneSyncIssuedAfterIt) {
  Open(kOneMiB, Durability::kDeferred);
  AckedWrite(0, 1, 'a');
  io_.ReleaseAll();
  Call* rewrite = AckedWrite(0, 1, 'b');  // allocated: no bits to commit
  EXPECT_TRUE(rewrite->done);
  EXPECT_TRUE(io_.queued().empty());
  Call* flush = Flush();
  ASSERT_EQ(io_.queued().size(), 1u);
  io_.Release(Sync());
  EXPECT_TRUE(flush->done && flush->status.ok());
  EXPECT_EQ(CountBitmapWrites(), 0);
}

TEST_F(DeferredTest, FuaWriteCompletesOnceItsDataAndBitsAreDurable) {
  Open(kOneMiB, Durability::kDeferred);
  Call* w = AckedWrite(0, 1, 'a', /*fua=*/true);
  EXPECT_FALSE(w->done);
  io_.Release(Sync());
  io_.Release(BitmapWrite());
  EXPECT_FALSE(w->done);
  io_.Release(Sync());
  EXPECT_TRUE(w->done && w->status.ok());
  EXPECT_TRUE(DiskBit(0));
}

TEST_F(DeferredTest, ClosingWaitsForUncommittedBits) {
  Open(kOneMiB, Durability::kDeferred);
  AckedWrite(0, 1, 'a');
  EXPECT_EQ(vol_->requests_in_flight(), 1u);  // the engine does not close it yet
  io_.Release(Sync());
  EXPECT_EQ(vol_->requests_in_flight(), 1u);
  io_.Release(BitmapWrite());
  EXPECT_EQ(vol_->requests_in_flight(), 0u);
  ExpectReopensClean({0});
}

TEST_F(DeferredTest, TrimAndWriteZeroesReadAsZerosAndCommitTheirBits) {
  Open(kOneMiB, Durability::kDeferred);
  Call* trim = Submit(OpType::kTrim, 0, 8);
  io_.Release(io_.FindOpcode(IoOpcode::kPunchHole));
  EXPECT_TRUE(trim->done && trim->status.ok());
  Call* r = Read(0, 8);
  io_.Release(io_.FindOpcode(IoOpcode::kRead));
  EXPECT_EQ(r->buf, std::string(8 * 512, '\0'));  // not the backing data
  ExpectReopensClean({0, 1, 2, 3, 4, 5, 6, 7});
}

TEST_F(DeferredTest, WithAnIntervalBitsWaitForTheTimerUnlessAFlushAsks) {
  Open(kOneMiB, Durability::kDeferred, CacheMode::kWriteback, /*commit_interval_ms=*/100);
  AckedWrite(0, 1, 'a');
  ASSERT_EQ(io_.queued().size(), 1u);
  ASSERT_EQ(io_.queued()[0].opcode, IoOpcode::kTimeout);
  EXPECT_EQ(io_.queued()[0].len, 100'000'000u);
  AckedWrite(8, 1, 'b');  // the same timer covers it
  EXPECT_EQ(io_.queued().size(), 1u);
  io_.Release(io_.FindOpcode(IoOpcode::kTimeout));
  io_.Release(Sync());
  ASSERT_EQ(CountBitmapWrites(), 1);
  io_.Release(BitmapWrite());
  EXPECT_TRUE(DiskBit(0) && DiskBit(8));
  EXPECT_TRUE(io_.queued().empty());  // nothing new: no timer
  // A flush does not wait for the timer.
  AckedWrite(16, 1, 'c');
  ASSERT_GE(io_.FindOpcode(IoOpcode::kTimeout), 0);
  Call* flush = Flush();
  ASSERT_GE(Sync(), 0);
  io_.Release(Sync());
  io_.Release(BitmapWrite());
  io_.Release(Sync());
  EXPECT_TRUE(flush->done && flush->status.ok());
  EXPECT_TRUE(DiskBit(16));
  EXPECT_EQ(vol_->requests_in_flight(), 1u);  // the timer is still armed
  io_.Release(io_.FindOpcode(IoOpcode::kTimeout));
  EXPECT_TRUE(io_.queued().empty());  // it found nothing to do
  EXPECT_EQ(vol_->requests_in_flight(), 0u);
}

TEST_F(DeferredTest, ClosingCommitsAtOnceAndCancelsTheTimer) {
  Open(kOneMiB, Durability::kDeferred, CacheMode::kWriteback, /*commit_interval_ms=*/60000);
  AckedWrite(0, 1, 'a');
  ASSERT_GE(io_.FindOpcode(IoOpcode::kTimeout), 0);
  vol_->BeginClose();
  ASSERT_GE(io_.FindOpcode(IoOpcode::kTimeoutRemove), 0);
  ASSERT_GE(Sync(), 0);  // the commit does not wait for the interval
  io_.Release(io_.FindOpcode(IoOpcode::kTimeoutRemove));
  EXPECT_EQ(io_.FindOpcode(IoOpcode::kTimeout), -1);  // cancelled with it
  EXPECT_EQ(vol_->requests_in_flight(), 1u);          // the commit goes on
  io_.Release(Sync());
  io_.Release(BitmapWrite());
  EXPECT_TRUE(io_.queued().empty());
  EXPECT_EQ(vol_->requests_in_flight(), 0u);
  EXPECT_EQ(vol_->stats().io_errors.value(), 0u);
  ExpectReopensClean({0});
}

// ---- Fault injection ----------------------------------------------------

TEST_F(DeferredTest, FdatasyncErrorFailsTheFlushAndStopsWritesWithNoBitOnDisk) {
  Open(kOneMiB, Durability::kDeferred);
  AckedWrite(0, 1, 'a');
  EXPECT_FALSE(vol_->refuses_writes());
  Call* flush = Flush();
  io_.Release(Sync(), -EIO);
  EXPECT_TRUE(flush->done);
  EXPECT_THAT(flush->status.message(), HasSubstr("fdatasync"));
  EXPECT_EQ(BitmapWrite(), -1);  // a's data may be lost: no bit may expose it
  EXPECT_TRUE(vol_->refuses_writes());  // inline writes check it before writing
  Call* w = Write(8, 1, 'b');
  EXPECT_TRUE(w->done);  // refused at once, nothing queued
  EXPECT_THAT(w->status.message(), HasSubstr("no more writes"));
  EXPECT_TRUE(io_.queued().empty());
  Call* again = Flush();
  EXPECT_TRUE(again->done && !again->status.ok());
  Call* r = Read(8, 1);  // reads go on
  io_.ReleaseAll();
  EXPECT_TRUE(r->status.ok());
  EXPECT_EQ(r->buf, Backing(8, 1));
  ExpectReopensClean({});
}

TEST_F(DeferredTest, WriteInFlightWhenASyncFailsIsFailedAndSetsNoBit) {
  Open(kOneMiB, Durability::kDeferred);
  AckedWrite(0, 1, 'a');
  Call* w = Write(8, 1, 'b');
  io_.Release(Sync(), -EIO);
  io_.Release(DataWrite());
  EXPECT_TRUE(w->done);
  EXPECT_FALSE(w->status.ok());
  EXPECT_FALSE(MemBit(8));
  ExpectReopensClean({});
}

TEST_F(DeferredTest, BitmapWriteErrorFailsTheFlushAndTheBlockIsWrittenAgain) {
  Open(kOneMiB, Durability::kDeferred);
  AckedWrite(0, 1, 'a');
  Call* flush = Flush();
  io_.Release(Sync());
  io_.Release(BitmapWrite(), -EIO);
  EXPECT_TRUE(flush->done);
  EXPECT_THAT(flush->status.message(), HasSubstr("bitmap block"));
  EXPECT_TRUE(io_.queued().empty());  // no retry loop without a reason
  EXPECT_TRUE(MemBit(0));             // a stays readable
  Call* again = Flush();
  io_.Release(Sync());
  ASSERT_EQ(CountBitmapWrites(), 1);  // the failed block, again
  io_.Release(BitmapWrite());
  io_.Release(Sync());
  EXPECT_TRUE(again->done);
  EXPECT_TRUE(again->status.ok()) << again->status;
  ExpectReopensClean({0});
}

}  // namespace
}  // namespace cowblk::engine
