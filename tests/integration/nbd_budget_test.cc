// The byte budgets of the NBD export: a connection with 64 MiB of request
// data in progress is not read further until a reply makes room, and all
// connections together hold no more than --max-server-bytes while a client
// that reads its replies is still served.

#include <endian.h>
#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cstring>
#include <string>
#include <thread>
#include <vector>

#include "gtest/gtest.h"
#include "tests/integration/nbd_fixture.h"
#include "tests/integration/proc_stats.h"
#include "tests/support/http_get.h"
#include "tests/support/metrics_scrape.h"
#include "tests/support/scratch.h"

namespace cowblk::testing {
namespace {

// The per-connection budget: at most 64 MiB of request data in progress.
class NbdBudgetTest : public NbdTest {
 protected:
  void SetUp() override {
    fifo_ = dir_.File("hold.fifo");
    ASSERT_EQ(mkfifo(fifo_.c_str(), 0600), 0);
    NbdTest::SetUp();
    metrics_ = server_.MetricsAddress();
    ASSERT_NE(metrics_, "");
  }
  std::vector<std::string> ServerArgs() const override {
    // Ordered: a held bitmap write keeps a write unanswered only there
    // (deferred, the default, answers before its bits are written).
    return {"--nbd-listen", "127.0.0.1:0", "--metrics-listen", "127.0.0.1:0",
            "--debug-hold-bitmap-writes", fifo_, "--durability", "ordered"};
  }
  // Scrapes until the gauge reads `value` (a state the server does not log).
  void WaitForGauge(const std::string& gauge, const Scrape::Labels& labels, double value) {
    const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(60);
    for (;;) {
      HttpResponse r = HttpGet(metrics_, "/metrics");
      Scrape s;
      if (r.status == 200 && s.Parse(r.body) && s.Get(gauge, labels) == value) return;
      ASSERT_LT(std::chrono::steady_clock::now(), deadline) << gauge << " never read " << value;
      std::this_thread::sleep_for(std::chrono::milliseconds(1));
    }
  }
  std::string fifo_, metrics_;
};

TEST_F(NbdBudgetTest, AConnectionWith64MiBInProgressIsNotReadFurther) {
  // A first write whose bitmap write the test holds: reads over it stall.
  const std::string data = RandomBytes(4096, 70);
  std::thread writer([&] { EXPECT_TRUE(WriteData("disk0", 0, data).ok()); });
  server_.WaitForLog("event=io_held");
  // 64 reads of 1 MiB over it (64 MiB: the budget), then one of 4 KiB
  // elsewhere that nothing holds up, all sent at once.
  const int fd = RawConnect("disk0");
  ASSERT_GE(fd, 0);
  std::string burst;
  for (uint64_t cookie = 1; cookie <= 64; ++cookie) burst += Request(0, 0, cookie, 0, 1 << 20);
  burst += Request(0, 0, 65, 4 << 20, 4096);
  ASSERT_TRUE(SendAll(fd, burst));
  WaitForGauge("cowblk_reads_stalled", {{"volume", "disk0"}}, 64);
  // Without the budget the 65th would be answered by now; with it, the
  // server has not read it and answers it only after a stalled read's reply
  // made room. Release the bitmap write and look at the order.
  const int hold = open(fifo_.c_str(), O_WRONLY | O_CLOEXEC);
  ASSERT_GE(hold, 0);
  ASSERT_EQ(write(hold, "r", 1), 1);
  close(hold);
  writer.join();
  std::string want(1 << 20, '\0');
  want.replace(0, data.size(), data);
  std::vector<uint64_t> order;
  std::string buf;
  for (int i = 0; i < 65; ++i) {
    unsigned char r[16];
    ASSERT_TRUE(RecvAll(fd, r, sizeof r));
    uint32_t error;
    uint64_t cookie;
    std::memcpy(&error, r + 4, 4);
    std::memcpy(&cookie, r + 8, 8);
    cookie = be64toh(cookie);
    ASSERT_EQ(be32toh(error), 0u) << "cookie " << cookie;
    order.push_back(cookie);
    buf.assign(cookie == 65 ? 4096 : 1 << 20, '\x55');
    ASSERT_TRUE(RecvAll(fd, buf.data(), buf.size()));
    EXPECT_TRUE(cookie == 65 ? buf == std::string(4096, '\0') : buf == want) << cookie;
  }
  close(fd);
  EXPECT_NE(order.front(), 65u);
  EXPECT_EQ(std::count(order.begin(), order.end(), 65u), 1);
}

// The server-wide budget: 8 connections that ask for 64 reads of 1 MiB each
// and never read a reply (512 MiB asked) hold at most --max-server-bytes.
class NbdServerBudgetTest : public NbdTest {
 protected:
  static constexpr uint64_t kLimit = 128 << 20;
  std::vector<std::string> ServerArgs() const override {
    // Zero-copy reads hold no buffer: copies make the bytes real memory.
    return {"--nbd-listen", "127.0.0.1:0", "--metrics-listen", "127.0.0.1:0",
            "--nbd-zero-copy", "off", "--max-server-bytes", std::to_string(kLimit)};
  }
};

TEST_F(NbdServerBudgetTest, ConnectionsThatNeverReadHoldAtMostTheServerBudget) {
  ASSERT_EQ(Metric("cowblk_server_bytes_limit"), static_cast<double>(kLimit));
  ASSERT_TRUE(ResetPeakRss(server_.pid()));
  const uint64_t rss_before = RssBytes(server_.pid());
  std::vector<int> hogs;
  for (int c = 0; c < 8; ++c) {
    const int fd = RawConnect("disk0");
    ASSERT_GE(fd, 0);
    std::string burst;
    for (uint64_t cookie = 1; cookie <= 64; ++cookie) {
      burst += Request(0, 0, cookie, (cookie % 8) << 20, 1 << 20);
    }
    ASSERT_TRUE(SendAll(fd, burst));
    hogs.push_back(fd);
  }
  // The budget fills up to its line (the limit minus an eighth) and
  // connections wait for it.
  ASSERT_TRUE(WaitUntil([&] {
    return Metric("cowblk_bytes_in_flight") >= static_cast<double>(kLimit - kLimit / 8) &&
           Metric("cowblk_budget_waits_total") > 0;
  })) << "in flight: " << Metric("cowblk_bytes_in_flight");
  EXPECT_LE(Metric("cowblk_bytes_in_flight"), static_cast<double>(kLimit));
  // A client that reads its replies is served meanwhile (with nothing in
  // flight it always gets a request through), and the total stays within
  // the limit.
  const int good = RawConnect("disk0");
  ASSERT_GE(good, 0);
  for (uint64_t cookie = 1; cookie <= 4; ++cookie) {
    ASSERT_TRUE(SendAll(good, Request(0, 0, cookie, 0, 4096)));
    EXPECT_EQ(ReplyError(good, cookie), 0);
    std::string data(4096, '\x55');
    ASSERT_TRUE(RecvAll(good, data.data(), data.size()));
    EXPECT_EQ(data, std::string(4096, '\0'));
  }
  close(good);
  EXPECT_LE(Metric("cowblk_bytes_in_flight"), static_cast<double>(kLimit));
  // Peak memory: the budget, plus the replies in the sockets' buffers.
  const uint64_t peak = PeakRssBytes(server_.pid());
  EXPECT_LE(peak - std::min(peak, rss_before), kLimit + (64 << 20)) << "peak resident growth";
  for (int fd : hogs) close(fd);
  EXPECT_TRUE(WaitUntil([&] { return Metric("cowblk_bytes_in_flight") == 0; }));
}

}  // namespace
}  // namespace cowblk::testing
