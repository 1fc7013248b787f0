#include "tests/support/metrics_scrape.h"

#include <cstdlib>
#include <utility>

#include "common/prometheus_text.h"
#include "tests/support/http_get.h"

namespace cowblk::testing {

bool Scrape::Fetch(const std::string& address) {
  HttpResponse r = HttpGet(address, "/metrics");
  if (r.status != 200) {
    error_ = "GET /metrics: " + std::to_string(r.status) + " " + r.error;
    return false;
  }
  return Parse(r.body);
}

bool Scrape::Parse(const std::string& text) {
  std::vector<PrometheusSample> parsed;
  std::string bad;
  const bool ok = ParsePrometheusText(text, &parsed, &bad);
  for (PrometheusSample& p : parsed) {
    samples_.push_back({std::move(p.name), std::move(p.labels), p.value});
  }
  if (!ok) error_ = "cannot parse: " + bad;
  return ok;
}

std::optional<double> Scrape::Get(const std::string& name, const Labels& labels) const {
  for (const Sample& s : samples_) {
    if (s.name == name && s.labels == labels) return s.value;
  }
  return std::nullopt;
}

double Scrape::Sum(const std::string& name, const Labels& match, int* count) const {
  double sum = 0;
  int n = 0;
  for (const Sample& s : samples_) {
    if (s.name != name) continue;
    bool ok = true;
    for (const auto& [k, v] : match) {
      auto it = s.labels.find(k);
      ok &= it != s.labels.end() && it->second == v;
    }
    if (ok) {
      sum += s.value;
      ++n;
    }
  }
  if (count != nullptr) *count = n;
  return sum;
}

std::set<std::string> Scrape::Names() const {
  std::set<std::string> names;
  for (const Sample& s : samples_) names.insert(s.name);
  return names;
}

}  // namespace cowblk::testing
