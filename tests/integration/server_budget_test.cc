// The byte budgets of the gRPC transport against a real cowblkd (issue 20,
// item 3): a Session holds at most --max-stream-bytes of request buffers in
// flight, however many requests one message asks for; a request larger than
// that is refused; the metrics say what is held.

#include <chrono>
#include <cstdint>
#include <string>

#include "gmock/gmock.h"
#include "tests/integration/proc_stats.h"
#include "tests/support/http_get.h"
#include "tests/support/metrics_scrape.h"
#include "tests/support/server_fixture.h"

namespace cowblk::testing {
namespace {

constexpr uint64_t kMiB = 1 << 20;

v1::SessionRequest Read(uint64_t id, uint64_t offset, uint64_t length) {
  v1::SessionRequest r;
  r.set_id(id);
  r.set_op(v1::OP_READ);
  r.set_offset(offset);
  r.set_length(length);
  return r;
}

class StreamBudgetTest : public ServerFixture {
 protected:
  void SetUp() override {
    ASSERT_NO_FATAL_FAILURE(StartServer({"--max-stream-bytes", std::to_string(64 * kMiB)}));
    ASSERT_TRUE(Create("vm1", 64 * kMiB).ok());
  }
  // The value of a series of the server's metrics (the sum of those with
  // `labels`); -1 when not there.
  double Metric(const std::string& name, const Scrape::Labels& labels = {}) const {
    HttpResponse r = HttpGet(server_.MetricsAddress(), "/metrics");
    Scrape s;
    int count = 0;
    if (r.status != 200 || !s.Parse(r.body)) return -1;
    const double sum = s.Sum(name, labels, &count);
    return count > 0 ? sum : -1;
  }
};

// 24 reads of 32 MiB in one message (768 MiB) whose answers the client does
// not read yet: the stream takes requests only while it holds less than its
// 64 MiB, and the rest of the message waits for room.
TEST_F(StreamBudgetTest, ASessionThatReadsNoAnswersHoldsAtMostItsStreamBytes) {
  ASSERT_TRUE(ResetPeakRss(server_.pid()));
  const uint64_t rss_before = RssBytes(server_.pid());
  grpc::ClientContext ctx;
  ctx.set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(120));
  auto stream = blocks_->Session(&ctx);
  v1::SessionRequest m;
  m.set_volume("vm1");
  for (uint64_t i = 0; i < 24; ++i) *m.add_batch() = Read(i + 1, (i % 2) * 32 * kMiB, 32 * kMiB);
  ASSERT_TRUE(stream->Write(m));
  ASSERT_TRUE(WaitUntil([&] { return Metric("cowblk_bytes_in_flight") == 64.0 * kMiB; }))
      << "in flight: " << Metric("cowblk_bytes_in_flight");
  // The engine read what was taken (into buffers it filled); nothing more
  // is taken (the client reads no answer). Peak memory: the stream's bytes,
  // plus an answer in gRPC's buffers.
  ASSERT_TRUE(WaitUntil([&] {
    return Metric("cowblk_io_ops_total", {{"volume", "vm1"}, {"op", "read"}}) >= 2;
  })) << "reads done: " << Metric("cowblk_io_ops_total", {{"volume", "vm1"}, {"op", "read"}});
  const uint64_t peak = PeakRssBytes(server_.pid());
  EXPECT_LE(peak - std::min(peak, rss_before), 128 * kMiB) << "peak resident growth";
  EXPECT_LE(Metric("cowblk_bytes_in_flight"), 64.0 * kMiB);
  // Once the client reads, every request is answered, in whole.
  v1::SessionResponse resp;
  for (uint64_t n = 0; n < 24; ++n) {
    ASSERT_TRUE(stream->Read(&resp)) << n;
    EXPECT_EQ(resp.code(), 0) << resp.message();
    EXPECT_TRUE(resp.data() == std::string(32 * kMiB, '\0')) << resp.id();
  }
  stream->WritesDone();
  EXPECT_TRUE(stream->Finish().ok());
  EXPECT_EQ(Metric("cowblk_bytes_in_flight"), 0.0);
}

// A request larger than a stream may hold fails alone, RESOURCE_EXHAUSTED,
// naming the limit; the stream goes on.
TEST_F(StreamBudgetTest, ARequestLargerThanTheStreamBytesIsRefused) {
  ASSERT_EQ(StopServer(), 0);
  ASSERT_NO_FATAL_FAILURE(StartServer({"--max-stream-bytes", std::to_string(16 * kMiB)}));
  grpc::ClientContext ctx;
  auto stream = blocks_->Session(&ctx);
  v1::SessionRequest big = Read(1, 0, 32 * kMiB);
  big.set_volume("vm1");
  ASSERT_TRUE(stream->Write(big));
  v1::SessionResponse resp;
  ASSERT_TRUE(stream->Read(&resp));
  EXPECT_EQ(resp.code(), grpc::StatusCode::RESOURCE_EXHAUSTED);
  EXPECT_THAT(resp.message(), ::testing::HasSubstr("--max-stream-bytes"));
  ASSERT_TRUE(stream->Write(Read(2, 0, 16 * kMiB)));
  ASSERT_TRUE(stream->Read(&resp));
  EXPECT_EQ(resp.id(), 2u);
  EXPECT_EQ(resp.code(), 0) << resp.message();
  stream->WritesDone();
  EXPECT_TRUE(stream->Finish().ok());
  EXPECT_EQ(Metric("cowblk_server_bytes_limit"), 1024.0 * kMiB);
}

}  // namespace
}  // namespace cowblk::testing
