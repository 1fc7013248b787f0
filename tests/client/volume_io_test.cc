// Volume I/O through cowblk::Volume against a real cowblkd: every call,
// sync and async, chunked large requests, the window, argument checks.

#include <atomic>
#include <future>
#include <string>
#include <vector>

#include "tests/client/client_fixture.h"

namespace cowblk::testing {
namespace {

constexpr uint64_t kMiB = 1 << 20;

using VolumeIoTest = ClientFixture;

TEST_F(VolumeIoTest, OpenReportsSizeAndSectorSize) {
  auto volume = NewVolume("disk0", 3 * kMiB);
  ASSERT_NE(volume, nullptr);
  EXPECT_EQ(volume->name(), "disk0");
  EXPECT_EQ(volume->size(), 3 * kMiB);
  EXPECT_EQ(volume->sector_size(), 512u);
  EXPECT_EQ(volume->info().state, VolumeState::kReady);
}

TEST_F(VolumeIoTest, WriteThenReadReturnsTheBytes) {
  auto volume = NewVolume("disk0", kMiB);
  ASSERT_NE(volume, nullptr);
  const std::string data = RandomBytes(4096, 1);
  ASSERT_TRUE(volume->Write(8192, data.data(), data.size()).ok());
  std::string back(4096, '\0');
  ASSERT_TRUE(volume->Read(8192, back.data(), back.size()).ok());
  EXPECT_TRUE(back == data);
  std::string zeros(512, 'x');
  ASSERT_TRUE(volume->Read(0, zeros.data(), zeros.size()).ok());
  EXPECT_EQ(zeros, std::string(512, '\0'));
}

TEST_F(VolumeIoTest, FuaWriteFlushTrimAndWriteZeroes) {
  auto volume = NewVolume("disk0", kMiB);
  ASSERT_NE(volume, nullptr);
  const std::string data(65536, 'a');
  ASSERT_TRUE(volume->Write(0, data.data(), data.size(), {.fua = true}).ok());
  ASSERT_TRUE(volume->Flush().ok());
  ASSERT_TRUE(volume->Trim(0, 4096).ok());
  ASSERT_TRUE(volume->WriteZeroes(8192, 4096, {.fua = true}).ok());
  std::string back(65536, '\0');
  ASSERT_TRUE(volume->Read(0, back.data(), back.size()).ok());
  std::string want = data;
  want.replace(0, 4096, std::string(4096, '\0'));
  want.replace(8192, 4096, std::string(4096, '\0'));
  EXPECT_TRUE(back == want);
}

TEST_F(VolumeIoTest, EightMiBReadAndWriteAreChunkedAndComeBackWhole) {
  auto volume = NewVolume("disk0", 16 * kMiB, {.max_in_flight = 4, .chunk_size = 1 << 20});
  ASSERT_NE(volume, nullptr);
  const std::string data = RandomBytes(8 * kMiB, 2);
  ASSERT_TRUE(volume->Write(4 * kMiB, data.data(), data.size()).ok());
  std::string back(8 * kMiB, '\0');
  ASSERT_TRUE(volume->Read(4 * kMiB, back.data(), back.size()).ok());
  EXPECT_TRUE(back == data);
  // 8 write chunks and 8 read chunks of 1 MiB each.
  EXPECT_EQ(volume->stats().requests, 16u);
}

TEST_F(VolumeIoTest, AnUnalignedTailChunkIsFine) {
  auto volume = NewVolume("disk0", 4 * kMiB, {.chunk_size = 3 * 4096});
  ASSERT_NE(volume, nullptr);
  const std::string data = RandomBytes(kMiB + 1536, 3);
  ASSERT_TRUE(volume->Write(512, data.data(), data.size()).ok());
  std::string back(data.size(), '\0');
  ASSERT_TRUE(volume->Read(512, back.data(), back.size()).ok());
  EXPECT_TRUE(back == data);
}

TEST_F(VolumeIoTest, BadRangesFailBeforeReachingTheServer) {
  auto volume = NewVolume("disk0", kMiB);
  ASSERT_NE(volume, nullptr);
  char buf[1024];
  absl::Status s = volume->Read(100, buf, 512);
  EXPECT_EQ(s.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_NE(s.message().find("offset"), absl::string_view::npos);
  s = volume->Write(0, buf, 100);
  EXPECT_EQ(s.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_NE(s.message().find("length"), absl::string_view::npos);
  EXPECT_EQ(volume->Read(kMiB, buf, 512).code(), absl::StatusCode::kOutOfRange);
  EXPECT_EQ(volume->Trim(kMiB - 512, 1024).code(), absl::StatusCode::kOutOfRange);
  EXPECT_TRUE(volume->Read(kMiB, buf, 0).ok());
  EXPECT_EQ(volume->stats().requests, 0u);
}

TEST_F(VolumeIoTest, BadVolumeOptionsAreRefused) {
  ASSERT_TRUE(client_->CreateVolume("disk0", kMiB).ok());
  EXPECT_EQ(client_->OpenVolume("disk0", {.max_in_flight = 0}).status().code(),
            absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(client_->OpenVolume("disk0", {.chunk_size = 1000}).status().code(),
            absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(client_->OpenVolume("disk0", {.chunk_size = 64u << 20}).status().code(),
            absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(client_->OpenVolume("disk0", {.max_batch = 0}).status().code(),
            absl::StatusCode::kInvalidArgument);
}

TEST_F(VolumeIoTest, CallbacksAndFuturesEachCompleteOnce) {
  auto volume = NewVolume("disk0", kMiB);
  ASSERT_NE(volume, nullptr);
  const std::string data = RandomBytes(8192, 4);
  std::promise<absl::Status> written;
  volume->WriteAsync(0, data.data(), data.size(),
                     [&](absl::Status s) { written.set_value(std::move(s)); });
  ASSERT_TRUE(written.get_future().get().ok());
  ASSERT_TRUE(volume->FlushAsync().get().ok());
  std::string back(8192, '\0');
  ASSERT_TRUE(volume->ReadAsync(0, back.data(), back.size()).get().ok());
  EXPECT_TRUE(back == data);
  ASSERT_TRUE(volume->TrimAsync(0, 4096).get().ok());
  ASSERT_TRUE(volume->WriteZeroesAsync(4096, 4096).get().ok());
  ASSERT_TRUE(volume->ReadAsync(0, back.data(), back.size()).get().ok());
  EXPECT_EQ(back, std::string(8192, '\0'));
  // An argument error completes the callback at once.
  std::atomic<int> calls{0};
  volume->ReadAsync(1, back.data(), 512, [&](absl::Status s) {
    EXPECT_EQ(s.code(), absl::StatusCode::kInvalidArgument);
    ++calls;
  });
  EXPECT_EQ(calls.load(), 1);
}

// Many more calls than the window, all at once: at most max_in_flight wire
// requests are ever outstanding, every call completes once, and the data is
// right.
TEST_F(VolumeIoTest, AsyncCallsBeyondAFullWindowQueueAndAllComplete) {
  constexpr int kWindow = 8;
  constexpr int kCalls = 512;
  auto volume = NewVolume("disk0", 4 * kMiB, {.max_in_flight = kWindow});
  ASSERT_NE(volume, nullptr);
  std::vector<std::string> blocks(kCalls);
  std::atomic<int> done{0}, failed{0};
  uint64_t max_seen = 0, max_queued = 0;
  std::promise<void> all;
  for (int i = 0; i < kCalls; ++i) {
    blocks[i] = RandomBytes(4096, 100 + i);
    volume->WriteAsync(uint64_t(i) * 8192, blocks[i].data(), 4096, [&](absl::Status s) {
      if (!s.ok()) ++failed;
      if (++done == kCalls) all.set_value();
    });
    const VolumeStats st = volume->stats();
    max_seen = std::max(max_seen, st.in_flight);
    max_queued = std::max(max_queued, st.queued);
  }
  all.get_future().get();
  EXPECT_EQ(failed.load(), 0);
  EXPECT_EQ(max_seen, uint64_t{kWindow});  // the window filled, and no more
  EXPECT_GT(max_queued, 0u);               // the rest waited in the queue

  std::vector<std::string> back(kCalls, std::string(4096, '\0'));
  std::vector<std::future<absl::Status>> reads;
  for (int i = 0; i < kCalls; ++i) {
    reads.push_back(volume->ReadAsync(uint64_t(i) * 8192, back[i].data(), 4096));
  }
  for (int i = 0; i < kCalls; ++i) {
    ASSERT_TRUE(reads[i].get().ok());
    ASSERT_TRUE(back[i] == blocks[i]) << i;
  }
  EXPECT_EQ(volume->stats().in_flight, 0u);
}

TEST_F(VolumeIoTest, ConcurrentSyncCallersFromManyThreads) {
  auto volume = NewVolume("disk0", 8 * kMiB);
  ASSERT_NE(volume, nullptr);
  std::vector<std::thread> threads;
  std::atomic<int> bad{0};
  for (int t = 0; t < 8; ++t) {
    threads.emplace_back([&, t] {
      for (int i = 0; i < 50; ++i) {
        const uint64_t off = (uint64_t(t) * 64 + i) * 16384;
        const std::string data = RandomBytes(16384, t * 1000 + i);
        if (!volume->Write(off, data.data(), data.size()).ok()) ++bad;
        std::string back(16384, '\0');
        if (!volume->Read(off, back.data(), back.size()).ok() || back != data) ++bad;
      }
    });
  }
  for (auto& th : threads) th.join();
  EXPECT_EQ(bad.load(), 0);
}

// Requests that queue behind a message being sent leave together in one
// message's batch; each still completes once with its own bytes. The first
// call opens the stream (and learns the server takes batches) first.
TEST_F(VolumeIoTest, QueuedRequestsLeaveInBatchesAndEachCompletesWithItsBytes) {
  constexpr int kCalls = 256;
  auto volume = NewVolume("disk0", 4 * kMiB, {.max_in_flight = 64, .lanes = 1});
  ASSERT_NE(volume, nullptr);
  std::string one(4096, '\0');
  ASSERT_TRUE(volume->Read(0, one.data(), one.size()).ok());
  const VolumeStats before = volume->stats();
  std::vector<std::string> blocks(kCalls);
  std::vector<std::future<absl::Status>> writes;
  for (int i = 0; i < kCalls; ++i) {
    blocks[i] = RandomBytes(4096, 300 + i);
    writes.push_back(volume->WriteAsync(uint64_t(i) * 8192, blocks[i].data(), 4096));
  }
  for (auto& w : writes) ASSERT_TRUE(w.get().ok());
  std::vector<std::string> back(kCalls, std::string(4096, '\0'));
  std::vector<std::future<absl::Status>> reads;
  for (int i = 0; i < kCalls; ++i) {
    reads.push_back(volume->ReadAsync(uint64_t(i) * 8192, back[i].data(), 4096));
  }
  for (int i = 0; i < kCalls; ++i) {
    ASSERT_TRUE(reads[i].get().ok());
    ASSERT_TRUE(back[i] == blocks[i]) << i;
  }
  const VolumeStats after = volume->stats();
  EXPECT_EQ(after.requests - before.requests, 2u * kCalls);
  // 512 requests submitted in two bursts: many queued behind a send.
  EXPECT_LT(after.messages_sent - before.messages_sent, after.requests - before.requests);
  EXPECT_LT(after.messages_received - before.messages_received, after.requests - before.requests);
}

TEST_F(VolumeIoTest, MaxBatchOfOneSendsOneRequestPerMessage) {
  auto volume = NewVolume("disk0", 4 * kMiB, {.max_in_flight = 64, .lanes = 1, .max_batch = 1});
  ASSERT_NE(volume, nullptr);
  std::vector<std::string> bufs(128, std::string(4096, '\0'));
  std::vector<std::future<absl::Status>> f;
  for (int i = 0; i < 128; ++i)
    f.push_back(volume->ReadAsync(uint64_t(i) * 4096, bufs[i].data(), 4096));
  for (auto& x : f) ASSERT_TRUE(x.get().ok());
  const VolumeStats st = volume->stats();
  EXPECT_EQ(st.requests, 128u);
  EXPECT_EQ(st.messages_sent, 128u);
}

TEST_F(VolumeIoTest, StreamsSpreadOverLanes) {
  auto volume = NewVolume("disk0", kMiB, {.lanes = 3});
  ASSERT_NE(volume, nullptr);
  std::vector<std::string> bufs(30, std::string(4096, '\0'));
  std::vector<std::future<absl::Status>> f;
  for (int i = 0; i < 30; ++i)
    f.push_back(volume->ReadAsync(uint64_t(i) * 4096, bufs[i].data(), 4096));
  for (auto& x : f) ASSERT_TRUE(x.get().ok());
  EXPECT_EQ(volume->stats().streams, 3u);
}

TEST_F(VolumeIoTest, CallsAfterCloseFailAndCloseIsIdempotent) {
  auto volume = NewVolume("disk0", kMiB);
  ASSERT_NE(volume, nullptr);
  char buf[512];
  ASSERT_TRUE(volume->Read(0, buf, 512).ok());
  volume->Close();
  volume->Close();
  EXPECT_EQ(volume->Read(0, buf, 512).code(), absl::StatusCode::kFailedPrecondition);
}

// The server answers the bound stream UNAVAILABLE ("volume is closed"); the
// retry on a fresh stream learns NOT_FOUND, which is final.
TEST_F(VolumeIoTest, AVolumeDeletedUnderAnOpenHandleFailsNotFoundQuickly) {
  auto volume = NewVolume("disk0", kMiB);
  ASSERT_NE(volume, nullptr);
  char buf[512];
  ASSERT_TRUE(volume->Read(0, buf, 512).ok());
  ASSERT_TRUE(client_->DeleteVolume("disk0").ok());
  const auto start = std::chrono::steady_clock::now();
  absl::Status s = volume->Read(0, buf, 512, {.deadline = std::chrono::seconds(5)});
  EXPECT_EQ(s.code(), absl::StatusCode::kNotFound) << s;
  EXPECT_LT(std::chrono::steady_clock::now() - start, std::chrono::seconds(4));
}

}  // namespace
}  // namespace cowblk::testing
