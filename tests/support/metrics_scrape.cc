#include "tests/support/metrics_scrape.h"

#include <cstdlib>
#include <utility>

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
  size_t pos = 0;
  while (pos < text.size()) {
    size_t eol = text.find('\n', pos);
    if (eol == std::string::npos) eol = text.size();
    const std::string line = text.substr(pos, eol - pos);
    pos = eol + 1;
    if (line.empty() || line[0] == '#') continue;
    if (!ParseLine(line)) {
      error_ = "cannot parse: " + line;
      return false;
    }
  }
  return true;
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

bool Scrape::ParseLine(const std::string& line) {
  Sample s;
  size_t i = line.find_first_of("{ ");
  if (i == std::string::npos || i == 0) return false;
  s.name = line.substr(0, i);
  if (line[i] == '{') {
    ++i;
    while (i < line.size() && line[i] != '}') {
      const size_t eq = line.find('=', i);
      if (eq == std::string::npos || eq + 1 >= line.size() || line[eq + 1] != '"') return false;
      const std::string key = line.substr(i, eq - i);
      std::string value;
      size_t j = eq + 2;
      for (; j < line.size() && line[j] != '"'; ++j) {
        if (line[j] == '\\' && j + 1 < line.size()) {
          ++j;
          value += line[j] == 'n' ? '\n' : line[j];
        } else {
          value += line[j];
        }
      }
      if (j >= line.size()) return false;
      s.labels[key] = value;
      i = j + 1;
      if (i < line.size() && line[i] == ',') ++i;
    }
    if (i >= line.size()) return false;
    ++i;  // '}'
  }
  while (i < line.size() && line[i] == ' ') ++i;
  if (i >= line.size()) return false;
  char* end = nullptr;
  s.value = std::strtod(line.c_str() + i, &end);
  if (end == line.c_str() + i) return false;
  samples_.push_back(std::move(s));
  return true;
}

}  // namespace cowblk::testing
