// The Prometheus text exposition format (what cowblkd's /metrics serves),
// parsed into samples: `cowblk top` reads it, and so do the tests.
//
// Comments (# HELP, # TYPE) and blank lines are skipped. A sample line is
// NAME[{LABEL="VALUE",...}] VALUE; label values may hold \", \\ and \n
// escapes. Timestamps after the value are ignored.

#ifndef COWBLK_COMMON_PROMETHEUS_TEXT_H_
#define COWBLK_COMMON_PROMETHEUS_TEXT_H_

#include <map>
#include <string>
#include <vector>

namespace cowblk {

struct PrometheusSample {
  std::string name;
  std::map<std::string, std::string> labels;
  double value = 0;
};

// Appends the samples of `text` to `*out`. Returns false at the first line
// that is not a sample or comment, with that line in `*bad_line` (if not
// null); the samples before it are appended.
bool ParsePrometheusText(const std::string& text, std::vector<PrometheusSample>* out,
                         std::string* bad_line = nullptr);

}  // namespace cowblk

#endif  // COWBLK_COMMON_PROMETHEUS_TEXT_H_
