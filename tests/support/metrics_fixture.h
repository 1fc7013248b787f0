// MetricsFixture: a ServerFixture whose cowblkd serves metrics on an
// ephemeral port, and scrapes of it. SetUp() starts the server with
// metrics and no other flags; a test that wants others overrides SetUp()
// and calls StartWithMetrics(args). Header-only, on cowblk_test_server.

#ifndef COWBLK_TESTS_SUPPORT_METRICS_FIXTURE_H_
#define COWBLK_TESTS_SUPPORT_METRICS_FIXTURE_H_

#include <string>
#include <vector>

#include "tests/support/http_get.h"
#include "tests/support/metrics_scrape.h"
#include "tests/support/server_fixture.h"

namespace cowblk::testing {

class MetricsFixture : public ServerFixture {
 protected:
  void SetUp() override { StartWithMetrics(); }

  // StartServer(args) with --metrics-listen on an ephemeral port; sets
  // metrics_ to the address it bound.
  void StartWithMetrics(std::vector<std::string> args = {}) {
    args.insert(args.begin(), {"--metrics-listen", "127.0.0.1:0"});
    StartServer(args);
    metrics_ = server_.MetricsAddress();
    ASSERT_FALSE(metrics_.empty()) << server_.log();
  }

  // GET /metrics, parsed (a test failure if it cannot be fetched or parsed).
  Scrape ScrapeNow() {
    HttpResponse r = HttpGet(metrics_, "/metrics");
    EXPECT_EQ(r.status, 200) << r.error;
    Scrape s;
    EXPECT_TRUE(s.Parse(r.body)) << s.error();
    return s;
  }

  std::string metrics_;  // host:port of the metrics endpoint
};

}  // namespace cowblk::testing

#endif  // COWBLK_TESTS_SUPPORT_METRICS_FIXTURE_H_
