// cowblkd's NBD export under resource limits and hostile numbers of peers
// (issue #20, items 1, 6 and 13): a thread that cannot be created refuses
// its connection, not the daemon; at the descriptor limit accepting backs
// off instead of spinning; hundreds of idle and slow peers under a
// descriptor limit leave the daemon serving a well-behaved client, and its
// descriptors and threads return to their baseline once the peers leave.
//
// Limits are set on the running cowblkd from outside, with prlimit (the
// command, or prlimit(2)). A process limit does not bind root: when the
// tests run as root, cowblkd runs as a user of its own (setpriv) for that test.

#include <libnbd.h>
#include <signal.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#include <chrono>
#include <fstream>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include "gtest/gtest.h"
#include "tests/integration/nbd_fixture.h"
#include "tests/integration/proc_stats.h"
#include "tests/support/command.h"
#include "tests/support/scratch.h"

namespace cowblk::testing {
namespace {

class NbdResourcesTest : public NbdTest {
 protected:
  void SetUp() override {}  // each test starts its own server
  // Starts cowblkd with `args` (`wrapper` before it) and creates disk0.
  void Start(const std::vector<std::string>& args,
             const std::vector<std::string>& wrapper = {}) {
    ServerConfig config;
    config.args = {"--nbd-listen", "127.0.0.1:0"};
    config.args.insert(config.args.end(), args.begin(), args.end());
    config.wrapper = wrapper;
    ASSERT_TRUE(server_.Start(dir_.path(), config)) << server_.log();
    volumes_ = v1::VolumeService::NewStub(server_.Channel());
    blocks_ = v1::BlockService::NewStub(server_.Channel());
    nbd_address_ = server_.ServingField("nbd");
    ASSERT_TRUE(Create("disk0", kSize).ok());
  }
  // A well-behaved client: connects, writes, reads back. True if all went
  // well (a refused connection is not an error of the test: false).
  bool ServedWell(uint64_t seed) {
    nbd_handle* h = nbd_create();
    bool ok = nbd_connect_uri(h, Uri("disk0").c_str()) == 0;
    const std::string data = RandomBytes(64 << 10, seed);
    std::string back(data.size(), '\0');
    ok = ok && nbd_pwrite(h, data.data(), data.size(), 1 << 20, 0) == 0 &&
         nbd_pread(h, back.data(), back.size(), 1 << 20, 0) == 0 && back == data;
    nbd_close(h);
    return ok;
  }
  // A socket that does nothing more: just connected (kind 0), in the middle
  // of the handshake (1), or through it, idle (2) or stalled in a request
  // header (3). Sends do not wait for the server. -1 if connect failed.
  int Peer(int kind) {
    const int fd = RawSocket();
    if (fd < 0 || kind == 0) return fd;
    std::string m("\0\0\0\3", 4);
    AppendOption(&m, 1, "disk0");
    if (kind == 1) m.resize(m.size() - 3);
    if (kind == 3) m += Request(0, 0, 1, 0, 4096).substr(0, 10);
    send(fd, m.data(), m.size(), MSG_NOSIGNAL);
    return fd;
  }
  // Sets the soft limit `resource` of cowblkd (prlimit(2)).
  void SetSoftLimit(int resource, rlim_t soft) {
    rlimit now;
    ASSERT_EQ(prlimit(server_.pid(), static_cast<__rlimit_resource>(resource), nullptr, &now),
              0);
    now.rlim_cur = soft;
    ASSERT_EQ(prlimit(server_.pid(), static_cast<__rlimit_resource>(resource), &now, nullptr),
              0);
  }
};

// The reproduction: under a pids limit the accept thread's
// std::system_error went uncaught and std::terminate took gRPC and every
// volume down.
TEST_F(NbdResourcesTest, AThreadThatCannotBeCreatedRefusesItsConnectionNotTheDaemon) {
  std::vector<std::string> as;  // who may set cowblkd's limits
  if (geteuid() == 0) {
    if (RunQuietly({"setpriv", "--version"}) != 0) GTEST_SKIP() << "no setpriv";
    as = AsUserOfItsOwn();  // a process limit binds it alone
    ASSERT_EQ(chmod(dir_.path().c_str(), 0777), 0);
  }
  ASSERT_NO_FATAL_FAILURE(Start({}, as));
  // RLIMIT_NPROC counts every task of cowblkd's user: at 1 no thread can
  // be created.
  const std::string soft = SoftProcessLimit(server_.pid());
  ASSERT_NE(soft, "");
  auto prlimit_nproc = [&](const std::string& n) {
    return SetSoftProcessLimit(as, server_.pid(), n);
  };
  ASSERT_EQ(prlimit_nproc("1"), 0);
  for (int i = 0; i < 5; ++i) {
    const int fd = RawSocket();
    ASSERT_GE(fd, 0);
    EXPECT_TRUE(ClosedByServer(fd));
    close(fd);
  }
  server_.WaitForLog("reason=threads");
  ASSERT_EQ(prlimit_nproc(soft), 0);
  ASSERT_EQ(kill(server_.pid(), 0), 0);
  EXPECT_EQ(Metric("cowblk_nbd_connections_refused_total", {{"reason", "threads"}}), 5);
  EXPECT_TRUE(ServedWell(91));
  std::string got;
  EXPECT_TRUE(ReadData("disk0", 1 << 20, 4096, &got).ok());  // gRPC serves too
}

// At the descriptor limit accept(2) fails with EMFILE while the peers wait
// in the listen queue: polling the queue again at once spun the accepting
// thread at ~92% of a core. It must pause; the count of CPU ticks of that
// thread over a second and a half says whether it did (spinning costs
// about 140).
TEST_F(NbdResourcesTest, AtTheDescriptorLimitAcceptingBacksOffInsteadOfSpinning) {
  ASSERT_NO_FATAL_FAILURE(Start({}));
  const pid_t pid = server_.pid();
  const int baseline = FdCount(pid);
  SetSoftLimit(RLIMIT_NOFILE, baseline + 4);
  std::vector<int> peers;
  for (int i = 0; i < 20; ++i) {
    peers.push_back(RawSocket());
    ASSERT_GE(peers.back(), 0);
  }
  // At the limit: every descriptor it may have is open.
  ASSERT_TRUE(WaitUntil([&] { return FdCount(pid) >= baseline + 4; })) << FdCount(pid);
  const uint64_t before = ThreadCpuTicks(pid, "nbd-accept");
  std::this_thread::sleep_for(std::chrono::milliseconds(1500));  // the span measured
  const uint64_t spent = ThreadCpuTicks(pid, "nbd-accept") - before;
  EXPECT_LT(spent, 20u) << "ticks of the accepting thread at the limit";
  EXPECT_NE(server_.log().find("event=nbd_accept_paused"), std::string::npos) << server_.log();
  for (int fd : peers) close(fd);
  SetSoftLimit(RLIMIT_NOFILE, 20000);
  EXPECT_TRUE(WaitUntil([&] { return FdCount(pid) == baseline; }))
      << FdCount(pid) << "\n" << server_.log();
  EXPECT_TRUE(ServedWell(92));
  EXPECT_GE(Metric("cowblk_nbd_accept_pauses_total"), 1);
}

// Item 13: 400 peers, idle or slow, against a limit of 64 connections and
// under a descriptor limit; the short timeouts let the test end in seconds.
TEST_F(NbdResourcesTest, ManyIdleAndSlowPeersThenBackToTheBaseline) {
  constexpr int kMax = 64, kPeers = 400;
  ASSERT_NO_FATAL_FAILURE(Start({"--nbd-max-connections", std::to_string(kMax),
                                 "--nbd-handshake-timeout-seconds", "2",
                                 "--nbd-idle-timeout-seconds", "2"}));
  const pid_t pid = server_.pid();
  ASSERT_TRUE(ServedWell(93));  // warms up what a connection makes once
  ASSERT_TRUE(WaitUntil([&] { return Metric("cowblk_nbd_connections") <= 0; }));
  // The export's threads (nbd-accept, nbd-recv, nbd-send): gRPC's pool may
  // grow by itself meanwhile.
  const int fds = FdCount(pid), threads = ThreadCount(pid, "nbd-");
  // Room for the limit's connections (a socket, a pipe and the volume's two
  // files each), not for every peer at once.
  SetSoftLimit(RLIMIT_NOFILE, fds + 5 * kMax + 16);
  std::vector<int> peers;
  for (int i = 0; i < kPeers; ++i) {
    peers.push_back(Peer(i % 4));
    ASSERT_GE(peers.back(), 0) << i;
  }
  EXPECT_LE(ThreadCount(pid, "nbd-"), threads + 2 * kMax);
  EXPECT_GT(Metric("cowblk_nbd_connections_refused_total", {{"reason", "limit"}}), 0);
  // The server cuts every one it took (handshake or idle timeout) while
  // they are still there, and a client gets in.
  EXPECT_TRUE(WaitUntil([&] { return Metric("cowblk_nbd_connections") == 0; }));
  EXPECT_TRUE(ServedWell(94));
  for (int fd : peers) close(fd);
  EXPECT_TRUE(WaitUntil([&] {
    // At most: the baseline may count a metrics scrape's socket.
    return FdCount(pid) <= fds && ThreadCount(pid, "nbd-") == threads;
  })) << FdCount(pid) << " descriptors (" << fds << " before), " << ThreadCount(pid, "nbd-")
      << " NBD threads (" << threads << " before)";
  EXPECT_EQ(kill(pid, 0), 0);
  EXPECT_GT(Metric("cowblk_nbd_timeouts_total", {{"phase", "handshake"}}), 0);
  EXPECT_GT(Metric("cowblk_nbd_timeouts_total", {{"phase", "idle"}}), 0);
}

}  // namespace
}  // namespace cowblk::testing
