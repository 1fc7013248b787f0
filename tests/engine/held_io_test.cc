// HeldIo, the decorator behind cowblkd --debug-hold-bitmap-writes: bitmap
// writes wait for a release, oldest first, everything else passes; a
// volume's block writes are the ones it parks; and the FIFO variant turns
// each byte written to the pipe into one release on the engine thread.

#include "server/engine/held_io.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <condition_variable>
#include <functional>
#include <memory>
#include <mutex>
#include <string>
#include <vector>

#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "server/cow/cow_file.h"
#include "server/engine/manual_io.h"
#include "server/engine/volume.h"
#include "tests/support/scratch.h"

namespace cowblk::engine {
namespace {

using ::testing::ElementsAre;
using ::testing::HasSubstr;

// Records the completions the real backend delivers.
class RecordingSink : public IoSink {
 public:
  void OnIoComplete(uint64_t user_data, int32_t result) override {
    done.push_back(user_data);
    (void)result;
  }
  std::vector<uint64_t> done;
};

IoOp Op(IoPurpose purpose, uint64_t user_data) {
  IoOp op;
  op.purpose = purpose;
  op.opcode = purpose == IoPurpose::kSync    ? IoOpcode::kFdatasync
              : purpose == IoPurpose::kTimer ? IoOpcode::kTimeout
                                             : IoOpcode::kWrite;
  op.user_data = user_data;
  return op;
}

std::vector<uint64_t> Queued(const ManualIo& io) {
  std::vector<uint64_t> ids;
  for (const IoOp& op : io.queued()) ids.push_back(op.user_data);
  return ids;
}

class HeldIoTest : public ::testing::Test {
 protected:
  RecordingSink sink_;
  ManualIo real_{&sink_};
  HeldIo held_{&real_};
};

TEST_F(HeldIoTest, BitmapWritesAreParkedAndReleasedOldestFirst) {
  held_.Submit(Op(IoPurpose::kBitmap, 1));
  held_.Submit(Op(IoPurpose::kBitmap, 2));
  held_.Submit(Op(IoPurpose::kBitmap, 3));
  EXPECT_TRUE(real_.queued().empty());
  EXPECT_EQ(held_.held(), 3u);
  held_.Release();
  EXPECT_THAT(Queued(real_), ElementsAre(1));
  held_.Release();
  held_.Release();
  EXPECT_THAT(Queued(real_), ElementsAre(1, 2, 3));
  EXPECT_EQ(held_.held(), 0u);
}

TEST_F(HeldIoTest, DataSyncsAndTimersPassStraightThrough) {
  held_.Submit(Op(IoPurpose::kBitmap, 1));
  held_.Submit(Op(IoPurpose::kData, 2));
  held_.Submit(Op(IoPurpose::kSync, 3));
  held_.Submit(Op(IoPurpose::kTimer, 4));
  EXPECT_THAT(Queued(real_), ElementsAre(2, 3, 4));
  EXPECT_EQ(held_.held(), 1u);
}

TEST_F(HeldIoTest, ReleasesThatFindNothingParkedLetTheNextWritesThrough) {
  held_.Release();
  held_.Release();
  held_.Submit(Op(IoPurpose::kBitmap, 1));
  held_.Submit(Op(IoPurpose::kBitmap, 2));
  held_.Submit(Op(IoPurpose::kBitmap, 3));
  EXPECT_THAT(Queued(real_), ElementsAre(1, 2));
  EXPECT_EQ(held_.held(), 1u);
}

TEST_F(HeldIoTest, InFlightCountsParkedOperationsAndCompletionsReachTheSinkUnchanged) {
  held_.Submit(Op(IoPurpose::kBitmap, 7));
  held_.Submit(Op(IoPurpose::kData, 8));
  EXPECT_EQ(held_.in_flight(), 2u);
  EXPECT_EQ(real_.in_flight(), 1u);
  held_.Release();
  real_.Release(0, -EIO);
  real_.Release(0, -EIO);
  EXPECT_EQ(held_.in_flight(), 0u);
  EXPECT_THAT(sink_.done, ElementsAre(8, 7));
}

// `op` of `buf`'s bytes at offset 0; sets `*done` when it succeeded.
Request RequestAtZero(OpType op, std::string& buf, bool* done) {
  Request req = Request::Of(op, 0, buf.size(), buf.data());
  req.done = [done](absl::Status s) {
    EXPECT_TRUE(s.ok()) << s;
    *done = true;
  };
  return req;
}

// The volume's side: it tags its bitmap block writes, and only those, so a
// first write's data and barrier pass, its block write waits, and a read
// of its sectors stalls until the release.
TEST(HeldIoVolumeTest, AVolumesBitmapWriteWaitsForTheReleaseAndReadsStallBehindIt) {
  cowblk::testing::TempDir dir;
  cowblk::testing::WriteFileBytes(dir.File("base.img"), std::string(1 << 20, 'b'));
  auto file = cow::CowFile::Create(dir.File("vol.cow"), cow::CreateOptions{dir.File("base.img")});
  ASSERT_TRUE(file.ok()) << file.status();
  VolumeIoSink sink;
  ManualIo real(&sink);
  HeldIo held(&real);
  auto volume = Volume::Create(*std::move(file), &held, VolumeOptions{});
  ASSERT_TRUE(volume.ok()) << volume.status();
  std::string data(4096, 'a');
  bool written = false;
  Request write = RequestAtZero(OpType::kWrite, data, &written);
  (*volume)->Submit(&write);
  ASSERT_EQ(real.FindOpcode(IoOpcode::kWrite), 0);
  real.Release(0);  // the data
  ASSERT_EQ(real.FindOpcode(IoOpcode::kFdatasync), 0);
  real.Release(0);  // the barrier
  EXPECT_TRUE(real.queued().empty());
  EXPECT_EQ(held.held(), 1u);
  EXPECT_EQ((*volume)->stats().bitmap_writes_pending.value(), 1u);

  std::string out(4096, '\0');
  bool read = false;
  Request r = RequestAtZero(OpType::kRead, out, &read);
  (*volume)->Submit(&r);
  EXPECT_TRUE(real.queued().empty());  // stalled behind the held update
  EXPECT_EQ((*volume)->stats().reads_stalled.value(), 1u);

  held.Release();
  ASSERT_EQ(real.queued().size(), 1u);
  EXPECT_LT(real.queued()[0].offset, (*volume)->file().geometry().data_offset);
  real.Release(0);  // the bitmap block
  EXPECT_TRUE(written);
  real.ReleaseAll();  // the read, from the COW file now
  EXPECT_TRUE(read);
  EXPECT_EQ(out, data);
}

// What Engine::Post does, for a test thread standing in for the engine's.
class PostQueue {
 public:
  std::function<void(std::function<void()>)> Post() {
    return [this](std::function<void()> fn) {
      std::lock_guard<std::mutex> lock(mu_);
      posted_.push_back(std::move(fn));
      cv_.notify_all();
    };
  }
  // Waits until `n` closures were posted, then runs them.
  void RunWhenPosted(size_t n) {
    std::vector<std::function<void()>> run;
    {
      std::unique_lock<std::mutex> lock(mu_);
      cv_.wait(lock, [&] { return posted_.size() >= n; });
      run.swap(posted_);
    }
    for (auto& fn : run) fn();
  }

