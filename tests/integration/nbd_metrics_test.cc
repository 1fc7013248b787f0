// The in-flight and NBD request metrics of a real cowblkd: requests held in
// flight (their bitmap block writes held with --debug-hold-bitmap-writes)
// show in cowblk_requests_in_flight and cowblk_request_bytes_in_flight under
// their transport, and their bytes sum to cowblk_bytes_in_flight; once
// answered, the gauges are back at zero and cowblk_nbd_requests_total and
// cowblk_nbd_request_errors_total count each command and its errors.

#include <thread>

#include "common/nbd_wire.h"
#include "gtest/gtest.h"
#include "tests/integration/nbd_fixture.h"
#include "tests/integration/proc_stats.h"
#include "tests/support/hold_fifo.h"
#include "tests/support/metrics_scrape.h"
#include "tests/support/scratch.h"

namespace cowblk::testing {
namespace {

using L = Scrape::Labels;
using nbd::kCmdFlush;
using nbd::kCmdRead;
using nbd::kCmdWrite;

class NbdMetricsTest : public NbdTest {
 protected:
  void SetUp() override {
    fifo_ = std::make_unique<HoldFifo>(dir_.File("hold.fifo"));
    ASSERT_TRUE(fifo_->made());
    NbdTest::SetUp();
  }
  std::vector<std::string> ServerArgs() const override {
    // Ordered: a held bitmap write keeps a write unanswered only there
    // (deferred, the default, answers before its bits are written).
    return {"--nbd-listen", "127.0.0.1:0", "--debug-hold-bitmap-writes", fifo_->path(),
            "--durability", "ordered"};
  }
  Scrape ScrapeNow() const {
    Scrape s;
    EXPECT_TRUE(s.Fetch(server_.MetricsAddress())) << s.error();
    return s;
  }
  // Sends one request (with `payload` for a write) and returns its reply's
  // error.
  int Ask(int fd, uint16_t type, uint64_t cookie, uint64_t offset, uint32_t length,
          const std::string& payload = "") {
    if (!SendAll(fd, Request(type, 0, cookie, offset, length) + payload)) return -1;
    return ReplyError(fd, cookie);
  }

  std::unique_ptr<HoldFifo> fifo_;
};

TEST_F(NbdMetricsTest, RequestsInFlightShowByTransportAndNbdRequestsByCommand) {
  const int fd = RawConnect("disk0");
  ASSERT_GE(fd, 0);
  // The server counts the connection once its side of the handshake has
  // ended, which may be after the client's (0 once under TSan).
  EXPECT_TRUE(WaitUntil([&] { return Metric("cowblk_nbd_connections") == 1; }))
      << Metric("cowblk_nbd_connections");
  EXPECT_EQ(Metric("cowblk_nbd_connections_total"), 1);

  // A first write over NBD (4 KiB), held behind its bitmap block write,
  // and one over gRPC's Write call (8 KiB, in the same bitmap block): it
  // waits for the held one.
  const std::string nbd_data = RandomBytes(4096, 1);
  ASSERT_TRUE(SendAll(fd, Request(kCmdWrite, 0, 7, 0, 4096) + nbd_data));
  server_.WaitForLog("event=io_held", 1);
  std::thread grpc_writer(
      [&] { EXPECT_TRUE(WriteData("disk0", 64 << 10, RandomBytes(8192, 2)).ok()); });
  ASSERT_TRUE(WaitUntil(
      [&] { return Metric("cowblk_bitmap_writes_waiting", {{"volume", "disk0"}}) == 1; }));

  Scrape held = ScrapeNow();
  EXPECT_EQ(held.Get("cowblk_requests_in_flight", {{"transport", "nbd"}}), 1);
  EXPECT_EQ(held.Get("cowblk_request_bytes_in_flight", {{"transport", "nbd"}}), 4096);
  EXPECT_EQ(held.Get("cowblk_requests_in_flight", {{"transport", "write"}}), 1);
  EXPECT_EQ(held.Get("cowblk_request_bytes_in_flight", {{"transport", "write"}}), 8192);
  int transports = 0;
  EXPECT_EQ(held.Sum("cowblk_requests_in_flight", {}, &transports), 2);
  EXPECT_EQ(transports, 6);  // session, read, write, flush, nbd, other: all there, at zero
  EXPECT_EQ(held.Sum("cowblk_request_bytes_in_flight"), held.Get("cowblk_bytes_in_flight"));
  EXPECT_EQ(held.Sum("cowblk_nbd_requests_total"), 0);  // none answered yet

  ASSERT_TRUE(fifo_->Release(2));
  EXPECT_EQ(ReplyError(fd, 7), 0);
  grpc_writer.join();
  // A rewrite, a read, a read past the end (an error), a command the export
  // does not serve (an error), a flush.
  EXPECT_EQ(Ask(fd, kCmdWrite, 8, 0, 4096, nbd_data), 0);
  EXPECT_EQ(Ask(fd, kCmdRead, 9, 0, 4096), 0);
  std::string back(4096, '\0');
  ASSERT_TRUE(RecvAll(fd, back.data(), back.size()));
  EXPECT_EQ(back, nbd_data);
  EXPECT_NE(Ask(fd, kCmdRead, 10, kSize, 4096), 0);
  EXPECT_NE(Ask(fd, 42, 11, 0, 0), 0);
  EXPECT_EQ(Ask(fd, kCmdFlush, 12, 0, 0), 0);

  // Gauges drop once each answer is sent: after its reply arrived, soon
  // (the flush, the last answer, carries no bytes: wait for the count too).
  ASSERT_TRUE(WaitUntil([&] {
    return Metric("cowblk_bytes_in_flight") == 0 &&
           ScrapeNow().Sum("cowblk_requests_in_flight") == 0;
  }));
  Scrape after = ScrapeNow();
  EXPECT_EQ(after.Sum("cowblk_requests_in_flight"), 0);
  EXPECT_EQ(after.Sum("cowblk_request_bytes_in_flight"), 0);
  const auto requests = [&](const char* c) {
    return after.Get("cowblk_nbd_requests_total", {{"command", c}});
  };
  const auto errors = [&](const char* c) {
    return after.Get("cowblk_nbd_request_errors_total", {{"command", c}});
  };
  EXPECT_EQ(requests("write"), 2);
  EXPECT_EQ(errors("write"), 0);
  EXPECT_EQ(requests("read"), 2);
  EXPECT_EQ(errors("read"), 1);
  EXPECT_EQ(requests("other"), 1);
  EXPECT_EQ(errors("other"), 1);
  EXPECT_EQ(requests("flush"), 1);
  EXPECT_EQ(requests("trim"), 0);
  EXPECT_EQ(requests("write_zeroes"), 0);
  close(fd);
}

}  // namespace
}  // namespace cowblk::testing
