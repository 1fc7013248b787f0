// Deterministic tests of the engine's serialization logic: a Volume over
// ManualIo, whose operations run for real on real files but only when the
// test releases them, one by one.

#include "server/engine/volume.h"

#include <fcntl.h>
#include <linux/falloc.h>
#include <unistd.h>

#include <algorithm>
#include <deque>
#include <set>
#include <utility>
#include <vector>

#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "server/engine/manual_io.h"
#include "tests/engine/volume_fixture.h"

namespace cowblk::engine {
namespace {

using ::testing::HasSubstr;

TEST_F(VolumeFixture, OrderedWriteSyncsDataBeforeWritingTheBitmap) {
  Open(kOneMiB, Durability::kOrdered);
  Call* w = Write(0, 1, 'a');
  ASSERT_EQ(io_.queued().size(), 1u);
  io_.Release(DataWrite());
  ASSERT_EQ(io_.queued().size(), 1u);
  EXPECT_EQ(io_.queued()[0].opcode, IoOpcode::kFdatasync);  // no bitmap write yet
  io_.Release(Sync());
  ASSERT_GE(BitmapWrite(), 0);
  EXPECT_FALSE(w->done);
  io_.Release(BitmapWrite());
  EXPECT_TRUE(w->done);
  EXPECT_TRUE(w->status.ok()) << w->status;
  EXPECT_TRUE(DiskBit(0));
}

TEST_F(VolumeFixture, UnorderedWriteWritesTheBitmapRightAfterTheData) {
  Open(kOneMiB, Durability::kUnordered);
  Call* w = Write(0, 1, 'a');
  io_.Release(DataWrite());
  EXPECT_EQ(Sync(), -1);
  io_.Release(BitmapWrite());
  EXPECT_TRUE(w->done && w->status.ok());
  EXPECT_EQ(vol_->stats().fsyncs.value(), 0u);
}

TEST_F(VolumeFixture, UpdateWaitsWhileAnOverlappingBitmapWriteIsPending) {
  Open(kOneMiB, Durability::kOrdered);
  Call* a = WriteUntilBitmapPending(0, 1, 'a');
  Call* b = Write(1, 1, 'b');
  io_.Release(DataWrite());
  io_.Release(Sync());
  EXPECT_EQ(vol_->stats().updates_waiting.value(), 1u);
  EXPECT_EQ(CountBitmapWrites(), 1);  // only a's
  EXPECT_FALSE(MemBit(1));            // b's bit waits in memory too
  io_.Release(BitmapWrite());
  EXPECT_TRUE(a->done);
  EXPECT_FALSE(b->done);
  EXPECT_EQ(vol_->stats().updates_waiting.value(), 0u);
  ASSERT_EQ(CountBitmapWrites(), 1);  // now b's
  io_.Release(BitmapWrite());
  EXPECT_TRUE(b->done && b->status.ok());
  EXPECT_EQ(vol_->stats().updates_waited.value(), 1u);
}

TEST_F(VolumeFixture, WaitersProceedInFifoOrderAndDoNotOvertake) {
  // 32 MiB: bitmap block 2 holds sectors [0, 32768), block 3 the rest.
  Open(32 * kOneMiB, Durability::kOrdered);
  WriteUntilBitmapPending(32768, 1, 'a');       // block 3 pending
  Call* b = WriteUntilWaiting(32767, 2, 'b');   // blocks 2 and 3: waits
  Call* c = WriteUntilWaiting(0, 1, 'c');       // block 2 is free, but b is first
  EXPECT_EQ(vol_->stats().updates_waiting.value(), 2u);
  EXPECT_EQ(CountBitmapWrites(), 1);
  EXPECT_FALSE(MemBit(0));
  io_.Release(BitmapWrite());  // a's block 3 completes
  // b and c go together: block 2 is written once for both.
  EXPECT_EQ(CountBitmapWrites(), 2);
  EXPECT_EQ(vol_->stats().updates_coalesced.value(), 1u);
  io_.ReleaseAll();
  EXPECT_TRUE(b->done && b->status.ok());
  EXPECT_TRUE(c->done && c->status.ok());
  EXPECT_TRUE(DiskBit(0) && DiskBit(32767) && DiskBit(32768));
}

TEST_F(VolumeFixture, SameBlockWaitersShareOneWrite) {
  Open(kOneMiB, Durability::kOrdered);
  WriteUntilBitmapPending(0, 1, 'a');
  std::vector<Call*> waiters = {Write(8, 1, 'b'), Write(16, 8, 'c'), Write(1000, 2, 'd')};
  while (DataWrite() >= 0) io_.Release(DataWrite());
  while (Sync() >= 0) io_.Release(Sync());
  EXPECT_EQ(vol_->stats().updates_waiting.value(), 3u);
  io_.Release(BitmapWrite());
  EXPECT_EQ(CountBitmapWrites(), 1);
  EXPECT_EQ(vol_->stats().updates_coalesced.value(), 2u);
  io_.Release(BitmapWrite());
  for (Call* w : waiters) EXPECT_TRUE(w->done && w->status.ok());
  EXPECT_EQ(vol_->stats().bitmap_writes.value(), 2u);
}

TEST_F(VolumeFixture, GroupCommitCoversWritesThatCompletedDuringASync) {
  Open(kOneMiB, Durability::kOrdered);
  std::vector<Call*> writes;
  for (int i = 0; i < 8; ++i) writes.push_back(Write(i * 100, 1, 'a' + i));
  while (DataWrite() >= 0) io_.Release(DataWrite());
  EXPECT_EQ(vol_->stats().fsyncs.value(), 1u);  // the other 7 wait for the next
  io_.Release(Sync());
  EXPECT_EQ(vol_->stats().fsyncs.value(), 2u);
  io_.ReleaseAll();
  for (Call* w : writes) EXPECT_TRUE(w->done && w->status.ok());
  EXPECT_EQ(vol_->stats().fsyncs.value(), 2u);
}

TEST_F(VolumeFixture, ReadOverlappingAPendingUpdateStallsUntilItCompletes) {
  Open(kOneMiB, Durability::kOrdered);
  WriteUntilBitmapPending(0, 8, 'a');
  Call* stalled = Read(4, 1);
  Call* free_read = Read(100, 1);  // same bitmap block, other sectors
  EXPECT_EQ(CountReads(), 1);
  EXPECT_EQ(vol_->stats().reads_stalled.value(), 1u);
  io_.Release(io_.FindOpcode(IoOpcode::kRead));
  EXPECT_TRUE(free_read->done);
  EXPECT_EQ(free_read->buf, Backing(100, 1));
  EXPECT_FALSE(stalled->done);
  io_.Release(BitmapWrite());
  ASSERT_EQ(CountReads(), 1);
  io_.ReleaseAll();
  EXPECT_TRUE(stalled->done && stalled->status.ok());
  EXPECT_EQ(stalled->buf, std::string(512, 'a'));
  EXPECT_EQ(vol_->stats().read_stalls.value(), 1u);
  EXPECT_EQ(vol_->stats().reads_stalled.value(), 0u);
}

TEST_F(VolumeFixture, ReadOverlappingAWaitingUpdateStallsUntilItCompletes) {
  Open(kOneMiB, Durability::kOrdered);
  WriteUntilBitmapPending(0, 1, 'a');
  WriteUntilWaiting(1, 1, 'b');
  Call* r = Read(1, 1);
  EXPECT_EQ(CountReads(), 0);
  io_.Release(BitmapWrite());  // a done; b's write now pending
  EXPECT_EQ(CountReads(), 0);
  io_.Release(BitmapWrite());
  io_.ReleaseAll();
  EXPECT_TRUE(r->done);
  EXPECT_EQ(r->buf, std::string(512, 'b'));
}

TEST_F(VolumeFixture, RewriteOfAllocatedSectorsIssuesNoBitmapWriteAndNoBarrier) {
  Open(kOneMiB, Durability::kOrdered);
  Call* first = Write(0, 8, 'a');
  io_.ReleaseAll();
  ASSERT_TRUE(first->done && first->status.ok());
  const uint64_t bitmap_writes = vol_->stats().bitmap_writes.value();
  const uint64_t fsyncs = vol_->stats().fsyncs.value();
  Call* again = Write(0, 8, 'b');
  io_.Release(DataWrite());
  EXPECT_TRUE(again->done && again->status.ok());
  EXPECT_TRUE(io_.queued().empty());
  EXPECT_EQ(vol_->stats().bitmap_writes.value(), bitmap_writes);
  EXPECT_EQ(vol_->stats().fsyncs.value(), fsyncs);
}

TEST_F(VolumeFixture, RewriteOfBitsStillBeingWrittenWaitsForThatWrite) {
  Open(kOneMiB, Durability::kOrdered);
  Call* a = WriteUntilBitmapPending(0, 1, 'a');
  Call* again = Write(0, 1, 'b');
  io_.Release(DataWrite());
  EXPECT_FALSE(again->done);  // acked only once its bit is on disk
  EXPECT_EQ(CountBitmapWrites(), 1);
  EXPECT_EQ(Sync(), -1);
  io_.Release(BitmapWrite());
  EXPECT_TRUE(a->done && again->done && again->status.ok());
}

TEST_F(VolumeFixture, FlushWaitsForAnFdatasyncIssuedAfterIt) {
  Open(kOneMiB, Durability::kOrdered);
  Write(0, 1, 'a');
  io_.Release(DataWrite());  // its barrier sync is in flight
  Call* flush = Flush();
  io_.Release(Sync());
  EXPECT_FALSE(flush->done);  // that sync started before the flush arrived
  ASSERT_GE(Sync(), 0);
  io_.Release(Sync());
  EXPECT_TRUE(flush->done && flush->status.ok());
}

TEST_F(VolumeFixture, FuaWriteCompletesAfterASyncFollowingItsBitmapWrite) {
  Open(kOneMiB, Durability::kOrdered);
  Call* w = Write(0, 1, 'a', /*fua=*/true);
  io_.Release(DataWrite());
  io_.Release(Sync());
  io_.Release(BitmapWrite());
  EXPECT_FALSE(w->done);
  ASSERT_GE(Sync(), 0);
  io_.Release(Sync());
  EXPECT_TRUE(w->done && w->status.ok());
}

TEST_F(VolumeFixture, TrimAndWriteZeroesPunchAHoleThenSetTheBits) {
  Open(kOneMiB, Durability::kOrdered);
  Call* w = Write(0, 8, 'a');
  io_.ReleaseAll();
  ASSERT_TRUE(w->status.ok());
  Call* trim = Submit(OpType::kTrim, 0, 8);
  ASSERT_EQ(io_.queued().size(), 1u);
  EXPECT_EQ(io_.queued()[0].opcode, IoOpcode::kPunchHole);
  io_.ReleaseAll();
  EXPECT_TRUE(trim->done && trim->status.ok());
  Call* zeroes = Submit(OpType::kWriteZeroes, 200, 8);  // unallocated: bits get set
  io_.ReleaseAll();
  EXPECT_TRUE(zeroes->done && zeroes->status.ok());
  EXPECT_TRUE(DiskBit(200) && DiskBit(207));
  Call* r1 = Read(0, 8);
  Call* r2 = Read(200, 8);
  io_.ReleaseAll();
  EXPECT_EQ(r1->buf, std::string(8 * 512, '\0'));
  EXPECT_EQ(r2->buf, std::string(8 * 512, '\0'));  // not the backing data
}

TEST_F(VolumeFixture, ZeroingNeverWrittenSectorsOverAHoleOfTheBackingFileDoesNothing) {
  Open(kOneMiB, Durability::kOrdered);
  {  // The backing file gets a hole at [256 KiB, 512 KiB).
    const int fd = open(dir_.File("base.img").c_str(), O_RDWR);
    ASSERT_GE(fd, 0);
    ASSERT_EQ(fallocate(fd, FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE, 256 << 10, 256 << 10), 0);
    close(fd);
  }
  Call* zeroes = Submit(OpType::kWriteZeroes, 512, 256);
  Call* trim = Submit(OpType::kTrim, 900, 100);
  EXPECT_TRUE(io_.queued().empty());  // no hole punched, no bitmap block written
  EXPECT_TRUE(zeroes->done && zeroes->status.ok());
  EXPECT_TRUE(trim->done && trim->status.ok());
  EXPECT_FALSE(MemBit(512) || MemBit(999));
  // Reaching into the backing file's data: punched and the bits set.
  Call* across = Submit(OpType::kWriteZeroes, 1000, 48);
  ASSERT_EQ(io_.queued().size(), 1u);
  EXPECT_EQ(io_.queued()[0].opcode, IoOpcode::kPunchHole);
  io_.ReleaseAll();
  EXPECT_TRUE(across->done && across->status.ok());
  EXPECT_TRUE(DiskBit(1000) && DiskBit(1047));
  // NO_HOLE: zeroed allocated (ZERO_RANGE), the bits set, even over the hole.
  Call* no_hole = NewCall();
  no_hole->req = Request::Of(OpType::kWriteZeroes, 600 * 512, 8 * 512, nullptr);
  no_hole->req.kind = WriteZeroes{.fua = false, .no_hole = true};
  Issue(no_hole);
  ASSERT_EQ(io_.queued().size(), 1u);
  EXPECT_EQ(io_.queued()[0].opcode, IoOpcode::kZeroRange);
  io_.ReleaseAll();
  EXPECT_TRUE(no_hole->done && no_hole->status.ok());
  EXPECT_TRUE(DiskBit(600) && DiskBit(607));
  Call* r = Read(1000, 48);
  io_.ReleaseAll();
  EXPECT_EQ(r->buf, std::string(48 * 512, '\0'));
}

TEST_F(VolumeFixture, BadRequestsFailAloneAndQueueNoIo) {
  Open(kOneMiB, Durability::kOrdered);
  struct Case {
    OpType op;
    uint64_t offset, length;
    absl::StatusCode code;
    const char* message;
  } cases[] = {
      {OpType::kWrite, 100, 512, absl::StatusCode::kInvalidArgument, "offset: 100"},
      {OpType::kRead, 0, 0, absl::StatusCode::kInvalidArgument, "length: 0"},
      {OpType::kWrite, 0, 1000, absl::StatusCode::kInvalidArgument, "length: 1000"},
      {OpType::kRead, kOneMiB, 512, absl::StatusCode::kOutOfRange, "beyond"},
      {OpType::kTrim, kOneMiB - 512, 1024, absl::StatusCode::kOutOfRange, "beyond"},
      {OpType::kWrite, ~uint64_t{0} - 511, 1024, absl::StatusCode::kOutOfRange, "beyond"},
      {OpType::kRead, 0, kMaxIoBytes + 512, absl::StatusCode::kInvalidArgument, "limit"},
  };
  for (const Case& c : cases) {
    Call* call = SubmitRaw(c.op, c.offset, c.length);
    EXPECT_TRUE(call->done);
    EXPECT_EQ(call->status.code(), c.code) << call->status;
    EXPECT_THAT(call->status.message(), HasSubstr(c.message));
  }
  EXPECT_TRUE(io_.queued().empty());
  EXPECT_EQ(vol_->requests_in_flight(), 0u);
  EXPECT_EQ(vol_->stats().allocated_sectors.value(), 0u);
}

// ---- Fault injection ----------------------------------------------------

TEST_F(VolumeFixture, DataWriteErrorFailsTheWriteAndLeavesTheBitsClear) {
  Open(kOneMiB, Durability::kOrdered);
  Call* w = Write(0, 1, 'a');
  io_.Release(DataWrite(), -EIO);
  EXPECT_TRUE(w->done);
  EXPECT_THAT(w->status.message(), HasSubstr("Input/output error"));
  EXPECT_TRUE(io_.queued().empty());
  EXPECT_FALSE(MemBit(0));
  Call* ok = Write(1, 1, 'b');  // the volume keeps serving
  io_.ReleaseAll();
  EXPECT_TRUE(ok->status.ok());
  ExpectReopensClean({1});
}

TEST_F(VolumeFixture, EnospcOnADataWriteIsResourceExhausted) {
  Open(kOneMiB, Durability::kOrdered);
  Call* w = Write(0, 8, 'a');
  io_.Release(DataWrite(), -ENOSPC);
  EXPECT_EQ(w->status.code(), absl::StatusCode::kResourceExhausted);
  ExpectReopensClean({});
}

TEST_F(VolumeFixture, BitmapWriteErrorFailsTheWriteAndRestoresMemory) {
  Open(kOneMiB, Durability::kOrdered);
  Call* w = WriteUntilBitmapPending(0, 4, 'a');
  Call* r = Read(0, 4);  // stalled behind the update
  io_.Release(BitmapWrite(), -EIO);
  EXPECT_TRUE(w->done);
  EXPECT_FALSE(w->status.ok());
  EXPECT_FALSE(MemBit(0));
  EXPECT_EQ(vol_->stats().allocated_sectors.value(), 0u);
  io_.ReleaseAll();  // the read runs now, from the backing file
  EXPECT_TRUE(r->status.ok());
  EXPECT_EQ(r->buf, Backing(0, 4));
  Call* again = Write(0, 4, 'b');
  io_.ReleaseAll();
  EXPECT_TRUE(again->status.ok());
  ExpectReopensClean({0, 1, 2, 3});
}

TEST_F(VolumeFixture, FdatasyncErrorFailsTheWriteWaitingOnTheBarrier) {
  Open(kOneMiB, Durability::kOrdered);
  Call* w = Write(0, 1, 'a');
  io_.Release(DataWrite());
  io_.Release(Sync(), -EIO);
  EXPECT_TRUE(w->done);
  EXPECT_THAT(w->status.message(), HasSubstr("fdatasync"));
  EXPECT_EQ(BitmapWrite(), -1);
  EXPECT_FALSE(MemBit(0));
  ExpectReopensClean({});
}

TEST_F(VolumeFixture, ShortWritesAndReadsAreContinued) {
  Open(kOneMiB, Durability::kOrdered);
  Call* w = Write(10, 8, 'a');
  io_.ReleasePartial(DataWrite(), 1024);
  EXPECT_FALSE(w->done);
  ASSERT_GE(DataWrite(), 0);
  EXPECT_EQ(io_.queued()[DataWrite()].len, 8u * 512 - 1024);
  io_.ReleaseAll();
  EXPECT_TRUE(w->status.ok());
  Call* r = Read(10, 8);
  io_.ReleasePartial(io_.FindOpcode(IoOpcode::kRead), 512);
  io_.ReleaseAll();
  EXPECT_EQ(r->buf, std::string(8 * 512, 'a'));
}

TEST_F(VolumeFixture, ReadPastTheEndOfAnUnalignedBackingFileReadsZeros) {
  Open(kOneMiB + 100, Durability::kOrdered);
  Call* r = Read(kOneMiB / 512, 1);
  io_.ReleaseAll();
  ASSERT_TRUE(r->status.ok());
  EXPECT_EQ(r->buf, Backing(kOneMiB / 512, 1).substr(0, 100) + std::string(412, '\0'));
}

// LocateRead, the NBD export's zero-copy path: the same stall rule as a
// read (invariant 4), then where each run lies instead of a copy.
TEST_F(VolumeFixture, LocatedReadStallsLikeAReadThenNamesItsRunsWithoutReading) {
  Open(kOneMiB + 100, Durability::kOrdered);
  WriteUntilBitmapPending(0, 8, 'a');
  Call* stalled = Locate(4, 8);
  EXPECT_FALSE(stalled->done);
  EXPECT_EQ(CountReads(), 0);
  EXPECT_EQ(vol_->stats().reads_stalled.value(), 1u);
  io_.Release(BitmapWrite());
  io_.ReleaseAll();
  ASSERT_TRUE(stalled->done && stalled->status.ok()) << stalled->status;
  using Source = ReadExtent::Source;
  ASSERT_EQ(stalled->extents.size(), 2u);
  EXPECT_EQ(stalled->extents[0].source, Source::kCow);
  EXPECT_EQ(stalled->extents[0].offset, data_offset_ + 4 * 512);
  EXPECT_EQ(stalled->extents[0].length, 4 * 512u);
  EXPECT_EQ(stalled->extents[1].source, Source::kBacking);
  EXPECT_EQ(stalled->extents[1].offset, 8 * 512u);
  EXPECT_EQ(stalled->extents[1].length, 4 * 512u);

  // Nothing in flight: at once, and no read reaches the I/O backend. The
  // backing file's end is the caller's (past it: zeros).
  const size_t issued = io_.log().size();
  Call* tail = Locate(kOneMiB / 512 - 1, 2);
  ASSERT_TRUE(tail->done && tail->status.ok());
  EXPECT_TRUE(io_.queued().empty());
  EXPECT_EQ(io_.log().size(), issued);
  ASSERT_EQ(tail->extents.size(), 1u);
  EXPECT_EQ(tail->extents[0].source, Source::kBacking);
  EXPECT_EQ(tail->extents[0].offset, kOneMiB - 512);
  EXPECT_EQ(tail->extents[0].length, 1024u);
  EXPECT_EQ(vol_->stats().bytes_read_backing.value(), 4 * 512u + 1024u);

  // Bad ranges fail as for any read.
  Call* beyond = Locate(kOneMiB / 512 + 1, 1);
  EXPECT_TRUE(beyond->done);
  EXPECT_EQ(beyond->status.code(), absl::StatusCode::kOutOfRange);
}

TEST_F(VolumeFixture, LocatedReadsNeedThePageCache) {
  Open(kOneMiB, Durability::kOrdered, CacheMode::kNone);
  Call* c = Locate(0, 8);
  ASSERT_TRUE(c->done);
  EXPECT_EQ(c->status.code(), absl::StatusCode::kFailedPrecondition) << c->status;
  EXPECT_EQ(io_.log().size(), 0u);
}

// WrittenWrite, the NBD export's inline writes: the caller wrote
// the data; the engine does the rest of a write (barrier, bits, stalls).
TEST_F(VolumeFixture, WrittenDataGetsItsBarrierAndBitsButNoDataWrite) {
  Open(kOneMiB, Durability::kOrdered);
  Call* w = Written(8, 16, 'w');
  EXPECT_EQ(DataWrite(), -1);
  ASSERT_GE(Sync(), 0);  // invariant 2: the data is durable before its bits
  EXPECT_EQ(BitmapWrite(), -1);
  EXPECT_FALSE(MemBit(8));
  io_.Release(Sync());
  ASSERT_GE(BitmapWrite(), 0);
  EXPECT_TRUE(MemBit(8));
  EXPECT_FALSE(w->done);
  Call* stalled = Read(0, 12);  // invariant 4: overlaps the update in flight
  EXPECT_EQ(CountReads(), 0);
  io_.Release(BitmapWrite());
  io_.ReleaseAll();
  ASSERT_TRUE(w->done);
  EXPECT_TRUE(w->status.ok()) << w->status;
  ASSERT_TRUE(stalled->done);
  EXPECT_EQ(stalled->buf, Backing(0, 8) + std::string(4 * 512, 'w'));
  EXPECT_EQ(vol_->stats().bytes[static_cast<int>(OpType::kWrite)].value(), 16 * 512u);
  // A rewrite of written data: no barrier, no bitmap write.
  Call* again = Written(8, 4, 'x');
  EXPECT_TRUE(io_.queued().empty());
  ASSERT_TRUE(again->done && again->status.ok()) << again->status;
  Call* r = Read(8, 16);
  io_.ReleaseAll();
  EXPECT_EQ(r->buf, std::string(4 * 512, 'x') + std::string(12 * 512, 'w'));
  std::set<uint64_t> bits;
  for (uint64_t s = 8; s < 24; ++s) bits.insert(s);
  ExpectReopensClean(bits);
}

TEST_F(VolumeFixture, DeferredWrittenDataIsAcknowledgedAtOnceAndItsBitsCommittedAfterASync) {
  Open(kOneMiB, Durability::kDeferred);
  Call* w = Written(0, 8, 'd');
  ASSERT_TRUE(w->done && w->status.ok()) << w->status;
  EXPECT_TRUE(MemBit(0));
  EXPECT_FALSE(DiskBit(0));
  ASSERT_EQ(io_.queued().size(), 1u);
  EXPECT_EQ(io_.queued()[0].opcode, IoOpcode::kFdatasync);  // no data write, no bitmap yet
  Call* f = Flush();
  io_.Release(Sync());
  ASSERT_GE(BitmapWrite(), 0);
  EXPECT_FALSE(f->done);
  io_.ReleaseAll();
  ASSERT_TRUE(f->done && f->status.ok()) << f->status;
  EXPECT_TRUE(DiskBit(0));
  ExpectReopensClean({0, 1, 2, 3, 4, 5, 6, 7});
}

// (That only a write can come written is the type's: WrittenWrite.)
TEST_F(VolumeFixture, WrittenDataFailsWithTheCallersErrorAndNeedsThePageCache) {
  Open(kOneMiB, Durability::kOrdered);
  Call* failed = Written(16, 8, 'f', ENOSPC);  // the caller's write failed
  ASSERT_TRUE(failed->done);
  EXPECT_EQ(failed->status.code(), absl::StatusCode::kResourceExhausted) << failed->status;
  EXPECT_EQ(vol_->stats().io_errors.value(), 1u);
  EXPECT_EQ(vol_->stats().ops_failed[static_cast<int>(OpType::kWrite)].value(), 1u);
  Call* beyond = Written(kOneMiB / 512, 8, 'b');
  ASSERT_TRUE(beyond->done);
  EXPECT_EQ(beyond->status.code(), absl::StatusCode::kOutOfRange) << beyond->status;
  EXPECT_EQ(io_.log().size(), 0u);
  EXPECT_FALSE(MemBit(0) || MemBit(16));
  vol_.reset();
  ASSERT_EQ(unlink(CowPath().c_str()), 0);
  Open(kOneMiB, Durability::kOrdered, CacheMode::kNone);
  Call* direct = Written(0, 8, 'c');
  ASSERT_TRUE(direct->done);
  EXPECT_EQ(direct->status.code(), absl::StatusCode::kFailedPrecondition) << direct->status;
  EXPECT_EQ(io_.log().size(), 0u);
  ExpectReopensClean({});
}

TEST_F(VolumeFixture, AFailedReadFailsAloneWithOneStatus) {
  Open(kOneMiB, Durability::kOrdered);
  Call* w = Write(4, 1, 'a');
  io_.ReleaseAll();
  ASSERT_TRUE(w->status.ok());
  Call* r = Read(0, 8);  // three runs: backing, cow, backing
  EXPECT_EQ(CountReads(), 3);
  Call* other = Read(100, 1);
  io_.Release(io_.FindOpcode(IoOpcode::kRead), -EIO);
  EXPECT_FALSE(r->done);  // one status, when every run is back
  io_.ReleaseAll();
  EXPECT_TRUE(r->done);
  EXPECT_FALSE(r->status.ok());
  EXPECT_TRUE(other->status.ok());
  EXPECT_EQ(vol_->stats().ops_failed[static_cast<int>(OpType::kRead)].value(), 1u);
}

// ---- Split writes (VolumeOptions::write_split_bytes) ---------------------

// The data writes queued, in file order: {offset, length}.
std::vector<std::pair<uint64_t, uint64_t>> DataPieces(const ManualIo& io, uint64_t data_offset) {
  std::vector<std::pair<uint64_t, uint64_t>> pieces;
  for (const IoOp& o : io.queued()) {
    if (o.opcode == IoOpcode::kWrite && o.offset >= data_offset) {
      pieces.emplace_back(o.offset, o.len);
    }
  }
  std::sort(pieces.begin(), pieces.end());
  return pieces;
}

TEST_F(VolumeFixture, ASplitWriteGoesInAlignedPiecesAndItsBitsWaitForAll) {
  write_split_bytes_ = 8192;
  Open(kOneMiB, Durability::kOrdered);
  Call* w = Write(3, 40, 'a');  // 20 KiB from sector 3
  const auto pieces = DataPieces(io_, data_offset_);
  ASSERT_GE(pieces.size(), 3u);
  uint64_t at = data_offset_ + 3 * 512;
  for (size_t i = 0; i < pieces.size(); ++i) {
    EXPECT_EQ(pieces[i].first, at) << i;
    EXPECT_LE(pieces[i].second, 8192u) << i;
    at += pieces[i].second;
    if (i + 1 < pieces.size()) {
      EXPECT_EQ(at % 8192, 0u) << i;  // ends on the split
    }
  }
  EXPECT_EQ(at, data_offset_ + 43 * 512);
  // Every piece but one done: no barrier, no bitmap write, no answer.
  for (size_t i = 0; i + 1 < pieces.size(); ++i) io_.Release(DataWrite());
  EXPECT_EQ(Sync(), -1);
  EXPECT_EQ(BitmapWrite(), -1);
  EXPECT_FALSE(w->done);
  EXPECT_FALSE(MemBit(3));
  io_.Release(DataWrite());
  EXPECT_GE(Sync(), 0);  // the barrier comes once all the data is written
  io_.ReleaseAll();
  ASSERT_TRUE(w->done);
  EXPECT_TRUE(w->status.ok()) << w->status;
  Call* r = Read(0, 48);
  io_.ReleaseAll();
  EXPECT_EQ(r->buf, Backing(0, 3) + std::string(40 * 512, 'a') + Backing(43, 5));
  std::set<uint64_t> bits;
  for (uint64_t s = 3; s < 43; ++s) bits.insert(s);
  ExpectReopensClean(bits);
}

TEST_F(VolumeFixture, AFailedPieceFailsTheSplitWriteAndSetsNoBit) {
  write_split_bytes_ = 4096;
  Open(kOneMiB, Durability::kOrdered);
  Call* w = Write(0, 24, 'a');  // 12 KiB: three pieces or more
  ASSERT_GE(DataPieces(io_, data_offset_).size(), 3u);
  io_.Release(DataWrite());
  io_.Release(DataWrite(), -EIO);
  EXPECT_FALSE(w->done);  // one answer, once every piece is back
  io_.ReleaseAll();
  ASSERT_TRUE(w->done);
  EXPECT_THAT(w->status.message(), HasSubstr("Input/output error"));
  EXPECT_EQ(vol_->stats().ops_failed[static_cast<int>(OpType::kWrite)].value(), 1u);
  EXPECT_FALSE(MemBit(0));
  ExpectReopensClean({});
}

TEST_F(VolumeFixture, WritesWithinOneSplitAndDirectWritesStayWhole) {
  write_split_bytes_ = 64 << 10;
  Open(kOneMiB, Durability::kOrdered);
  // Inside one 64 KiB span of the file: one write.
  const uint64_t span = 64 << 10;
  const uint64_t first = ((data_offset_ + span - 1) / span * span - data_offset_) / 512;
  Write(first, 8, 'a');
  EXPECT_EQ(DataPieces(io_, data_offset_).size(), 1u);
  io_.ReleaseAll();
  vol_.reset();
  ASSERT_EQ(unlink(CowPath().c_str()), 0);
  // O_DIRECT has no folios to keep small.
  Open(kOneMiB, Durability::kOrdered, CacheMode::kNone);
  Write(0, 512, 'b');  // 256 KiB
  EXPECT_EQ(DataPieces(io_, data_offset_).size(), 1u);
  io_.ReleaseAll();
}

TEST_F(VolumeFixture, AWriteSplitThatIsNotWholePagesIsRefused) {
  Open(kOneMiB, Durability::kOrdered);
  vol_.reset();
  cow::OpenOptions rw;
  rw.writable = true;
  auto file = cow::CowFile::Open(CowPath(), rw);
  ASSERT_TRUE(file.ok()) << file.status();
  VolumeOptions options;
  options.write_split_bytes = 6000;
  auto v = Volume::Create(*std::move(file), &io_, options);
  ASSERT_FALSE(v.ok());
  EXPECT_EQ(v.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(v.status().message(), HasSubstr("multiple of 4096"));
}

}  // namespace
}  // namespace cowblk::engine