 private:
  std::mutex mu_;
  std::condition_variable cv_;
  std::vector<std::function<void()>> posted_;
};

TEST(HoldBitmapWritesUntilFifoTest, EachByteWrittenToTheFifoReleasesOneWrite) {
  cowblk::testing::TempDir dir;
  const std::string fifo = dir.File("hold.fifo");
  ASSERT_EQ(mkfifo(fifo.c_str(), 0600), 0);
  RecordingSink sink;
  ManualIo real(&sink);
  PostQueue posts;
  auto held = HoldBitmapWritesUntilFifo(fifo, &real, posts.Post());
  ASSERT_TRUE(held.ok()) << held.status();
  (*held)->Submit(Op(IoPurpose::kBitmap, 1));
  (*held)->Submit(Op(IoPurpose::kBitmap, 2));
  (*held)->Submit(Op(IoPurpose::kBitmap, 3));
  EXPECT_TRUE(real.queued().empty());

  const int fd = open(fifo.c_str(), O_WRONLY | O_CLOEXEC);
  ASSERT_GE(fd, 0);
  ASSERT_EQ(write(fd, "rr", 2), 2);
  close(fd);
  posts.RunWhenPosted(2);
  EXPECT_THAT(Queued(real), ElementsAre(1, 2));
  EXPECT_EQ((*held)->in_flight(), 3u);
}

TEST(HoldBitmapWritesUntilFifoTest, APathThatIsNotAFifoIsRefused) {
  cowblk::testing::TempDir dir;
  cowblk::testing::WriteFileBytes(dir.File("plain"), "x");
  RecordingSink sink;
  ManualIo real(&sink);
  PostQueue posts;
  auto held = HoldBitmapWritesUntilFifo(dir.File("plain"), &real, posts.Post());
  ASSERT_FALSE(held.ok());
  EXPECT_THAT(std::string(held.status().message()), HasSubstr("is not a FIFO"));
  EXPECT_FALSE(HoldBitmapWritesUntilFifo(dir.File("missing"), &real, posts.Post()).ok());
}

}  // namespace
}  // namespace cowblk::engine
