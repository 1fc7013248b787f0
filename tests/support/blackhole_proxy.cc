#include "tests/support/blackhole_proxy.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <sys/eventfd.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cerrno>
#include <cstdint>
#include <cstring>

#include "common/nbd_wire.h"  // SendAll

namespace cowblk::testing {
namespace {

sockaddr_in Loopback(int port) {
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_port = htons(static_cast<uint16_t>(port));
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  return addr;
}

int Connect(int port) {
  const int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (fd < 0) return -1;
  const sockaddr_in addr = Loopback(port);
  if (connect(fd, reinterpret_cast<const sockaddr*>(&addr), sizeof addr) != 0) {
    close(fd);
    return -1;
  }
  return fd;
}

void NoDelay(int fd) {
  const int one = 1;
  setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
}

void Signal(int event_fd) {
  const uint64_t one = 1;
  (void)!write(event_fd, &one, sizeof one);
}

}  // namespace

struct BlackholeProxy::Link {
  int client = -1;
  int server = -1;
  int cut_fd = -1;  // eventfd: readable once cut
  bool cut = false;
  std::thread up, down;
  ~Link() {
    for (int fd : {client, server, cut_fd}) {
      if (fd >= 0) close(fd);
    }
  }
};

BlackholeProxy::BlackholeProxy(int upstream_port) : upstream_port_(upstream_port) {
  stop_fd_ = eventfd(0, EFD_CLOEXEC);
  const int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  sockaddr_in addr = Loopback(0);
  socklen_t len = sizeof addr;
  if (stop_fd_ < 0 || fd < 0 || bind(fd, reinterpret_cast<sockaddr*>(&addr), sizeof addr) != 0 ||
      listen(fd, 64) != 0 || getsockname(fd, reinterpret_cast<sockaddr*>(&addr), &len) != 0) {
    error_ = std::strerror(errno);
    if (fd >= 0) close(fd);
    return;
  }
  listen_fd_ = fd;
  port_ = ntohs(addr.sin_port);
  accept_thread_ = std::thread([this] { Accept(); });
}

BlackholeProxy::~BlackholeProxy() {
  if (stop_fd_ >= 0) Signal(stop_fd_);
  if (accept_thread_.joinable()) accept_thread_.join();
  {
    std::lock_guard<std::mutex> lock(mu_);
    for (auto& link : links_) {
      if (link->up.joinable()) link->up.join();
      if (link->down.joinable()) link->down.join();
    }
    links_.clear();
  }
  if (listen_fd_ >= 0) close(listen_fd_);
  if (stop_fd_ >= 0) close(stop_fd_);
}

void BlackholeProxy::Cut() {
  std::lock_guard<std::mutex> lock(mu_);
  for (auto& link : links_) {
    if (link->cut) continue;
    link->cut = true;
    Signal(link->cut_fd);
    link->up.join();
    link->down.join();
  }
}

int BlackholeProxy::connections() const {
  std::lock_guard<std::mutex> lock(mu_);
  return accepted_;
}

void BlackholeProxy::Accept() {
  for (;;) {
    pollfd fds[2] = {{listen_fd_, POLLIN, 0}, {stop_fd_, POLLIN, 0}};
    if (poll(fds, 2, -1) < 0 && errno != EINTR) return;
    if (fds[1].revents != 0) return;
    if (fds[0].revents == 0) continue;
    const int client = accept4(listen_fd_, nullptr, nullptr, SOCK_CLOEXEC);
    if (client < 0) continue;
    auto link = std::make_unique<Link>();
    link->client = client;
    link->server = Connect(upstream_port_);
    link->cut_fd = eventfd(0, EFD_CLOEXEC);
    if (link->server < 0 || link->cut_fd < 0) continue;  // the client sees its connection end
    NoDelay(link->client);
    NoDelay(link->server);
    Link* l = link.get();
    std::lock_guard<std::mutex> lock(mu_);
    l->up = std::thread([this, l] { Forward(l, l->client, l->server); });
    l->down = std::thread([this, l] { Forward(l, l->server, l->client); });
    links_.push_back(std::move(link));
    ++accepted_;
  }
}

void BlackholeProxy::Forward(Link* link, int from, int to) {
  char buf[64 << 10];
  for (;;) {
    pollfd fds[3] = {{from, POLLIN, 0}, {link->cut_fd, POLLIN, 0}, {stop_fd_, POLLIN, 0}};
    if (poll(fds, 3, -1) < 0) {
      if (errno == EINTR) continue;
      return;
    }
    // Cut (or stopping): leave both sockets as they are, open and unread.
    if (fds[1].revents != 0 || fds[2].revents != 0) return;
    const ssize_t n = read(from, buf, sizeof buf);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) {
      // The peer ended (FIN) or failed: pass that on, as the real path would.
      shutdown(to, n == 0 ? SHUT_WR : SHUT_RDWR);
      return;
    }
    if (!nbd::SendAll(to, buf, static_cast<size_t>(n))) {  // no SIGPIPE: MSG_NOSIGNAL
      shutdown(from, SHUT_RDWR);
      return;
    }
  }
}

}  // namespace cowblk::testing
