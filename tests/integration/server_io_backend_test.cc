// cowblkd --io-backend where io_uring is refused for real: the server runs
// under deny_io_uring (tests/support/deny_io_uring.c), a seccomp filter as
// a container runtime's default profile installs. `auto` falls back to the
// worker threads with one warning line and serves; `uring` exits with
// engine_failed; `threads` never makes an io_uring call at all.

#include <sys/stat.h>
#include <unistd.h>

#include <string>
#include <vector>

#include "gtest/gtest.h"
#include "tests/support/command.h"
#include "tests/support/http_get.h"
#include "tests/support/metrics_scrape.h"
#include "tests/support/server_fixture.h"

namespace cowblk::testing {
namespace {

size_t Count(const std::string& text, const std::string& what) {
  size_t n = 0;
  for (size_t at = text.find(what); at != std::string::npos; at = text.find(what, at + 1)) ++n;
  return n;
}

class ServerIoBackendTest : public ServerFixture {
 protected:
  void SetUp() override {}

  // cowblkd with io_uring refused as `how` says (EPERM, ENOSYS, KILL).
  ServerConfig Refused(const std::string& how, std::vector<std::string> args) {
    args.insert(args.end(), {"--metrics-listen", "127.0.0.1:0"});
    return ServerConfig{.args = args, .wrapper = {COWBLK_DENY_IO_URING_BIN, how}};
  }

  // The volume serves: what is written and flushed reads back.
  void ExpectServes() {
    ASSERT_TRUE(Create("v", 1 << 20).ok());
    const std::string data(64 << 10, 'x');
    ASSERT_TRUE(WriteData("v", 4096, data, /*flush=*/true).ok());
    std::string back;
    ASSERT_TRUE(ReadData("v", 4096, data.size(), &back).ok());
    EXPECT_TRUE(back == data);
  }

  std::optional<double> BackendInfo(const std::string& backend) {
    HttpResponse r = HttpGet(server_.MetricsAddress(), "/metrics");
    EXPECT_EQ(r.status, 200) << r.error;
    Scrape s;
    EXPECT_TRUE(s.Parse(r.body)) << s.error();
    return s.Get("cowblk_io_backend_info", {{"backend", backend}});
  }
};

TEST_F(ServerIoBackendTest, AutoFallsBackToThreadsOnceWhenIoUringSetupIsRefusedWithEperm) {
  // Two engines, one warning: the choice is made once per process.
  ASSERT_NO_FATAL_FAILURE(StartServer(Refused("EPERM", {"--engine-threads", "2"})));
  EXPECT_EQ(Count(server_.log(), "event=io_backend_fallback"), 1u) << server_.log();
  EXPECT_NE(server_.log().find("level=warning event=io_backend_fallback backend=threads "
                               "errno=EPERM"),
            std::string::npos)
      << server_.log();
  EXPECT_EQ(server_.ServingField("io_backend"), "threads");
  EXPECT_EQ(BackendInfo("threads"), 1.0);
  EXPECT_EQ(BackendInfo("uring"), std::nullopt);
  ASSERT_NO_FATAL_FAILURE(ExpectServes());
}

TEST_F(ServerIoBackendTest, AutoFallsBackToThreadsWhenTheKernelHasNoIoUring) {
  ASSERT_NO_FATAL_FAILURE(StartServer(Refused("ENOSYS", {})));
  EXPECT_NE(server_.log().find("event=io_backend_fallback backend=threads errno=ENOSYS"),
            std::string::npos)
      << server_.log();
  EXPECT_EQ(server_.ServingField("io_backend"), "threads");
  ASSERT_NO_FATAL_FAILURE(ExpectServes());
}

TEST_F(ServerIoBackendTest, UringFailsWithEngineFailedWhenIoUringIsRefused) {
  ASSERT_FALSE(server_.Start(dir_.path(), Refused("EPERM", {"--io-backend", "uring"})))
      << server_.log();
  EXPECT_EQ(server_.Stop(), 1) << server_.log();
  EXPECT_NE(server_.log().find("event=engine_failed"), std::string::npos) << server_.log();
  EXPECT_EQ(server_.log().find("io_backend_fallback"), std::string::npos) << server_.log();
}

TEST_F(ServerIoBackendTest, ThreadsNeverMakesAnIoUringCall) {
  // KILL: the first io_uring call would end the process with SIGSYS.
  ASSERT_NO_FATAL_FAILURE(
      StartServer(Refused("KILL", {"--io-backend", "threads", "--durability", "deferred"})));
  EXPECT_EQ(server_.log().find("io_backend_fallback"), std::string::npos) << server_.log();
  EXPECT_EQ(server_.ServingField("io_backend"), "threads");
  EXPECT_EQ(BackendInfo("threads"), 1.0);
  ASSERT_NO_FATAL_FAILURE(ExpectServes());
  EXPECT_EQ(StopServer(), 0) << server_.log();
}

// A process limit (RLIMIT_NPROC) that leaves room for a few threads: the
// 64 workers cannot all start. A limit does not bind root, so as root the
// server runs as a user of its own (setpriv), as in grpc_resources_test.cc.
TEST_F(ServerIoBackendTest, AnIoWorkerThatCannotStartIsEngineFailedNotACrash) {
  std::vector<std::string> wrapper = {"prlimit", "--nproc=8"};
  if (geteuid() == 0) {
    const std::vector<std::string> as = AsUserOfItsOwn();
    wrapper.insert(wrapper.end(), as.begin(), as.end());
    ASSERT_EQ(chmod(dir_.path().c_str(), 0777), 0);
  }
  ASSERT_FALSE(server_.Start(
      dir_.path(), ServerConfig{.args = {"--io-backend", "threads", "--io-threads", "64"},
                                .wrapper = wrapper}))
      << server_.log();
  EXPECT_EQ(server_.Stop(), 1) << server_.log();
  EXPECT_NE(server_.log().find("level=error event=engine_failed error=\"starting an I/O worker "
                               "thread: Resource temporarily unavailable\""),
            std::string::npos)
      << server_.log();
}

TEST_F(ServerIoBackendTest, AutoRunsIoUringWhereItIsAllowed) {
  ASSERT_NO_FATAL_FAILURE(StartServer(ServerConfig{.args = {"--metrics-listen", "127.0.0.1:0"}}));
  EXPECT_EQ(server_.log().find("io_backend_fallback"), std::string::npos) << server_.log();
  EXPECT_EQ(server_.ServingField("io_backend"), "uring");
  EXPECT_EQ(BackendInfo("uring"), 1.0);
}

}  // namespace
}  // namespace cowblk::testing
