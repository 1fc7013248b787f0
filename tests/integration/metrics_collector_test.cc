// The metrics collectors in process: the engine's latency histogram buckets,
// EngineCollector following volumes as they open and close and counting
// requests in an engine's inbox, and the gRPC
// server metrics created for every method before any call.

#include <atomic>
#include <cmath>
#include <future>

#include "common/clock.h"
#include "common/version.h"
#include "cowblk/v1/block.grpc.pb.h"
#include "gmock/gmock.h"
#include "server/cow/cow_file.h"
#include "server/engine/engine.h"
#include "server/metrics/build_info.h"
#include "server/metrics/engine_collector.h"
#include "server/metrics/grpc_metrics.h"
#include "tests/support/scratch.h"

namespace cowblk::testing {
namespace {

using engine::LatencyHistogram;
using prometheus::MetricFamily;

const MetricFamily* FindFamily(const std::vector<MetricFamily>& all, const std::string& name) {
  for (const MetricFamily& f : all) {
    if (f.name == name) return &f;
  }
  return nullptr;
}

std::string Label(const prometheus::ClientMetric& m, const std::string& name) {
  for (const auto& l : m.label) {
    if (l.name == name) return l.value;
  }
  return "";
}

int BucketOf(uint64_t ns) {
  LatencyHistogram h;
  h.Record(ns);
  for (int i = 0; i < LatencyHistogram::kBuckets; ++i) {
    if (h.bucket(i) != 0) return i;
  }
  return -1;
}

TEST(LatencyHistogramTest, EachSampleLandsInTheFirstBucketWhoseBoundHoldsIt) {
  EXPECT_EQ(BucketOf(0), 0);
  EXPECT_EQ(BucketOf(1000), 0);  // le 1 us
  EXPECT_EQ(BucketOf(1001), 1);  // le 2 us
  EXPECT_EQ(BucketOf(2000), 1);
  EXPECT_EQ(BucketOf(2001), 2);
  EXPECT_EQ(BucketOf(4096000), 12);  // exactly 4.096 ms
  EXPECT_EQ(BucketOf(4096001), 13);
  const uint64_t last_bound_ns = uint64_t{1000} << (LatencyHistogram::kBounds - 1);
  EXPECT_EQ(BucketOf(last_bound_ns), LatencyHistogram::kBounds - 1);
  EXPECT_EQ(BucketOf(last_bound_ns + 1), LatencyHistogram::kBounds);  // +Inf
  EXPECT_EQ(BucketOf(UINT64_MAX / 2), LatencyHistogram::kBounds);
  for (int i = 0; i < LatencyHistogram::kBounds; ++i) {
    const uint64_t bound_ns = uint64_t{1000} << i;
    EXPECT_DOUBLE_EQ(LatencyHistogram::UpperBoundSeconds(i), static_cast<double>(bound_ns) / 1e9);
    EXPECT_EQ(BucketOf(bound_ns), i);
    EXPECT_EQ(BucketOf(bound_ns + 1), i + 1);
  }
  LatencyHistogram h;
  h.Record(1500);
  h.Record(2500);
  EXPECT_EQ(h.sum_ns(), 4000u);
}

TEST(EngineCollectorTest, VolumesAppearWhenOpenedAndDisappearWhenClosed) {
  TempDir dir;
  WriteFileBytes(dir.File("base.img"), std::string(1 << 20, '\0'));
  auto engine = engine::Engine::Start({});
  ASSERT_TRUE(engine.ok()) << engine.status();
  metrics::EngineCollector collector({engine->get()}, metrics::StoreVolumeName);

  std::vector<MetricFamily> before = collector.Collect();
  const MetricFamily* depth = FindFamily(before, "cowblk_io_queue_depth");
  ASSERT_NE(depth, nullptr);
  EXPECT_TRUE(depth->metric.empty());
  const MetricFamily* inflight = FindFamily(before, "cowblk_uring_inflight");
  ASSERT_NE(inflight, nullptr);
  ASSERT_EQ(inflight->metric.size(), 1u);
  EXPECT_EQ(Label(inflight->metric[0], "engine"), "0");

  auto file = cow::CowFile::Create(dir.File("vm7.cow"), cow::CreateOptions{dir.File("base.img")});
  ASSERT_TRUE(file.ok()) << file.status();
  auto volume = (*engine)->OpenVolume(*std::move(file), {});
  ASSERT_TRUE(volume.ok()) << volume.status();
  std::vector<MetricFamily> open = collector.Collect();
  depth = FindFamily(open, "cowblk_io_queue_depth");
  ASSERT_EQ(depth->metric.size(), 5u);  // one per op
  EXPECT_EQ(Label(depth->metric[0], "volume"), "vm7");
  const MetricFamily* size = FindFamily(open, "cowblk_volume_size_bytes");
  ASSERT_EQ(size->metric.size(), 1u);
  EXPECT_EQ(size->metric[0].gauge.value, 1 << 20);
  const MetricFamily* duration = FindFamily(open, "cowblk_io_duration_seconds");
  ASSERT_EQ(duration->metric.size(), 5u);
  EXPECT_EQ(duration->metric[0].histogram.bucket.size(),
            static_cast<size_t>(LatencyHistogram::kBounds));

  (*engine)->CloseVolume(*volume);
  std::vector<MetricFamily> closed = collector.Collect();
  EXPECT_TRUE(FindFamily(closed, "cowblk_io_queue_depth")->metric.empty());
  EXPECT_TRUE(FindFamily(closed, "cowblk_volume_size_bytes")->metric.empty());
}

// Requests handed to a busy engine thread wait in its inbox: they show in
// cowblk_engine_inbox_depth (not yet in cowblk_io_queue_depth, counted from
// the engine's own submit), and in cowblk_engine_inbox_wait_seconds once
// taken, each with at least the time the thread was kept busy.
TEST(EngineCollectorTest, RequestsABusyEngineHasNotTakenShowInTheInboxGauges) {
  TempDir dir;
  WriteFileBytes(dir.File("base.img"), std::string(1 << 20, '\0'));
  auto engine = engine::Engine::Start({});
  ASSERT_TRUE(engine.ok()) << engine.status();
  metrics::EngineCollector collector({engine->get()}, metrics::StoreVolumeName);
  auto file = cow::CowFile::Create(dir.File("vm7.cow"), cow::CreateOptions{dir.File("base.img")});
  ASSERT_TRUE(file.ok()) << file.status();
  auto volume = (*engine)->OpenVolume(*std::move(file), {});
  ASSERT_TRUE(volume.ok()) << volume.status();

  // The engine thread runs this closure until the test lets it go.
  std::promise<void> entered, release;
  std::shared_future<void> released = release.get_future().share();
  (*engine)->Post([&entered, released] {
    entered.set_value();
    released.wait();
  });
  entered.get_future().wait();
  constexpr int kRequests = 3;
  std::vector<engine::Request> reqs;
  std::promise<void> all_done;
  std::atomic<int> left{kRequests};
  for (int i = 0; i < kRequests; ++i) {
    reqs.push_back(engine::Request::Of(engine::OpType::kFlush, 0, 0, nullptr));
  }
  for (engine::Request& r : reqs) {
    r.done = [&](absl::Status) {
      if (--left == 0) all_done.set_value();
    };
    (*engine)->Submit(*volume, &r);
  }
  const int64_t submitted_ns = MonotonicNs();
  std::vector<MetricFamily> busy = collector.Collect();
  const MetricFamily* depth = FindFamily(busy, "cowblk_engine_inbox_depth");
  ASSERT_NE(depth, nullptr);
  ASSERT_EQ(depth->metric.size(), 1u);
  EXPECT_EQ(Label(depth->metric[0], "engine"), "0");
  EXPECT_EQ(depth->metric[0].gauge.value, kRequests);
  for (const auto& m : FindFamily(busy, "cowblk_io_queue_depth")->metric) {
    EXPECT_EQ(m.gauge.value, 0) << Label(m, "op");
  }
  EXPECT_EQ(FindFamily(busy, "cowblk_engine_inbox_wait_seconds")->metric[0].histogram.sample_count,
            0u);

  const int64_t released_ns = MonotonicNs();
  release.set_value();
  all_done.get_future().wait();
  std::vector<MetricFamily> idle = collector.Collect();
  EXPECT_EQ(FindFamily(idle, "cowblk_engine_inbox_depth")->metric[0].gauge.value, 0);
  const auto& wait = FindFamily(idle, "cowblk_engine_inbox_wait_seconds")->metric[0].histogram;
  EXPECT_EQ(wait.sample_count, static_cast<uint64_t>(kRequests));
  // Each was queued before `submitted_ns` and taken after `released_ns`.
  EXPECT_GE(wait.sample_sum, kRequests * static_cast<double>(released_ns - submitted_ns) / 1e9);
  (*engine)->CloseVolume(*volume);
}

TEST(GrpcServerMetricsTest, EveryMethodAndCodeHasItsSeriesBeforeAnyCall) {
  const auto* service = google::protobuf::DescriptorPool::generated_pool()->FindServiceByName(
      "cowblk.v1.BlockService");
  ASSERT_NE(service, nullptr);
  metrics::GrpcServerMetrics m({service});
  std::vector<MetricFamily> all = m.Collect();
  const MetricFamily* started = FindFamily(all, "grpc_server_started_total");
  ASSERT_NE(started, nullptr);
  ASSERT_EQ(started->metric.size(), static_cast<size_t>(service->method_count()));
  std::map<std::string, std::string> types;
  for (const auto& metric : started->metric) {
    EXPECT_EQ(Label(metric, "grpc_service"), "cowblk.v1.BlockService");
    EXPECT_EQ(metric.counter.value, 0);
    types[Label(metric, "grpc_method")] = Label(metric, "grpc_type");
  }
  EXPECT_EQ(types["Session"], "bidi_stream");
  EXPECT_EQ(types["Read"], "server_stream");
  EXPECT_EQ(types["Write"], "client_stream");
  EXPECT_EQ(types["Flush"], "unary");
  EXPECT_EQ(FindFamily(all, "grpc_server_handled_total")->metric.size(),
            17u * static_cast<size_t>(service->method_count()));
  const MetricFamily* handling = FindFamily(all, "grpc_server_handling_seconds");
  ASSERT_NE(handling, nullptr);
  EXPECT_EQ(handling->type, prometheus::MetricType::Histogram);
}

TEST(BuildInfoTest, NamesTheVersionAndACommit) {
  std::vector<MetricFamily> all = metrics::BuildInfoCollector().Collect();
  ASSERT_EQ(all.size(), 1u);
  ASSERT_EQ(all[0].metric.size(), 1u);
  EXPECT_EQ(all[0].metric[0].gauge.value, 1);
  EXPECT_EQ(Label(all[0].metric[0], "version"), metrics::BuildVersion());
  EXPECT_THAT(std::string(metrics::BuildCommit()),
              ::testing::MatchesRegex("unknown|([0-9A-Za-z._-]+-g)?[0-9a-f]{7,40}(-dirty)?"));
  EXPECT_EQ(std::string(metrics::BuildCommit()), GitCommit());  // what --version says
}

}  // namespace
}  // namespace cowblk::testing
