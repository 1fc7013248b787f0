// One scrape of a Prometheus text exposition (cowblkd's /metrics), parsed
// into samples the tests look up by name and labels. Fetch the text with
// HttpGet() (http_get.h); cowblkd's metrics address is
// CowblkdProcess::MetricsAddress() (cowblkd_process.h).

#ifndef COWBLK_TESTS_SUPPORT_METRICS_SCRAPE_H_
#define COWBLK_TESTS_SUPPORT_METRICS_SCRAPE_H_

#include <map>
#include <optional>
#include <set>
#include <string>
#include <vector>

namespace cowblk::testing {

class Scrape {
 public:
  using Labels = std::map<std::string, std::string>;
  struct Sample {
    std::string name;
    Labels labels;
    double value = 0;
  };

  // Adds the samples of `text`, skipping comments (# HELP, # TYPE) and
  // blank lines. Returns false (see error()) on a line it cannot parse.
  bool Parse(const std::string& text);
  // GETs http://`address`/metrics (HttpGet) and parses the answer. Returns
  // false (see error()) if the answer is not a 200 or does not parse.
  bool Fetch(const std::string& address);

  // The value of the series `name` with exactly `labels`, if exported.
  std::optional<double> Get(const std::string& name, const Labels& labels = {}) const;
  // The sum over every series of `name` whose labels include `match`, and
  // how many there were (in `*count`, if not null).
  double Sum(const std::string& name, const Labels& match = {}, int* count = nullptr) const;
  // Every metric name with at least one sample.
  std::set<std::string> Names() const;

  const std::vector<Sample>& samples() const { return samples_; }
  const std::string& error() const { return error_; }

 private:
  std::vector<Sample> samples_;
  std::string error_;
};

}  // namespace cowblk::testing

#endif  // COWBLK_TESTS_SUPPORT_METRICS_SCRAPE_H_
