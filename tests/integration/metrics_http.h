// What the metrics tests share: a minimal HTTP/1.0 GET over a socket (the
// "real HTTP client" that scrapes cowblkd and queries Prometheus), a parser
// of the Prometheus text format, and the metrics address cowblkd logs.

#ifndef COWBLK_TESTS_INTEGRATION_METRICS_HTTP_H_
#define COWBLK_TESTS_INTEGRATION_METRICS_HTTP_H_

#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cmath>
#include <cstdlib>
#include <map>
#include <optional>
#include <set>
#include <string>
#include <vector>

namespace cowblk::testing {

struct HttpResponse {
  int status = 0;  // 0: no response (see error)
  std::string body;
  std::string error;
};

// GET http://HOST:PORT/PATH with HTTP/1.0: the server closes the connection
// after the response, so the body is everything up to end of file. `host`
// must be a numeric IPv4 address.
inline HttpResponse HttpGet(const std::string& host_port, const std::string& path) {
  HttpResponse r;
  const size_t colon = host_port.rfind(':');
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_port = htons(static_cast<uint16_t>(std::atoi(host_port.c_str() + colon + 1)));
  if (colon == std::string::npos ||
      inet_pton(AF_INET, host_port.substr(0, colon).c_str(), &addr.sin_addr) != 1) {
    r.error = "bad address " + host_port;
    return r;
  }
  const int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (fd < 0 || connect(fd, reinterpret_cast<sockaddr*>(&addr), sizeof addr) != 0) {
    r.error = "cannot connect to " + host_port;
    if (fd >= 0) close(fd);
    return r;
  }
  const std::string req = "GET " + path + " HTTP/1.0\r\nHost: " + host_port + "\r\n\r\n";
  for (size_t off = 0; off < req.size();) {
    const ssize_t n = write(fd, req.data() + off, req.size() - off);
    if (n <= 0) break;
    off += static_cast<size_t>(n);
  }
  std::string raw;
  char buf[65536];
  ssize_t n;
  while ((n = read(fd, buf, sizeof buf)) > 0) raw.append(buf, static_cast<size_t>(n));
  close(fd);
  const size_t end = raw.find("\r\n\r\n");
  if (raw.compare(0, 5, "HTTP/") != 0 || end == std::string::npos) {
    r.error = "not an HTTP response: " + raw.substr(0, 200);
    return r;
  }
  r.status = std::atoi(raw.c_str() + raw.find(' ') + 1);
  r.body = raw.substr(end + 4);
  return r;
}

inline std::string UrlEncode(const std::string& s) {
  static const char kHex[] = "0123456789ABCDEF";
  std::string out;
  for (unsigned char c : s) {
    if (isalnum(c) || c == '-' || c == '_' || c == '.' || c == '~') {
      out += static_cast<char>(c);
    } else {
      out += '%';
      out += kHex[c >> 4];
      out += kHex[c & 15];
    }
  }
  return out;
}

// One scrape in the Prometheus text format, parsed.
class Scrape {
 public:
  using Labels = std::map<std::string, std::string>;
  struct Sample {
    std::string name;
    Labels labels;
    double value = 0;
  };

  // Returns false (see error()) on a line it cannot parse.
  bool Parse(const std::string& text) {
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

  // The value of the series `name` with exactly `labels`, if exported.
  std::optional<double> Get(const std::string& name, const Labels& labels = {}) const {
    for (const Sample& s : samples_) {
      if (s.name == name && s.labels == labels) return s.value;
    }
    return std::nullopt;
  }
  // The sum over every series of `name` whose labels include `match`, and
  // how many there were.
  double Sum(const std::string& name, const Labels& match = {}, int* count = nullptr) const {
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
  std::set<std::string> Names() const {
    std::set<std::string> names;
    for (const Sample& s : samples_) names.insert(s.name);
    return names;
  }
  const std::vector<Sample>& samples() const { return samples_; }
  const std::string& error() const { return error_; }

 private:
  bool ParseLine(const std::string& line) {
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

  std::vector<Sample> samples_;
  std::string error_;
};

// The metrics address in cowblkd's `event=serving ... metrics=HOST:PORT`
// line, or "" when metrics are off or the line is missing.
inline std::string MetricsAddress(const std::string& log) {
  const size_t serving = log.find("event=serving ");
  if (serving == std::string::npos) return "";
  const size_t at = log.find(" metrics=", serving);
  if (at == std::string::npos) return "";
  const size_t start = at + 9;
  const size_t end = log.find_first_of(" \n", start);
  const std::string value = log.substr(start, end - start);
  return value == "off" ? "" : value;
}

}  // namespace cowblk::testing

#endif  // COWBLK_TESTS_INTEGRATION_METRICS_HTTP_H_
