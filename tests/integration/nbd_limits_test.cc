// The NBD export's bounds on each connection (issue #20, item 6): a
// connection limit; a deadline on the whole handshake, however slowly its
// bytes come; idle and send timeouts in the transmission phase; and a
// connection's descriptors and files released the moment it ends, not at
// the next accept.

#include <libnbd.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <chrono>
#include <string>
#include <thread>
#include <vector>

#include "gtest/gtest.h"
#include "tests/integration/nbd_fixture.h"
#include "tests/integration/proc_stats.h"
#include "tests/support/scratch.h"

namespace cowblk::testing {
namespace {

// True once the server closed `fd`, waiting at most `timeout` for it.
bool ClosedWithin(int fd, std::chrono::milliseconds timeout) {
  pollfd p{fd, POLLIN, 0};
  if (poll(&p, 1, static_cast<int>(timeout.count())) != 1) return false;
  char c;
  return recv(fd, &c, 1, MSG_DONTWAIT) <= 0;
}

// Polls the server's log for `text` (a wait with a deadline: an event that
// a broken server never logs must fail the test, not hang it).
bool Logged(const CowblkdProcess& server, const std::string& text) {
  return WaitUntil([&] { return server.log().find(text) != std::string::npos; });
}

class NbdConnectionLimitTest : public NbdTest {
 protected:
  std::vector<std::string> ServerArgs() const override {
    return {"--nbd-listen", "127.0.0.1:0", "--nbd-max-connections", "3"};
  }
};

TEST_F(NbdConnectionLimitTest, ConnectionsPastTheLimitAreClosedCountedAndLogged) {
  std::vector<int> served;
  for (int i = 0; i < 3; ++i) {
    served.push_back(RawConnect("disk0"));
    ASSERT_GE(served.back(), 0);
  }
  // The fourth is closed at once: no greeting, just the end.
  const int extra = RawSocket();
  ASSERT_GE(extra, 0);
  EXPECT_TRUE(ClosedWithin(extra, std::chrono::seconds(10)));
  close(extra);
  ASSERT_TRUE(Logged(server_, "event=nbd_refused")) << server_.log();
  EXPECT_NE(server_.log().find("reason=limit"), std::string::npos) << server_.log();
  EXPECT_EQ(Metric("cowblk_nbd_connections_refused_total", {{"reason", "limit"}}), 1);
  EXPECT_EQ(Metric("cowblk_nbd_connections"), 3);
  // One leaves: its slot is free again (the server reaps it by itself).
  close(served.back());
  served.pop_back();
  ASSERT_TRUE(WaitUntil([&] { return Metric("cowblk_nbd_connections") == 2; }));
  nbd_handle* h = Connect("disk0");
  ASSERT_NE(h, nullptr) << nbd_get_error();
  const std::string data = RandomBytes(4096, 81);
  ASSERT_EQ(nbd_pwrite(h, data.data(), data.size(), 0, 0), 0) << nbd_get_error();
  std::string back(4096, '\0');
  ASSERT_EQ(nbd_pread(h, back.data(), back.size(), 0, 0), 0) << nbd_get_error();
  EXPECT_EQ(back, data);
  for (int fd : served) close(fd);
}

class NbdTimeoutTest : public NbdTest {
 protected:
  std::vector<std::string> ServerArgs() const override {
    return {"--nbd-listen", "127.0.0.1:0", "--nbd-handshake-timeout-seconds", "1",
            "--nbd-idle-timeout-seconds", "1", "--nbd-send-timeout-seconds", "1"};
  }
};

// The per-read timeout it replaces let a client that sends a byte now and
// then hold its connection (and two threads) forever.
TEST_F(NbdTimeoutTest, AHandshakeDrippingBytesIsCutAtItsDeadline) {
  const int fd = RawSocket();
  ASSERT_GE(fd, 0);
  char greeting[18];
  ASSERT_TRUE(RecvAll(fd, greeting, sizeof greeting));
  std::string drip("\0\0\0\3", 4);  // client flags, then an option of 4000 bytes
  AppendOption(&drip, 1, std::string(4000, 'x'));
  bool closed = false;
  // A byte every 100 ms (the client's pace, not a wait for the server): the
  // option would take 400 s; the deadline is 1 s.
  for (size_t i = 0; i < 300 && !closed; ++i) {
    closed = send(fd, &drip[i], 1, MSG_NOSIGNAL) != 1 ||
             ClosedWithin(fd, std::chrono::milliseconds(100));
  }
  close(fd);
  EXPECT_TRUE(closed) << "still open after 30 s of dripping";
  ASSERT_TRUE(Logged(server_, "reason=\"handshake timeout")) << server_.log();
  EXPECT_EQ(Metric("cowblk_nbd_timeouts_total", {{"phase", "handshake"}}), 1);
}

TEST_F(NbdTimeoutTest, AnIdleConnectionIsClosed) {
  const int fd = RawConnect("disk0");
  ASSERT_GE(fd, 0);
  ASSERT_TRUE(SendAll(fd, Request(0, 0, 1, 0, 4096)));
  ASSERT_EQ(ReplyError(fd, 1), 0);
  char data[4096];
  ASSERT_TRUE(RecvAll(fd, data, sizeof data));
  EXPECT_TRUE(ClosedWithin(fd, std::chrono::seconds(20)));
  close(fd);
  ASSERT_TRUE(Logged(server_, "reason=\"idle timeout")) << server_.log();
  EXPECT_EQ(Metric("cowblk_nbd_timeouts_total", {{"phase", "idle"}}), 1);
}

// Reads answered from the files (spliced, 1 MiB) and copied (128 KiB),
// never taken by the client: each connection is cut after the send timeout.
TEST_F(NbdTimeoutTest, AClientThatStopsReadingIsCutAfterTheSendTimeout) {
  std::vector<int> fds;
  for (uint32_t length : {1u << 20, 128u << 10}) {
    const int fd = RawConnect("disk0");
    ASSERT_GE(fd, 0);
    const int small = 4096;
    setsockopt(fd, SOL_SOCKET, SO_RCVBUF, &small, sizeof small);
    std::string burst;
    for (uint64_t cookie = 1; cookie <= 64; ++cookie) burst += Request(0, 0, cookie, 0, length);
    ASSERT_TRUE(SendAll(fd, burst));
    fds.push_back(fd);
  }
  ASSERT_TRUE(WaitUntil([&] {
    return Metric("cowblk_nbd_timeouts_total", {{"phase", "send"}}) == 2;
  })) << server_.log();
  EXPECT_NE(server_.log().find("reason=\"send timeout"), std::string::npos) << server_.log();
  EXPECT_TRUE(WaitUntil([&] { return Metric("cowblk_nbd_connections") == 0; }));
  for (int fd : fds) close(fd);
}

// Before, a finished connection kept its socket, pipe and its descriptors
// of the COW and backing files until the next client connected: a deleted
// volume's file stayed allocated on disk.
TEST_F(NbdTest, AnEndedConnectionReleasesItsDescriptorsAndFilesAtOnce) {
  const pid_t pid = server_.pid();
  const int baseline = FdCount(pid);
  nbd_handle* h = Connect("disk0");
  ASSERT_NE(h, nullptr) << nbd_get_error();
  const std::string data = RandomBytes(1 << 20, 82);
  ASSERT_EQ(nbd_pwrite(h, data.data(), data.size(), 0, 0), 0) << nbd_get_error();
  std::string back(data.size(), '\0');
  ASSERT_EQ(nbd_pread(h, back.data(), back.size(), 0, 0), 0) << nbd_get_error();
  EXPECT_GT(FdCount(pid), baseline + 1);  // the socket, the pipe, the volume's files
  handles_.clear();
  nbd_close(h);
  EXPECT_TRUE(WaitUntil([&] { return FdCount(pid) == baseline; }))
      << FdCount(pid) << " descriptors, " << baseline << " before";
  grpc::ClientContext ctx;
  v1::DeleteVolumeRequest req;
  req.set_name("disk0");
  v1::DeleteVolumeResponse resp;
  ASSERT_TRUE(volumes_->DeleteVolume(&ctx, req, &resp).ok());
  EXPECT_FALSE(HoldsFile(pid, "disk0"));
}

}  // namespace
}  // namespace cowblk::testing
