// Prometheus metrics of a real cowblkd, scraped over HTTP: the gauges while
// requests are held in flight (a read stalled behind a bitmap block write
// that the test holds with --debug-hold-bitmap-writes), the counters after
// they completed, the gRPC server metrics, `promtool check metrics` on a
// scrape taken under load, and the --metrics-listen switch.

#include <fcntl.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <ctime>
#include <condition_variable>
#include <map>
#include <mutex>
#include <thread>

#include "gmock/gmock.h"
#include "tests/integration/proc_stats.h"
#include "tests/support/command.h"
#include "tests/support/hold_fifo.h"
#include "tests/support/http_get.h"
#include "tests/support/metrics_fixture.h"
#include "tests/support/metrics_scrape.h"
#include "tests/support/server_fixture.h"

namespace cowblk::testing {
namespace {

constexpr uint64_t kMiB = 1 << 20;

v1::SessionRequest Req(uint64_t id, v1::Op op, uint64_t offset, uint64_t length,
                       const std::string& data = "") {
  v1::SessionRequest r;
  r.set_id(id);
  r.set_volume("vm1");
  r.set_op(op);
  r.set_offset(offset);
  r.set_length(length);
  r.set_data(data);
  return r;
}

// A Session stream whose answers a thread collects, so the test can send,
// then wait for one particular answer while others are still held.
class SessionClient {
 public:
  explicit SessionClient(v1::BlockService::Stub* stub) : stream_(stub->Session(&ctx_)) {
    reader_ = std::thread([this] {
      v1::SessionResponse resp;
      while (stream_->Read(&resp)) {
        std::lock_guard<std::mutex> lock(mu_);
        answers_[resp.id()] = resp;
        cv_.notify_all();
      }
    });
  }
  ~SessionClient() { Finish(); }

  bool Send(const v1::SessionRequest& r) { return stream_->Write(r); }
  v1::SessionResponse WaitFor(uint64_t id) {
    std::unique_lock<std::mutex> lock(mu_);
    cv_.wait(lock, [&] { return answers_.count(id) != 0; });
    return answers_[id];
  }
  grpc::Status Finish() {
    if (!reader_.joinable()) return status_;
    stream_->WritesDone();
    reader_.join();
    status_ = stream_->Finish();
    return status_;
  }

 private:
  grpc::ClientContext ctx_;
  std::unique_ptr<grpc::ClientReaderWriter<v1::SessionRequest, v1::SessionResponse>> stream_;
  std::thread reader_;
  std::mutex mu_;
  std::condition_variable cv_;
  std::map<uint64_t, v1::SessionResponse> answers_;
  grpc::Status status_;
};

// A cowblkd with metrics on an ephemeral port; HoldTest below also holds
// bitmap block writes until the test releases them.
class MetricsTest : public MetricsFixture {};

class HoldTest : public MetricsTest {
 protected:
  void SetUp() override {
    fifo_ = std::make_unique<HoldFifo>(dir_.File("hold.fifo"));
    ASSERT_TRUE(fifo_->made());
    // Ordered: a held bitmap write keeps a write unanswered only there
    // (deferred, the default, answers before its bits are written).
    StartWithMetrics({"--debug-hold-bitmap-writes", fifo_->path(), "--durability", "ordered"});
  }

  // Waits until cowblkd logged `event` at least `n` times (the harness's
  // log reader wakes it: no polling).
  void WaitForLog(const std::string& event, size_t n) {
    server_.WaitForLog(event, n);
    ASSERT_NE(server_.log().find(event), std::string::npos) << "server exited: " << server_.log();
  }

  // Releases `n` held bitmap block writes.
  void Release(size_t n) { ASSERT_TRUE(fifo_->Release(n)); }

  // Scrapes until `gauge{labels}` reads `value`, for a state the server does
  // not log (updates that joined the waiting list): bounded, and driven by
  // what the server reports, never by a guessed duration.
  void WaitForGauge(const std::string& gauge, const Scrape::Labels& labels, double value) {
    const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(60);
    for (;;) {
      if (ScrapeNow().Get(gauge, labels) == value) return;
      ASSERT_LT(std::chrono::steady_clock::now(), deadline) << gauge << " never read " << value;
      std::this_thread::sleep_for(std::chrono::milliseconds(1));
    }
  }

