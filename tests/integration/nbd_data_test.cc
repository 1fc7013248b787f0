// Data over the NBD export: what NBD writes reads back over gRPC and the
// other way (zeroes and trims too, and qemu-img sees the same bytes); many
// requests in flight on many connections each get their own reply; small
// reads answered by the engine thread do not wake the connection's writer
// thread; with --engine-poll-us every depth-one request is answered.

#include <libnbd.h>
#include <sys/types.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <filesystem>
#include <fstream>
#include <string>
#include <thread>
#include <vector>

#include "gtest/gtest.h"
#include "tests/integration/nbd_fixture.h"
#include "tests/support/command.h"
#include "tests/support/scratch.h"

namespace cowblk::testing {
namespace {

TEST_F(NbdTest, WritesOverNbdReadBackOverGrpcAndTheOtherWay) {
  nbd_handle* h = Connect("disk0");
  ASSERT_NE(h, nullptr) << nbd_get_error();
  const std::string a = RandomBytes(1 << 20, 1);
  ASSERT_EQ(nbd_pwrite(h, a.data(), a.size(), 4096, 0), 0) << nbd_get_error();
  const std::string b = RandomBytes(8192, 2);
  ASSERT_EQ(nbd_pwrite(h, b.data(), b.size(), 6 << 20, LIBNBD_CMD_FLAG_FUA), 0);
  ASSERT_EQ(nbd_flush(h, 0), 0);
  std::string got;
  ASSERT_TRUE(ReadData("disk0", 4096, a.size(), &got).ok());
  EXPECT_TRUE(got == a);
  ASSERT_TRUE(ReadData("disk0", 6 << 20, b.size(), &got).ok());
  EXPECT_TRUE(got == b);

  // gRPC writes, NBD reads.
  const std::string c = RandomBytes(65536, 3);
  ASSERT_TRUE(WriteData("disk0", 2 << 20, c).ok());
  std::string back(c.size(), '\0');
  ASSERT_EQ(nbd_pread(h, back.data(), back.size(), 2 << 20, 0), 0) << nbd_get_error();
  EXPECT_TRUE(back == c);

  // Zeroes and trims read back as zeros.
  ASSERT_EQ(nbd_zero(h, 8192, 4096, 0), 0) << nbd_get_error();
  ASSERT_EQ(nbd_trim(h, 4096, 4096 + 8192, 0), 0) << nbd_get_error();
  ASSERT_TRUE(ReadData("disk0", 4096, 3 * 4096, &got).ok());
  EXPECT_EQ(got, std::string(3 * 4096, '\0'));
  ASSERT_TRUE(ReadData("disk0", 4 * 4096, 4096, &got).ok());
  EXPECT_TRUE(got == a.substr(3 * 4096, 4096));

  // qemu-img sees the volume as a file holding exactly those bytes.
  std::string want(kSize, '\0');
  want.replace(4096, a.size(), a);
  want.replace(4096, 3 * 4096, std::string(3 * 4096, '\0'));
  want.replace(2 << 20, c.size(), c);
  want.replace(6 << 20, b.size(), b);
  const std::string file = dir_.path() + "/want.raw";
  WriteFileBytes(file, want);
  const CommandResult compare = RunCommand(
      {"qemu-img", "compare", "-q", "-f", "raw", "-F", "raw", file, Uri("disk0")},
      Stderr::kInOutput);
  EXPECT_EQ(compare.exit_code, 0) << "qemu-img compare " << file << " " << Uri("disk0") << "\n"
                                  << compare.output;
}

// Several connections with many requests in flight each (libnbd's async
// calls), of sizes from 4 KiB to 1 MiB: replies must reach the request they
// answer, with its bytes. Readers check a region written before (over
// gRPC) while writers fill the other half; then gRPC reads what they wrote.
TEST_F(NbdTest, ManyRequestsInFlightOnManyConnectionsGetTheirOwnReplies) {
  constexpr uint64_t kHalf = kSize / 2;
  constexpr int kWriters = 3, kReaders = 2;
  constexpr int kDepth = 16;
  const std::string before = RandomBytes(kHalf, 7);
  for (uint64_t off = 0; off < kHalf; off += 1 << 20) {
    ASSERT_TRUE(WriteData("disk0", off, before.substr(off, 1 << 20)).ok());
  }
  const std::string after = RandomBytes(kHalf, 8);
  // Request sizes cycle through these (4 KiB to 1 MiB).
  const std::vector<uint64_t> sizes = {4096, 65536, 8192, 1 << 20, 12288, 262144};
  std::vector<nbd_handle*> writers, readers;
  for (int i = 0; i < kWriters; ++i) writers.push_back(Connect("disk0"));
  for (int i = 0; i < kReaders; ++i) readers.push_back(Connect("disk0"));
  for (nbd_handle* h : writers) ASSERT_NE(h, nullptr);
  for (nbd_handle* h : readers) ASSERT_NE(h, nullptr);

  struct Read {
    std::string buf;
    uint64_t offset = 0;
    const std::string* want = nullptr;
    std::atomic<int>* bad = nullptr;
  };
  std::atomic<int> failed{0}, bad{0};
  std::atomic<int> writers_left{kWriters};
  auto on_write = [](void* user, int* error) {
    if (*error != 0) ++*static_cast<std::atomic<int>*>(user);
    return 1;  // retire the command
  };
  auto on_read = [](void* user, int* error) {
    auto* r = static_cast<Read*>(user);
    if (*error != 0 || r->buf != r->want->substr(r->offset, r->buf.size())) ++*r->bad;
    return 1;
  };
  auto free_read = [](void* user) { delete static_cast<Read*>(user); };
  std::vector<std::thread> threads;
  for (int w = 0; w < kWriters; ++w) {
    threads.emplace_back([&, w] {
      nbd_handle* h = writers[w];
      // Writer w takes every kWriters-th piece of the second half.
      uint64_t off = 0;
      for (size_t i = 0; off < kHalf; ++i) {
        const uint64_t len = std::min(sizes[i % sizes.size()], kHalf - off);
        if (static_cast<int>(i % kWriters) == w) {
          while (nbd_aio_in_flight(h) >= kDepth) nbd_poll(h, -1);
          if (nbd_aio_pwrite(h, after.data() + off, len, kHalf + off,
                             {on_write, &failed, nullptr}, 0) < 0) {
            ++failed;
          }
        }
        off += len;
      }
      while (nbd_aio_in_flight(h) > 0) nbd_poll(h, -1);
      if (nbd_flush(h, 0) != 0) ++failed;
      --writers_left;
    });
  }
  for (int r = 0; r < kReaders; ++r) {
    threads.emplace_back([&, r] {
      nbd_handle* h = readers[r];
      uint64_t off = static_cast<uint64_t>(r) * (kHalf / 2);
      for (size_t i = 0; writers_left > 0 || i < 64; ++i) {
        const uint64_t len = std::min(sizes[(i + r) % sizes.size()], kHalf - off);
        while (nbd_aio_in_flight(h) >= kDepth) nbd_poll(h, -1);
        auto* read = new Read{std::string(len, '\0'), off, &before, &bad};
        if (nbd_aio_pread(h, read->buf.data(), len, off, {on_read, read, free_read}, 0) < 0) {
          ++failed;
        }
        off = (off + len) % kHalf;
      }
      while (nbd_aio_in_flight(h) > 0) nbd_poll(h, -1);
    });
  }
  for (auto& t : threads) t.join();
  EXPECT_EQ(failed.load(), 0);
  EXPECT_EQ(bad.load(), 0);
  std::string got;
  ASSERT_TRUE(ReadData("disk0", 0, kSize, &got).ok());
  EXPECT_TRUE(got.substr(0, kHalf) == before);
  EXPECT_TRUE(got.substr(kHalf) == after);
}

// The voluntary context switches of the server's thread named `name` (the
// first found), or -1.
long ThreadSwitches(pid_t pid, const std::string& name) {
  const std::string task = "/proc/" + std::to_string(pid) + "/task";
  for (const auto& entry : std::filesystem::directory_iterator(task)) {
    std::ifstream comm(entry.path() / "comm");
    std::string got;
    if (!std::getline(comm, got) || got != name) continue;
    const std::string n = StatusField(entry.path() / "status", "voluntary_ctxt_switches:");
    return n.empty() ? -1 : std::stol(n);
  }
  return -1;
}

// Small reads at depth 1 are answered by the engine thread itself, and the
// connection's writer thread (`nbd-send`) has nothing to do: it must not be
// woken for them. It was, once per reply (one condition variable for all
// waits, broadcast on every change): a futex wake and a context switch per
// request, 1.2x the throughput at depth 32 when gone.
TEST_F(NbdTest, RepliesTheEngineSentDoNotWakeTheWritersThread) {
  const int fd = RawConnect("disk0");
  ASSERT_GE(fd, 0);
  std::string buf(4096, '\0');
  auto read_one = [&](uint64_t cookie) {
    ASSERT_TRUE(SendAll(fd, Request(0, 0, cookie, (cookie % 64) * 4096, 4096)));
    ASSERT_EQ(ReplyError(fd, cookie), 0);
    ASSERT_TRUE(RecvAll(fd, buf.data(), buf.size()));
  };
  read_one(1);  // the connection's threads are up and waiting
  const long before = ThreadSwitches(server_.pid(), "nbd-send");
  ASSERT_GE(before, 0) << "no nbd-send thread";
  constexpr int kReads = 200;
  for (uint64_t cookie = 2; cookie < 2 + kReads; ++cookie) {
    read_one(cookie);
    if (HasFatalFailure()) return;
  }
  const long woken = ThreadSwitches(server_.pid(), "nbd-send") - before;
  close(fd);
  EXPECT_LT(woken, kReads / 10) << "the writer woke " << woken << " times for " << kReads
                                << " replies it did not send";
}

// --engine-poll-us: the engine polls before it sleeps and submitters skip
// its wake-up meanwhile. Depth 1 is where that happens most (a request
// comes while the engine polls, or just after it stopped): every request
// must be answered, with the right bytes, over NBD and gRPC.
class NbdEnginePollTest : public NbdTest {
 protected:
  std::vector<std::string> ServerArgs() const override {
    return {"--nbd-listen", "127.0.0.1:0", "--engine-poll-us", "50"};
  }
};

TEST_F(NbdEnginePollTest, DepthOneRequestsAreAllAnsweredWithTheirBytes) {
  EXPECT_NE(server_.log().find(" engine_poll_us=50 "), std::string::npos) << server_.log();
  nbd_handle* h = Connect("disk0");
  ASSERT_NE(h, nullptr) << nbd_get_error();
  const std::string data = RandomBytes(1 << 20, 83);
  for (uint64_t off = 0; off < data.size(); off += 4096) {
    ASSERT_EQ(nbd_pwrite(h, data.data() + off, 4096, off, 0), 0) << nbd_get_error();
  }
  std::string got(4096, '\0');
  for (uint64_t off = 0; off < data.size(); off += 4096) {
    ASSERT_EQ(nbd_pread(h, got.data(), got.size(), off, 0), 0) << nbd_get_error();
    ASSERT_TRUE(got == data.substr(off, 4096)) << off;
  }
  ASSERT_EQ(nbd_flush(h, 0), 0) << nbd_get_error();
  std::string all;
  ASSERT_TRUE(ReadData("disk0", 0, data.size(), &all).ok());
  EXPECT_TRUE(all == data);
}

}  // namespace
}  // namespace cowblk::testing
