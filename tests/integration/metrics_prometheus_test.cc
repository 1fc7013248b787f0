// A real Prometheus server (Debian's `prometheus`) on loopback, configured
// with deploy/prometheus/prometheus.yml and its alert rules (only the target
// address and the intervals changed), scrapes a running cowblkd; its query
// API returns the queue-depth and I/O counter series with the values the
// test caused.

#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <signal.h>
#include <sys/socket.h>
#include <unistd.h>

#include <chrono>
#include <iostream>
#include <thread>

#include "gmock/gmock.h"
#include "nlohmann/json.hpp"
#include "tests/support/child_process.h"
#include "tests/support/http_get.h"
#include "tests/support/server_fixture.h"

namespace cowblk::testing {
namespace {

using nlohmann::json;

constexpr uint64_t kMiB = 1 << 20;

// A loopback port nobody listens on right now (Prometheus has no "port 0
// and tell me" mode that reports the port it got).
int FreePort() {
  const int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  socklen_t len = sizeof addr;
  int port = 0;
  if (bind(fd, reinterpret_cast<sockaddr*>(&addr), sizeof addr) == 0 &&
      getsockname(fd, reinterpret_cast<sockaddr*>(&addr), &len) == 0) {
    port = ntohs(addr.sin_port);
  }
  close(fd);
  return port;
}

bool ReplaceOnce(std::string* text, const std::string& from, const std::string& to) {
  const size_t at = text->find(from);
  if (at == std::string::npos) return false;
  text->replace(at, from.size(), to);
  return true;
}

// The prometheus process, its output in a log file: stopped with SIGTERM
// (and waited for) at the end.
class PrometheusProcess {
 public:
  bool Start(const std::vector<std::string>& args, const std::string& log_path) {
    std::vector<std::string> argv = {PROMETHEUS_BIN};
    argv.insert(argv.end(), args.begin(), args.end());
    const int fd = open(log_path.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
    if (fd < 0) return false;
    const bool started = child_.Start(argv, {}, fd, fd);
    close(fd);
    return started;
  }
  bool Exited() { return child_.Exited(); }

 private:
  ChildProcess child_{SIGTERM};
};

class MetricsPrometheusTest : public ServerFixture {
 protected:
  void SetUp() override {
    StartServer({"--metrics-listen", "127.0.0.1:0"});
    metrics_ = server_.MetricsAddress();
    ASSERT_FALSE(metrics_.empty()) << server_.log();
  }

  // Runs an instant query; returns data.result (an array), or null.
  json Query(const std::string& promql) {
    HttpResponse r = HttpGet(prometheus_, "/api/v1/query?query=" + UrlEncode(promql));
    if (r.status != 200) return nullptr;
    json j = json::parse(r.body, nullptr, false);
    if (j.is_discarded() || j.value("status", "") != "success") return nullptr;
    return j["data"]["result"];
  }

  // Polls `check` until it holds or `what` times out after 60 s. Prometheus
  // reports readiness and its scrapes only through its HTTP API, so the
  // waits below ask it repeatedly (every 20 ms); each checks a state it
  // reports, not a duration.
  void WaitUntil(const std::string& what, const std::function<bool()>& check) {
    std::cerr << "waiting for " << what
              << ": polling Prometheus' HTTP API every 20 ms for up to 60 s (it reports "
                 "readiness and scrapes in no other way)\n";
    const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(60);
    while (!check()) {
      ASSERT_FALSE(prom_.Exited()) << "prometheus exited:\n" << ReadFileBytes(log_path_);
      ASSERT_LT(std::chrono::steady_clock::now(), deadline)
          << what << " timed out; prometheus log:\n"
          << ReadFileBytes(log_path_);
      std::this_thread::sleep_for(std::chrono::milliseconds(20));
    }
  }