  std::unique_ptr<HoldFifo> fifo_;
};

using L = Scrape::Labels;

TEST_F(HoldTest, HeldRequestsShowInTheGaugesAndTheCountersMatchOnceTheyComplete) {
  ASSERT_TRUE(Create("vm1", kMiB).ok());
  const std::string data = RandomBytes(4096, 7);
  SessionClient session(blocks_.get());
  // A first write: data, fdatasync, then the bitmap block write, held.
  ASSERT_TRUE(session.Send(Req(1, v1::OP_WRITE, 0, 0, data)));
  WaitForLog("event=io_held", 1);
  // A read of the same sectors stalls behind it. A read elsewhere goes by;
  // the engine takes a stream's requests in order, so once that one is
  // answered the first read is known to be stalled.
  ASSERT_TRUE(session.Send(Req(2, v1::OP_READ, 0, 4096)));
  ASSERT_TRUE(session.Send(Req(3, v1::OP_READ, 512 * 1024, 4096)));
  v1::SessionResponse other = session.WaitFor(3);
  ASSERT_EQ(other.code(), 0) << other.message();
  EXPECT_TRUE(other.data() == std::string(4096, '\0'));

  Scrape held = ScrapeNow();
  EXPECT_EQ(held.Get("cowblk_io_queue_depth", {{"volume", "vm1"}, {"op", "write"}}), 1);
  EXPECT_EQ(held.Get("cowblk_io_queue_depth", {{"volume", "vm1"}, {"op", "read"}}), 1);
  EXPECT_EQ(held.Get("cowblk_io_queue_depth", {{"volume", "vm1"}, {"op", "flush"}}), 0);
  EXPECT_EQ(held.Get("cowblk_reads_stalled", {{"volume", "vm1"}}), 1);
  EXPECT_EQ(held.Get("cowblk_bitmap_writes_pending", {{"volume", "vm1"}}), 1);
  EXPECT_EQ(held.Get("cowblk_bitmap_writes_waiting", {{"volume", "vm1"}}), 0);
  EXPECT_EQ(held.Get("cowblk_read_stalls_total", {{"volume", "vm1"}}), 1);
  EXPECT_EQ(held.Get("cowblk_bitmap_writes_total", {{"volume", "vm1"}}), 1);
  EXPECT_EQ(held.Get("cowblk_io_ops_total", {{"volume", "vm1"}, {"op", "read"}, {"code", "ok"}}),
            1);
  EXPECT_EQ(held.Get("cowblk_io_ops_total", {{"volume", "vm1"}, {"op", "write"}, {"code", "ok"}}),
            0);
  const L session_labels = {{"grpc_service", "cowblk.v1.BlockService"},
                            {"grpc_method", "Session"},
                            {"grpc_type", "bidi_stream"}};
  EXPECT_EQ(held.Get("grpc_server_started_total", session_labels), 1);
  EXPECT_EQ(held.Get("grpc_server_msg_received_total", session_labels), 3);
  EXPECT_EQ(held.Get("grpc_server_msg_sent_total", session_labels), 1);
  EXPECT_EQ(held.Sum("grpc_server_handled_total", session_labels), 0);

  Release(1);
  v1::SessionResponse written = session.WaitFor(1);
  EXPECT_EQ(written.code(), 0) << written.message();
  v1::SessionResponse read = session.WaitFor(2);
  ASSERT_EQ(read.code(), 0) << read.message();
  EXPECT_TRUE(read.data() == data);
  ASSERT_TRUE(session.Finish().ok());

  Scrape after = ScrapeNow();
  for (const char* gauge :
       {"cowblk_io_queue_depth", "cowblk_reads_stalled", "cowblk_bitmap_writes_pending",
        "cowblk_bitmap_writes_waiting", "cowblk_uring_inflight"}) {
    int series = 0;
    EXPECT_EQ(after.Sum(gauge, {}, &series), 0) << gauge;
    EXPECT_GT(series, 0) << gauge;
  }
  const L vm1 = {{"volume", "vm1"}};
  EXPECT_EQ(after.Get("cowblk_io_ops_total", {{"volume", "vm1"}, {"op", "read"}, {"code", "ok"}}),
            2);
  EXPECT_EQ(after.Get("cowblk_io_ops_total", {{"volume", "vm1"}, {"op", "write"}, {"code", "ok"}}),
            1);
  EXPECT_EQ(after.Sum("cowblk_io_ops_total", {{"volume", "vm1"}, {"code", "error"}}), 0);
  EXPECT_EQ(
      after.Get("cowblk_io_bytes_total", {{"volume", "vm1"}, {"op", "read"}, {"source", "cow"}}),
      4096);
  EXPECT_EQ(after.Get("cowblk_io_bytes_total",
                      {{"volume", "vm1"}, {"op", "read"}, {"source", "backing"}}),
            4096);
  EXPECT_EQ(
      after.Get("cowblk_io_bytes_total", {{"volume", "vm1"}, {"op", "write"}, {"source", "cow"}}),
      4096);
  EXPECT_EQ(after.Get("cowblk_bitmap_writes_total", vm1), 1);
  EXPECT_EQ(after.Get("cowblk_bitmap_updates_coalesced_total", vm1), 0);
  EXPECT_EQ(after.Get("cowblk_fsyncs_total", vm1), 1);  // the write's barrier
  EXPECT_EQ(after.Get("cowblk_read_stalls_total", vm1), 1);
  EXPECT_EQ(after.Get("cowblk_io_errors_total", vm1), 0);
  EXPECT_EQ(after.Get("cowblk_volume_size_bytes", vm1), kMiB);
  EXPECT_EQ(after.Get("cowblk_volume_allocated_bytes", vm1), 4096);
  EXPECT_EQ(after.Get("cowblk_read_stall_seconds_count", vm1), 1);
  EXPECT_EQ(after.Get("cowblk_read_stall_seconds_bucket", {{"volume", "vm1"}, {"le", "+Inf"}}), 1);
  EXPECT_EQ(after.Get("cowblk_io_duration_seconds_count", {{"volume", "vm1"}, {"op", "read"}}), 2);
  EXPECT_EQ(after.Get("cowblk_io_duration_seconds_count", {{"volume", "vm1"}, {"op", "write"}}), 1);
  // The stalled read's time in the engine includes its stall.
  const double stall = *after.Get("cowblk_read_stall_seconds_sum", vm1);
  EXPECT_GT(stall, 0);
  EXPECT_GE(*after.Get("cowblk_io_duration_seconds_sum", {{"volume", "vm1"}, {"op", "read"}}),
            stall);
  EXPECT_EQ(after.Get("grpc_server_started_total", session_labels), 1);
  L ok = session_labels;
  ok["grpc_code"] = "OK";
  EXPECT_EQ(after.Get("grpc_server_handled_total", ok), 1);
  EXPECT_EQ(after.Sum("grpc_server_handled_total", session_labels), 1);
  EXPECT_EQ(after.Get("grpc_server_msg_received_total", session_labels), 3);
  EXPECT_EQ(after.Get("grpc_server_msg_sent_total", session_labels), 3);
  EXPECT_EQ(after.Get("grpc_server_handling_seconds_count", session_labels), 1);
}

TEST_F(HoldTest, WritesBehindAHeldBitmapWriteShowAsWaitingUpdates) {
  ASSERT_TRUE(Create("vm1", kMiB).ok());
  SessionClient session(blocks_.get());
  // Four first writes into one bitmap block: one block write goes out (held),
  // the updates that arrive while it is pending wait for it.
  const std::string data(4096, 'x');
  ASSERT_TRUE(session.Send(Req(1, v1::OP_WRITE, 0, 0, data)));
  WaitForLog("event=io_held", 1);
  for (uint64_t id = 2; id <= 4; ++id) {
    ASSERT_TRUE(session.Send(Req(id, v1::OP_WRITE, (id - 1) * 4096, 0, data)));
  }
  // Once their data and barrier are done they wait for the held block write.
  WaitForGauge("cowblk_bitmap_updates_waiting", {{"volume", "vm1"}}, 3);
  Scrape held = ScrapeNow();
  EXPECT_EQ(held.Get("cowblk_io_queue_depth", {{"volume", "vm1"}, {"op", "write"}}), 4);
  EXPECT_EQ(held.Get("cowblk_bitmap_writes_pending", {{"volume", "vm1"}}), 1);
  EXPECT_EQ(held.Get("cowblk_bitmap_updates_waiting", {{"volume", "vm1"}}), 3);
  // The deprecated name (one more release) says the same.
  EXPECT_EQ(held.Get("cowblk_bitmap_writes_waiting", {{"volume", "vm1"}}), 3);

  Release(2);  // the held write, then the one write the three waiters share
  for (uint64_t id = 1; id <= 4; ++id) EXPECT_EQ(session.WaitFor(id).code(), 0) << id;
  ASSERT_TRUE(session.Finish().ok());
  Scrape after = ScrapeNow();
  EXPECT_EQ(after.Sum("cowblk_io_queue_depth", {{"volume", "vm1"}}), 0);
  EXPECT_EQ(after.Get("cowblk_bitmap_updates_waiting", {{"volume", "vm1"}}), 0);
  EXPECT_EQ(after.Get("cowblk_bitmap_writes_waiting", {{"volume", "vm1"}}), 0);
  EXPECT_EQ(after.Get("cowblk_bitmap_writes_total", {{"volume", "vm1"}}), 2);
  EXPECT_EQ(after.Get("cowblk_bitmap_updates_coalesced_total", {{"volume", "vm1"}}), 2);
  EXPECT_EQ(after.Get("cowblk_bitmap_updates_waited_total", {{"volume", "vm1"}}), 3);
  EXPECT_EQ(after.Get("cowblk_io_ops_total", {{"volume", "vm1"}, {"op", "write"}, {"code", "ok"}}),
            4);
  EXPECT_EQ(
      after.Get("cowblk_io_bytes_total", {{"volume", "vm1"}, {"op", "write"}, {"source", "cow"}}),
      4 * 4096);
}

// The process_* metrics every Prometheus client exports say what /proc says
// of cowblkd, and the descriptor limit as it is now (set on the running
// process).
TEST_F(MetricsTest, ProcessMetricsSayWhatProcSaysOfCowblkd) {
  const pid_t pid = server_.pid();
  // Work that costs cowblkd CPU time well above a clock tick (10 ms).
  ASSERT_TRUE(Create("vm1", 32 * kMiB).ok());
  const std::string data = RandomBytes(32 * kMiB, 7);
  std::string got;
  ASSERT_TRUE(WriteData("vm1", 0, data).ok());
  ASSERT_TRUE(ReadData("vm1", 0, data.size(), &got).ok());
  rlimit nofile;
  ASSERT_EQ(prlimit(pid, RLIMIT_NOFILE, nullptr, &nofile), 0);
  nofile.rlim_cur = 4321;
  ASSERT_EQ(prlimit(pid, RLIMIT_NOFILE, &nofile, nullptr), 0);
  const double now = static_cast<double>(time(nullptr));
  Scrape s = ScrapeNow();
  EXPECT_EQ(s.Get("process_max_fds", {}), 4321);
  // The scrape's own connection may come and go meanwhile.
  EXPECT_NEAR(s.Get("process_open_fds", {}).value_or(-1), FdCount(pid), 2);
  const double rss = static_cast<double>(RssBytes(pid));
  EXPECT_NEAR(s.Get("process_resident_memory_bytes", {}).value_or(-1), rss, rss / 4);
  const double vm = static_cast<double>(VirtualBytes(pid));
  EXPECT_NEAR(s.Get("process_virtual_memory_bytes", {}).value_or(-1), vm, vm / 4);
  // Started by this test's fixture: within the last minute.
  const double start = s.Get("process_start_time_seconds", {}).value_or(-1);
  EXPECT_LE(start, now + 1);
  EXPECT_GT(start, now - 60);
  EXPECT_GT(s.Get("process_cpu_seconds_total", {}).value_or(-1), 0);
}

TEST_F(MetricsTest, GrpcServerMetricsCountEveryCallByMethodAndCode) {
  ASSERT_TRUE(Create("vm1", kMiB).ok());
  EXPECT_EQ(Create("vm1", kMiB).error_code(), grpc::StatusCode::ALREADY_EXISTS);
  const std::string data = RandomBytes(3 * kMiB, 3);
  ASSERT_TRUE(Create("vm2", 4 * kMiB).ok());
  ASSERT_TRUE(WriteData("vm2", 0, data).ok());
  std::string got;
  ASSERT_TRUE(ReadData("vm2", 0, 3 * kMiB, &got).ok());  // 1 MiB chunks
  EXPECT_EQ(ReadData("nope", 0, 512, &got).error_code(), grpc::StatusCode::NOT_FOUND);

  Scrape s = ScrapeNow();
  auto labels = [](const char* service, const char* method, const char* type) {
    return L{{"grpc_service", service}, {"grpc_method", method}, {"grpc_type", type}};
  };
  const L create = labels("cowblk.v1.VolumeService", "CreateVolume", "unary");
  EXPECT_EQ(s.Get("grpc_server_started_total", create), 3);
  L with_code = create;
  with_code["grpc_code"] = "OK";
  EXPECT_EQ(s.Get("grpc_server_handled_total", with_code), 2);
  with_code["grpc_code"] = "AlreadyExists";
  EXPECT_EQ(s.Get("grpc_server_handled_total", with_code), 1);
  EXPECT_EQ(s.Get("grpc_server_msg_received_total", create), 3);
  EXPECT_EQ(s.Get("grpc_server_msg_sent_total", create), 2);  // errors carry no message
  EXPECT_EQ(s.Get("grpc_server_handling_seconds_count", create), 3);

  const L write = labels("cowblk.v1.BlockService", "Write", "client_stream");
  EXPECT_EQ(s.Get("grpc_server_msg_received_total", write), 1);
  EXPECT_EQ(s.Get("grpc_server_msg_sent_total", write), 1);
  const L read = labels("cowblk.v1.BlockService", "Read", "server_stream");
  EXPECT_EQ(s.Get("grpc_server_started_total", read), 2);
  EXPECT_EQ(s.Get("grpc_server_msg_sent_total", read), 3);
  with_code = read;
  with_code["grpc_code"] = "NotFound";
  EXPECT_EQ(s.Get("grpc_server_handled_total", with_code), 1);

  // Every method and code exists from the start, at zero.
  L unused = labels("cowblk.v1.VolumeService", "DeleteImage", "unary");
  EXPECT_EQ(s.Get("grpc_server_started_total", unused), 0);
  int codes = 0;
  EXPECT_EQ(s.Sum("grpc_server_handled_total", unused, &codes), 0);
  EXPECT_EQ(codes, 17);
  EXPECT_EQ(
      s.Get("grpc_server_started_total", labels("grpc.health.v1.Health", "Watch", "server_stream")),
      0);
  EXPECT_EQ(s.Sum("cowblk_build_info"), 1);
}

TEST_F(MetricsTest, AScrapeTakenUnderLoadPassesPromtoolCheckMetrics) {
  ASSERT_TRUE(Create("vm1", 8 * kMiB).ok());
  std::atomic<bool> stop{false};
  std::atomic<uint64_t> answered{0};
  std::vector<std::thread> load;
  for (int t = 0; t < 2; ++t) {
    load.emplace_back([&, t] {
      SessionClient session(blocks_.get());
      const std::string data = RandomBytes(4096, static_cast<uint32_t>(t));
      for (uint64_t id = 1; !stop.load(); ++id) {
        const uint64_t offset = (id * 7919 + static_cast<uint64_t>(t) * 4099) % 2048 * 4096;
        session.Send(Req(id, id % 3 == 0 ? v1::OP_WRITE : v1::OP_READ, offset,
                         id % 3 == 0 ? 0 : 4096, id % 3 == 0 ? data : ""));
        if (id > 64) {
          session.WaitFor(id - 64);  // keep 64 in flight
          answered.fetch_add(1);
        }
      }
      EXPECT_TRUE(session.Finish().ok());
    });
  }
  // Under load: both streams are past their first window of requests.
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(60);
  while (answered.load() < 1000 && std::chrono::steady_clock::now() < deadline) {
    std::this_thread::yield();
  }
  HttpResponse r = HttpGet(metrics_, "/metrics");
  stop.store(true);
  for (auto& t : load) t.join();
  ASSERT_GE(answered.load(), 1000u) << "the load never got going";
  ASSERT_EQ(r.status, 200) << r.error;
  Scrape s;
  ASSERT_TRUE(s.Parse(r.body)) << s.error();
  EXPECT_GT(s.Sum("cowblk_io_ops_total", {{"volume", "vm1"}}), 0);

  const std::string path = dir_.File("scrape.txt");
  WriteFileBytes(path, r.body);
  const CommandResult promtool = RunCommand(
      {"sh", "-c", ShellQuote(PROMTOOL_BIN) + " check metrics < " + ShellQuote(path)},
      Stderr::kInOutput);
  EXPECT_EQ(promtool.exit_code, 0) << promtool.output;
  EXPECT_EQ(promtool.output, "");
}

TEST_F(MetricsTest, AMetricsAddressInUseStopsTheServerFromStarting) {
  CowblkdProcess second;
  TempDir other;
  EXPECT_FALSE(second.Start(other.path(), {"--metrics-listen", metrics_}));
  EXPECT_THAT(second.log(), ::testing::HasSubstr("event=listen_failed"));
  EXPECT_THAT(second.log(), ::testing::HasSubstr(metrics_));
}

class MetricsOffTest : public ServerFixture {
  void SetUp() override { StartServer({"--metrics-listen", ""}); }
};

TEST_F(MetricsOffTest, AnEmptyMetricsAddressTurnsMetricsOff) {
  EXPECT_THAT(server_.log(), ::testing::HasSubstr(" metrics=off"));
  ASSERT_TRUE(Create("vm1", kMiB).ok());
  ASSERT_TRUE(WriteData("vm1", 0, std::string(4096, 'x')).ok());
}

}  // namespace
}  // namespace cowblk::testing
