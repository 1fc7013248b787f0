#include "common/prometheus_text.h"

#include <cstdlib>
#include <utility>

namespace cowblk {
namespace {

bool ParseLine(const std::string& line, PrometheusSample* s) {
  size_t i = line.find_first_of("{ ");
  if (i == std::string::npos || i == 0) return false;
  s->name = line.substr(0, i);
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
      s->labels[key] = value;
      i = j + 1;
      if (i < line.size() && line[i] == ',') ++i;
    }
    if (i >= line.size()) return false;
    ++i;  // '}'
  }
  while (i < line.size() && line[i] == ' ') ++i;
  if (i >= line.size()) return false;
  char* end = nullptr;
  s->value = std::strtod(line.c_str() + i, &end);
  return end != line.c_str() + i;
}

}  // namespace

bool ParsePrometheusText(const std::string& text, std::vector<PrometheusSample>* out,
                         std::string* bad_line) {
  size_t pos = 0;
  while (pos < text.size()) {
    size_t eol = text.find('\n', pos);
    if (eol == std::string::npos) eol = text.size();
    const std::string line = text.substr(pos, eol - pos);
    pos = eol + 1;
    if (line.empty() || line[0] == '#') continue;
    PrometheusSample s;
    if (!ParseLine(line, &s)) {
      if (bad_line != nullptr) *bad_line = line;
      return false;
    }
    out->push_back(std::move(s));
  }
  return true;
}

}  // namespace cowblk
