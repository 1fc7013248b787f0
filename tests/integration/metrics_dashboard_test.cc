// deploy/grafana/cowblk.json parses, and every PromQL expression in it (panel
// targets and template variable queries) names only metrics that a running
// cowblkd exports, as found in a scrape of one.

#include <cctype>
#include <set>

#include "gmock/gmock.h"
#include "nlohmann/json.hpp"
#include "tests/support/http_get.h"
#include "tests/support/metrics_scrape.h"
#include "tests/support/server_fixture.h"

namespace cowblk::testing {
namespace {

using nlohmann::json;

bool IsIdentStart(char c) { return isalpha(static_cast<unsigned char>(c)) || c == '_' || c == ':'; }
bool IsIdent(char c) { return IsIdentStart(c) || isdigit(static_cast<unsigned char>(c)); }

// Skips from an opening bracket at `i` past its matching closing one.
size_t SkipGroup(const std::string& e, size_t i, char open, char close) {
  int depth = 0;
  for (; i < e.size(); ++i) {
    if (e[i] == '"' || e[i] == '\'') {
      const char q = e[i];
      for (++i; i < e.size() && e[i] != q; ++i) {
        if (e[i] == '\\') ++i;
      }
    } else if (e[i] == open) {
      ++depth;
    } else if (e[i] == close && --depth == 0) {
      return i + 1;
    }
  }
  return i;
}

// The metric names a PromQL expression selects: identifiers that are not
// functions or aggregations (followed by "("), keywords, label names (in
// {matchers}, by/without/on/ignoring/group_* lists), durations ([5m]),
// strings or numbers. Grafana's label_values(METRIC_EXPR, LABEL) counts as
// its first argument.
std::set<std::string> MetricNames(std::string e) {
  if (e.rfind("label_values(", 0) == 0) {
    e = e.substr(13, e.rfind(',') - 13);
  }
  // Aggregations may come before "by (...)" rather than "(".
  static const std::set<std::string> kKeywords = {
      "and",    "or",     "unless", "bool",         "offset",  "inf",  "nan",
      "Inf",    "NaN",    "sum",    "min",          "max",     "avg",  "group",
      "stddev", "stdvar", "count",  "count_values", "bottomk", "topk", "quantile"};
  static const std::set<std::string> kLabelLists = {"by",       "without",    "on",
                                                    "ignoring", "group_left", "group_right"};
  std::set<std::string> names;
  for (size_t i = 0; i < e.size();) {
    const char c = e[i];
    if (c == '"' || c == '\'' || c == '`') {  // a string
      for (++i; i < e.size() && e[i] != c; ++i) {
        if (e[i] == '\\') ++i;
      }
      ++i;
    } else if (c == '{') {
      i = SkipGroup(e, i, '{', '}');
    } else if (c == '[') {
      i = SkipGroup(e, i, '[', ']');
    } else if (c == '$') {  // a Grafana variable
      for (++i; i < e.size() && (IsIdent(e[i]) || e[i] == '{' || e[i] == '}'); ++i) {
      }
    } else if (isdigit(static_cast<unsigned char>(c)) ||
               (c == '.' && i + 1 < e.size() && isdigit(static_cast<unsigned char>(e[i + 1])))) {
      for (++i; i < e.size() && (isalnum(static_cast<unsigned char>(e[i])) || e[i] == '.'); ++i) {
      }
    } else if (IsIdentStart(c)) {
      size_t j = i;
      while (j < e.size() && IsIdent(e[j])) ++j;
      const std::string word = e.substr(i, j - i);
      size_t k = j;
      while (k < e.size() && isspace(static_cast<unsigned char>(e[k]))) ++k;
      i = j;
      if (kLabelLists.count(word) != 0) {
        if (k < e.size() && e[k] == '(') i = SkipGroup(e, k, '(', ')');
      } else if (kKeywords.count(word) == 0 && (k >= e.size() || e[k] != '(')) {
        names.insert(word);
      }
    } else {
      ++i;
    }
  }
  return names;
}

// Every "expr" of a target and every query of a template variable.
void CollectExpressions(const json& j, const std::string& where,
                        std::vector<std::pair<std::string, std::string>>* out) {
  if (j.is_object()) {
    for (const auto& [key, value] : j.items()) {
      if (key == "expr" && value.is_string()) out->push_back({where, value.get<std::string>()});
      CollectExpressions(value, where + "/" + key, out);
    }
    if (j.contains("type") && j["type"] == "query" && j.contains("query")) {
      const json& q = j["query"];
      const std::string text = q.is_string() ? q.get<std::string>() : q.value("query", "");
      out->push_back({where + "/query", text});
    }
  } else if (j.is_array()) {
    for (size_t i = 0; i < j.size(); ++i) {
      CollectExpressions(j[i], where + "/" + std::to_string(i), out);
    }
  }
}

TEST(DashboardExpressionTest, MetricNamesSkipFunctionsLabelsAndDurations) {
  EXPECT_EQ(
      MetricNames(
          "histogram_quantile(0.99, sum by (le, op) "
          "(rate(cowblk_io_duration_seconds_bucket{volume=~\"$volume\"}[$__rate_interval])))"),
      (std::set<std::string>{"cowblk_io_duration_seconds_bucket"}));
  EXPECT_EQ(MetricNames("sum(rate(a_total[5m])) by (x) / ignoring(y) b > bool 0.1"),
            (std::set<std::string>{"a_total", "b"}));
  EXPECT_EQ(MetricNames("label_values(cowblk_volume_size_bytes{instance=~\"$instance\"}, volume)"),
            (std::set<std::string>{"cowblk_volume_size_bytes"}));
}

class MetricsDashboardTest : public ServerFixture {
  // With the NBD export, so that its families have series.
  void SetUp() override {
    StartServer({"--metrics-listen", "127.0.0.1:0", "--nbd-listen", "127.0.0.1:0"});
  }
};

TEST_F(MetricsDashboardTest, EveryExpressionNamesAMetricTheServerExports) {
  // A volume, so that the per-volume families have series.
  ASSERT_TRUE(Create("vm1", 1 << 20).ok());
  const std::string address = server_.MetricsAddress();
  HttpResponse r = HttpGet(address, "/metrics");
  ASSERT_EQ(r.status, 200) << r.error;
  Scrape scrape;
  ASSERT_TRUE(scrape.Parse(r.body)) << scrape.error();
  const std::set<std::string> exported = scrape.Names();

  const std::string text =
      ReadFileBytes(std::string(COWBLK_SOURCE_DIR) + "/deploy/grafana/cowblk.json");
  json dashboard = json::parse(text, nullptr, false);
  ASSERT_FALSE(dashboard.is_discarded()) << "deploy/grafana/cowblk.json is not JSON";
  std::vector<std::pair<std::string, std::string>> exprs;
  CollectExpressions(dashboard, "", &exprs);
  ASSERT_GE(exprs.size(), 20u);
  std::set<std::string> used;
  for (const auto& [where, expr] : exprs) {
    const std::set<std::string> names = MetricNames(expr);
    EXPECT_FALSE(names.empty()) << where << ": no metric in " << expr;
    for (const std::string& name : names) {
      EXPECT_TRUE(exported.count(name) != 0) << where << ": " << name << " is not exported";
      used.insert(name);
    }
  }
  // What the dashboard must show (issue #6).
  for (const char* m : {"cowblk_io_queue_depth", "cowblk_io_ops_total", "cowblk_io_bytes_total",
                        "cowblk_io_duration_seconds_bucket", "cowblk_read_stalls_total",
                        "cowblk_volume_allocated_bytes"}) {
    EXPECT_TRUE(used.count(m) != 0) << m << " is not on the dashboard";
  }
  // Issue #24: the engine inbox, fdatasync, volume states, the data directory.
  for (const char* m :
       {"cowblk_engine_inbox_depth", "cowblk_engine_inbox_wait_seconds_bucket",
        "cowblk_fdatasync_duration_seconds_bucket", "cowblk_volume_state",
        "cowblk_data_dir_free_bytes", "cowblk_volume_epoch_changes_total",
        "cowblk_bitmap_updates_waiting"}) {
    EXPECT_TRUE(used.count(m) != 0) << m << " is not on the dashboard";
  }
  // Issue #24: requests and bytes in flight by transport, NBD requests, the
  // process.
  for (const char* m :
       {"cowblk_requests_in_flight", "cowblk_request_bytes_in_flight", "cowblk_nbd_requests_total",
        "cowblk_nbd_request_errors_total", "cowblk_nbd_connections",
        "process_resident_memory_bytes", "process_cpu_seconds_total", "process_open_fds"}) {
    EXPECT_TRUE(used.count(m) != 0) << m << " is not on the dashboard";
  }
  // Not the deprecated name (docs/metrics.md): it goes in the next release.
  EXPECT_EQ(used.count("cowblk_bitmap_writes_waiting"), 0u);
}

}  // namespace
}  // namespace cowblk::testing
