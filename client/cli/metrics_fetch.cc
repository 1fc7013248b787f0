#include "client/cli/metrics_fetch.h"

#include <netdb.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cerrno>
#include <cstdlib>
#include <cstring>

#include "absl/strings/str_cat.h"

namespace cowblk::cli {
namespace {

constexpr size_t kMaxBody = size_t{64} << 20;

struct Url {
  std::string host, port, path;
};

absl::StatusOr<Url> ParseUrl(std::string s) {
  const std::string scheme = "http://";
  if (s.rfind("https://", 0) == 0) {
    return absl::InvalidArgumentError("--metrics-url: https is not spoken (cowblkd serves http)");
  }
  if (s.rfind(scheme, 0) == 0) s = s.substr(scheme.size());
  Url u;
  const size_t slash = s.find('/');
  u.path = slash == std::string::npos ? "/metrics" : s.substr(slash);
  s = s.substr(0, slash);
  const size_t colon = s.rfind(':');
  if (colon == std::string::npos || colon == 0 || colon + 1 == s.size()) {
    return absl::InvalidArgumentError(
        absl::StrCat("--metrics-url: '", s, "' is not HOST:PORT (e.g. 127.0.0.1:9780)"));
  }
  u.host = s.substr(0, colon);
  u.port = s.substr(colon + 1);
  if (u.host.size() > 2 && u.host.front() == '[' && u.host.back() == ']') {
    u.host = u.host.substr(1, u.host.size() - 2);
  }
  return u;
}

// Waits until `fd` is ready for `events` or the deadline passed.
bool WaitFd(int fd, short events, std::chrono::steady_clock::time_point deadline) {
  for (;;) {
    const auto left = std::chrono::duration_cast<std::chrono::milliseconds>(
        deadline - std::chrono::steady_clock::now());
    if (left.count() <= 0) return false;
    pollfd p{fd, events, 0};
    const int r = poll(&p, 1, static_cast<int>(left.count()));
    if (r > 0) return true;
    if (r < 0 && errno != EINTR) return false;
  }
}

absl::StatusOr<std::string> Get(const Url& u, std::chrono::milliseconds timeout) {
  const std::string where = absl::StrCat(u.host, ":", u.port);
  const auto deadline = std::chrono::steady_clock::now() + timeout;
  addrinfo hints{};
  hints.ai_family = AF_UNSPEC;
  hints.ai_socktype = SOCK_STREAM;
  addrinfo* res = nullptr;
  if (const int e = getaddrinfo(u.host.c_str(), u.port.c_str(), &hints, &res); e != 0) {
    return absl::UnavailableError(absl::StrCat(where, ": ", gai_strerror(e)));
  }
  int fd = -1;
  std::string error = "no address";
  for (addrinfo* a = res; a != nullptr && fd < 0; a = a->ai_next) {
    fd = socket(a->ai_family, a->ai_socktype | SOCK_CLOEXEC | SOCK_NONBLOCK, a->ai_protocol);
    if (fd < 0) continue;
    if (connect(fd, a->ai_addr, a->ai_addrlen) == 0 ||
        (errno == EINPROGRESS && WaitFd(fd, POLLOUT, deadline))) {
      int err = 0;
      socklen_t len = sizeof err;
      getsockopt(fd, SOL_SOCKET, SO_ERROR, &err, &len);
      if (err == 0) break;
      errno = err;
    }
    error = errno == EINPROGRESS ? "timed out" : std::strerror(errno);
    close(fd);
    fd = -1;
  }
  freeaddrinfo(res);
  if (fd < 0) return absl::UnavailableError(absl::StrCat(where, ": ", error));
  const std::string request =
      absl::StrCat("GET ", u.path, " HTTP/1.0\r\nHost: ", where, "\r\n\r\n");
  size_t sent = 0;
  while (sent < request.size()) {
    if (!WaitFd(fd, POLLOUT, deadline)) break;
    const ssize_t n = send(fd, request.data() + sent, request.size() - sent, MSG_NOSIGNAL);
    if (n < 0 && (errno == EINTR || errno == EAGAIN)) continue;
    if (n <= 0) break;
    sent += static_cast<size_t>(n);
  }
  std::string response;
  char buf[65536];
  bool ended = false;
  while (sent == request.size() && response.size() <= kMaxBody && WaitFd(fd, POLLIN, deadline)) {
    const ssize_t n = recv(fd, buf, sizeof buf, 0);
    if (n < 0 && (errno == EINTR || errno == EAGAIN)) continue;
    if (n <= 0) {
      ended = n == 0;
      break;
    }
    response.append(buf, static_cast<size_t>(n));
  }
  close(fd);
  if (!ended) {
    return absl::UnavailableError(absl::StrCat(
        where, ": ", response.size() > kMaxBody ? "the answer is too large" : "no complete answer"));
  }
  // "HTTP/1.x 200 ...".
  const size_t space = response.find(' ');
  const size_t body = response.find("\r\n\r\n");
  if (space == std::string::npos || body == std::string::npos ||
      std::atoi(response.c_str() + space + 1) != 200) {
    return absl::UnavailableError(absl::StrCat(where, u.path, ": ",
                                               response.substr(0, response.find('\r'))));
  }
  return response.substr(body + 4);
}

}  // namespace

absl::StatusOr<std::vector<MetricSample>> FetchMetrics(const std::string& url,
                                                       std::chrono::milliseconds timeout) {
  absl::StatusOr<Url> u = ParseUrl(url);
  if (!u.ok()) return u.status();
  absl::StatusOr<std::string> body = Get(*u, timeout);
  if (!body.ok()) return body.status();
  std::vector<MetricSample> samples;
  if (!ParsePrometheusText(*body, &samples)) {
    return absl::DataLossError(absl::StrCat(url, ": not the Prometheus text format"));
  }
  return samples;
}

}  // namespace cowblk::cli