  std::string metrics_;
  std::string prometheus_;
  std::string log_path_;
  TempDir prom_dir_;
  PrometheusProcess prom_;
};

double Value(const json& sample) { return std::stod(sample["value"][1].get<std::string>()); }

TEST_F(MetricsPrometheusTest, ARealPrometheusScrapesTheQueueDepthAndIoCounterSeries) {
  ASSERT_TRUE(Create("vm1", kMiB).ok());
  for (int i = 0; i < 3; ++i) {
    ASSERT_TRUE(WriteData("vm1", static_cast<uint64_t>(i) * 8192, std::string(4096, 'a' + i)).ok());
  }
  std::string got;
  ASSERT_TRUE(ReadData("vm1", 0, 8192, &got).ok());

  // The shipped configuration, pointed at this cowblkd, scraping every second.
  std::string config =
      ReadFileBytes(std::string(COWBLK_SOURCE_DIR) + "/deploy/prometheus/prometheus.yml");
  ASSERT_TRUE(ReplaceOnce(&config, "\"127.0.0.1:9780\"", "\"" + metrics_ + "\"")) << config;
  ASSERT_TRUE(ReplaceOnce(&config, "scrape_interval: 15s", "scrape_interval: 1s")) << config;
  ASSERT_TRUE(ReplaceOnce(&config, "evaluation_interval: 15s", "evaluation_interval: 1s"));
  WriteFileBytes(prom_dir_.File("prometheus.yml"), config);
  WriteFileBytes(prom_dir_.File("alerts.yml"),
                 ReadFileBytes(std::string(COWBLK_SOURCE_DIR) + "/deploy/prometheus/alerts.yml"));
  const int port = FreePort();
  ASSERT_GT(port, 0);
  prometheus_ = "127.0.0.1:" + std::to_string(port);
  log_path_ = prom_dir_.File("prometheus.log");
  ASSERT_TRUE(prom_.Start(
      {"--config.file=" + prom_dir_.File("prometheus.yml"),
       "--storage.tsdb.path=" + prom_dir_.File("data"), "--web.listen-address=" + prometheus_},
      log_path_));

  WaitUntil("/-/ready", [&] { return HttpGet(prometheus_, "/-/ready").status == 200; });
  WaitUntil("the first scrape of cowblkd", [&] {
    json up = Query("up{job=\"cowblkd\"}");
    return up.is_array() && !up.empty();
  });
  json up = Query("up{job=\"cowblkd\"}");
  ASSERT_EQ(up.size(), 1u);
  EXPECT_EQ(up[0]["metric"]["instance"], metrics_);
  EXPECT_EQ(Value(up[0]), 1) << "the scrape failed:\n" << ReadFileBytes(log_path_);

  json depth = Query("cowblk_io_queue_depth{volume=\"vm1\"}");
  ASSERT_TRUE(depth.is_array());
  std::set<std::string> ops;
  for (const json& s : depth) {
    ops.insert(s["metric"]["op"].get<std::string>());
    EXPECT_EQ(Value(s), 0) << s.dump();
  }
  EXPECT_EQ(ops, (std::set<std::string>{"read", "write", "flush", "trim", "write_zeroes"}));

  json writes = Query("cowblk_io_ops_total{volume=\"vm1\",op=\"write\",code=\"ok\"}");
  ASSERT_EQ(writes.size(), 1u);
  EXPECT_EQ(Value(writes[0]), 3);
  json reads = Query("cowblk_io_ops_total{volume=\"vm1\",op=\"read\",code=\"ok\"}");
  ASSERT_EQ(reads.size(), 1u);
  EXPECT_EQ(Value(reads[0]), 1);
  json bytes = Query("sum by (op) (cowblk_io_bytes_total{volume=\"vm1\"})");
  ASSERT_EQ(bytes.size(), 2u);
  for (const json& s : bytes) EXPECT_EQ(Value(s), s["metric"]["op"] == "write" ? 3 * 4096 : 8192);
  json handled = Query("grpc_server_handled_total{grpc_method=\"CreateVolume\",grpc_code=\"OK\"}");
  ASSERT_EQ(handled.size(), 1u);
  EXPECT_EQ(Value(handled[0]), 1);

  // The alert rules loaded, and none fires against a healthy cowblkd.
  HttpResponse rules = HttpGet(prometheus_, "/api/v1/rules");
  ASSERT_EQ(rules.status, 200);
  for (const char* alert :
       {"CowblkdDown", "CowblkReadStallRateHigh", "CowblkBitmapUpdatesWaitingGrowing",
        "CowblkIoErrors", "CowblkdAbsent", "CowblkVolumeInError", "CowblkRequestLatencyHigh",
        "CowblkGrpcErrorRateHigh", "CowblkDataDirLowSpace"}) {
    EXPECT_THAT(rules.body, ::testing::HasSubstr(std::string("\"") + alert + "\"")) << alert;
  }
  EXPECT_EQ(Query("ALERTS{alertstate=\"firing\"}"), json::array());
}

}  // namespace
}  // namespace cowblk::testing
