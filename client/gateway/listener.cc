#include "client/gateway/listener.h"

#include <arpa/inet.h>
#include <netdb.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>

#include "absl/strings/str_cat.h"

namespace cowblk::gateway {
namespace {

absl::Status Errno(const std::string& what) {
  return absl::ErrnoToStatus(errno, what);
}

bool IsLoopback(const sockaddr* a) {
  if (a->sa_family == AF_INET) {
    return (ntohl(reinterpret_cast<const sockaddr_in*>(a)->sin_addr.s_addr) >> 24) == 127;
  }
  if (a->sa_family == AF_INET6) {
    return IN6_IS_ADDR_LOOPBACK(&reinterpret_cast<const sockaddr_in6*>(a)->sin6_addr);
  }
  return false;
}

// True when something accepts connections on the Unix socket at `path`.
bool SomeoneListens(const sockaddr_un& addr) {
  const int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (fd < 0) return false;
  const bool live = connect(fd, reinterpret_cast<const sockaddr*>(&addr), sizeof addr) == 0;
  close(fd);
  return live;
}

absl::StatusOr<Listener> ListenUnix(const std::string& path) {
  sockaddr_un addr{};
  addr.sun_family = AF_UNIX;
  if (path.empty() || path.size() >= sizeof addr.sun_path) {
    return absl::InvalidArgumentError(
        absl::StrCat("--socket: '", path, "' is empty or longer than ",
                     sizeof addr.sun_path - 1, " bytes"));
  }
  std::memcpy(addr.sun_path, path.c_str(), path.size() + 1);
  struct stat st;
  if (lstat(path.c_str(), &st) == 0) {
    if (!S_ISSOCK(st.st_mode)) {
      return absl::AlreadyExistsError(
          absl::StrCat("--socket: ", path, " exists and is not a socket"));
    }
    if (SomeoneListens(addr)) {
      return absl::AlreadyExistsError(
          absl::StrCat("--socket: ", path, " is in use (another gateway listens there)"));
    }
    unlink(path.c_str());  // a socket left by a gateway that died
  }
  Listener l;
  l.fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (l.fd < 0) return Errno("socket");
  // Owner only from the start: a client could connect between bind and chmod.
  const mode_t old = umask(0177);
  const int rc = bind(l.fd, reinterpret_cast<const sockaddr*>(&addr), sizeof addr);
  umask(old);
  if (rc != 0 || listen(l.fd, 64) != 0) {
    absl::Status s = Errno(absl::StrCat("--socket ", path));
    close(l.fd);
    return s;
  }
  l.socket_path = path;
  return l;
}

absl::StatusOr<Listener> ListenTcp(const std::string& address, bool allow_non_loopback) {
  const size_t colon = address.rfind(':');
  if (colon == std::string::npos || colon == 0) {
    return absl::InvalidArgumentError(
        absl::StrCat("--listen: '", address, "' is not HOST:PORT (a loopback host)"));
  }
  std::string host = address.substr(0, colon);
  const std::string port = address.substr(colon + 1);
  if (host.size() >= 2 && host.front() == '[' && host.back() == ']') {
    host = host.substr(1, host.size() - 2);
  }
  addrinfo hints{};
  hints.ai_family = AF_UNSPEC;
  hints.ai_socktype = SOCK_STREAM;
  hints.ai_flags = AI_NUMERICSERV;
  addrinfo* found = nullptr;
  if (int rc = getaddrinfo(host.c_str(), port.c_str(), &hints, &found); rc != 0) {
    return absl::InvalidArgumentError(absl::StrCat("--listen: ", address, ": ", gai_strerror(rc)));
  }
  if (!allow_non_loopback && !IsLoopback(found->ai_addr)) {
    freeaddrinfo(found);
    return absl::InvalidArgumentError(absl::StrCat(
        "--listen: ", host,
        " is not a loopback address: NBD carries neither authentication nor encryption, so "
        "anyone who reaches it would read and write the volumes with this gateway's "
        "credentials (use a loopback address, a Unix socket, or --allow-non-loopback)"));
  }
  Listener l;
  l.host = host;
  l.fd = socket(found->ai_family, found->ai_socktype | SOCK_CLOEXEC, found->ai_protocol);
  absl::Status s;
  if (l.fd < 0) {
    s = Errno("socket");
  } else {
    const int one = 1;
    setsockopt(l.fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
    if (bind(l.fd, found->ai_addr, found->ai_addrlen) != 0 || listen(l.fd, 64) != 0) {
      s = Errno(absl::StrCat("--listen ", address));
    }
  }
  freeaddrinfo(found);
  if (!s.ok()) {
    if (l.fd >= 0) close(l.fd);
    return s;
  }
  sockaddr_storage bound{};
  socklen_t len = sizeof bound;
  getsockname(l.fd, reinterpret_cast<sockaddr*>(&bound), &len);
  l.port = ntohs(bound.ss_family == AF_INET6
                     ? reinterpret_cast<const sockaddr_in6*>(&bound)->sin6_port
                     : reinterpret_cast<const sockaddr_in*>(&bound)->sin_port);
  return l;
}

}  // namespace

absl::StatusOr<Listener> Listen(const ListenOptions& options) {
  if (!options.tcp.empty()) return ListenTcp(options.tcp, options.allow_non_loopback);
  return ListenUnix(options.socket_path);
}

std::string ExportUri(const Listener& l, const std::string& name) {
  if (!l.socket_path.empty()) return absl::StrCat("nbd+unix:///", name, "?socket=", l.socket_path);
  const bool v6 = l.host.find(':') != std::string::npos;
  return absl::StrCat("nbd://", v6 ? "[" : "", l.host, v6 ? "]" : "", ":", l.port, "/", name);
}

void CloseListener(Listener* l) {
  if (l->fd >= 0) close(l->fd);
  l->fd = -1;
  if (!l->socket_path.empty()) unlink(l->socket_path.c_str());
  l->socket_path.clear();
}

}  // namespace cowblk::gateway
