// ThreadsIo (server/engine/threads_io.h) on its own: results as the
// syscalls return them (short reads included), the timeouts' io_uring
// semantics, completions only on the thread that polls, Wake() from
// another thread, and its bounds. The engine's tests run it under load
// (stress_test.cc, engine_interop_test.cc: the *Threads modes).

#include "server/engine/threads_io.h"

#include <fcntl.h>
#include <unistd.h>

#include <cerrno>
#include <chrono>
#include <cstring>
#include <map>
#include <string>
#include <thread>
#include <vector>

#include "common/clock.h"
#include "gtest/gtest.h"
#include "tests/support/scratch.h"

namespace cowblk::engine {
namespace {

struct RecordingSink : IoSink {
  void OnIoComplete(uint64_t user_data, int32_t result) override {
    order.push_back(user_data);
    results[user_data] = result;
    if (std::this_thread::get_id() != owner) ++foreign_thread_calls;
  }
  std::thread::id owner = std::this_thread::get_id();
  std::vector<uint64_t> order;
  std::map<uint64_t, int32_t> results;
  int foreign_thread_calls = 0;
};

class ThreadsIoTest : public ::testing::Test {
 protected:
  void SetUp() override {
    auto io = ThreadsIo::Create(4, &sink_);
    ASSERT_TRUE(io.ok()) << io.status();
    io_ = *std::move(io);
    fd_ = open(dir_.File("f").c_str(), O_RDWR | O_CREAT | O_CLOEXEC, 0600);
    ASSERT_GE(fd_, 0);
  }
  void TearDown() override {
    io_.reset();
    if (fd_ >= 0) close(fd_);
  }

  void Submit(IoOpcode opcode, uint64_t user_data, void* buf = nullptr, uint64_t len = 0,
              uint64_t offset = 0, int fd = -2) {
    IoOp op;
    op.opcode = opcode;
    op.fd = fd == -2 ? fd_ : fd;
    op.buf = buf;
    op.len = len;
    op.offset = offset;
    op.user_data = user_data;
    io_->Submit(op);
  }
  // Polls until `n` completions in all were delivered.
  void PollUntil(size_t n) {
    while (sink_.order.size() < n) ASSERT_TRUE(io_->Poll());
  }

  cowblk::testing::TempDir dir_;
  RecordingSink sink_;
  std::unique_ptr<ThreadsIo> io_;
  int fd_ = -1;
};

TEST_F(ThreadsIoTest, ReportsWhatEachSyscallReturnedShortReadsIncluded) {
  std::string data(4096, 'd');
  std::string back(8192, '?');
  Submit(IoOpcode::kWrite, 10, data.data(), data.size(), 0);
  PollUntil(1);
  // Past the end of the file: a short read, then none at all.
  Submit(IoOpcode::kRead, 11, back.data(), back.size(), 0);
  Submit(IoOpcode::kRead, 12, back.data(), 512, 1 << 20);
  Submit(IoOpcode::kFdatasync, 13);
  Submit(IoOpcode::kRead, 14, back.data(), 512, 0, /*fd=*/-1);
  PollUntil(5);
  EXPECT_EQ(sink_.results[10], 4096);
  EXPECT_EQ(sink_.results[11], 4096);
  EXPECT_EQ(back.substr(0, 4096), data);
  EXPECT_EQ(sink_.results[12], 0);
  EXPECT_EQ(sink_.results[13], 0);
  EXPECT_EQ(sink_.results[14], -EBADF);
  Submit(IoOpcode::kPunchHole, 15, nullptr, 1024, 1024);
  PollUntil(6);
  EXPECT_EQ(sink_.results[15], 0);
  std::string after(4096, '?');
  ASSERT_EQ(pread(fd_, after.data(), after.size(), 0), 4096);
  EXPECT_EQ(after, std::string(1024, 'd') + std::string(1024, '\0') + std::string(2048, 'd'));
  EXPECT_EQ(io_->in_flight(), 0u);
}

TEST_F(ThreadsIoTest, ACachedReadDoneOnTheEngineThreadStillCompletesFromPoll) {
  std::string data(4096, 'c');
  ASSERT_EQ(pwrite(fd_, data.data(), data.size(), 0), 4096);  // in the page cache
  std::string back(4096, '?');
  Submit(IoOpcode::kRead, 20, back.data(), back.size(), 0);
  io_->SubmitQueued();
  EXPECT_TRUE(sink_.order.empty()) << "completed from SubmitQueued";
  EXPECT_TRUE(io_->CompletionsReady());
  PollUntil(1);
  EXPECT_EQ(sink_.results[20], 4096);
  EXPECT_EQ(back, data);
  EXPECT_EQ(io_->in_flight(), 0u);
}

TEST_F(ThreadsIoTest, CompletionsReachTheSinkOnlyOnThePollingThread) {
  constexpr int kOps = 256;
  std::vector<std::string> bufs(kOps, std::string(4096, 'w'));
  for (int i = 0; i < kOps; ++i) {
    Submit(IoOpcode::kWrite, 100 + i, bufs[i].data(), 4096, uint64_t{4096} * i);
  }
  EXPECT_EQ(io_->in_flight(), static_cast<size_t>(kOps));
  PollUntil(kOps);
  EXPECT_EQ(sink_.foreign_thread_calls, 0);
  for (int i = 0; i < kOps; ++i) EXPECT_EQ(sink_.results[100 + i], 4096) << i;
  EXPECT_EQ(io_->in_flight(), 0u);
  EXPECT_EQ(io_->workers(), 4u);
}

TEST_F(ThreadsIoTest, ATimeoutCompletesZeroAfterItsDuration) {
  const int64_t start = MonotonicNs();
  Submit(IoOpcode::kTimeout, 7, nullptr, /*len=*/20'000'000);
  PollUntil(1);
  EXPECT_EQ(sink_.results[7], 0);
  EXPECT_GE(MonotonicNs() - start, 20'000'000);
  EXPECT_EQ(io_->in_flight(), 0u);
}

TEST_F(ThreadsIoTest, ARemovedTimeoutCompletesEcanceledAndTheRemoveZero) {
  Submit(IoOpcode::kTimeout, 7, nullptr, /*len=*/uint64_t{3600} * 1'000'000'000);
  IoOp remove;
  remove.opcode = IoOpcode::kTimeoutRemove;
  remove.offset = 7;
  remove.user_data = 8;
  io_->Submit(remove);
  EXPECT_TRUE(sink_.order.empty()) << "completed from Submit";
  PollUntil(2);
  EXPECT_EQ(sink_.order, (std::vector<uint64_t>{7, 8}));
  EXPECT_EQ(sink_.results[7], -ECANCELED);
  EXPECT_EQ(sink_.results[8], 0);
  // Too late: the timeout is gone.
  remove.user_data = 9;
  io_->Submit(remove);
  PollUntil(3);
  EXPECT_EQ(sink_.results[9], -ENOENT);
  EXPECT_EQ(io_->in_flight(), 0u);
}

TEST_F(ThreadsIoTest, WakeFromAnotherThreadEndsAWaitWithNothingInFlight) {
  std::thread waker([this] { io_->Wake(); });
  ASSERT_TRUE(io_->Poll());  // returns on the wake-up, whether before or after
  waker.join();
  EXPECT_EQ(io_->delivered(), 0u);
  EXPECT_TRUE(io_->TakeWake());
}

TEST(ThreadsIoCreateTest, RefusesZeroWorkers) {
  RecordingSink sink;
  auto io = ThreadsIo::Create(0, &sink);
  ASSERT_FALSE(io.ok());
  EXPECT_EQ(io.status().code(), absl::StatusCode::kInvalidArgument);
}

}  // namespace
}  // namespace cowblk::engine
