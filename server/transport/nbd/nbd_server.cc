#include "server/transport/nbd/nbd_server.h"

#include <arpa/inet.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <pthread.h>
#include <sys/eventfd.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>

#include "absl/strings/str_cat.h"
#include "common/log.h"
#include "server/transport/nbd/connection.h"

namespace cowblk::nbd {
namespace {

std::string PeerName(const sockaddr_storage& addr) {
  char host[INET6_ADDRSTRLEN] = "?";
  int port = 0;
  if (addr.ss_family == AF_INET) {
    const auto* a = reinterpret_cast<const sockaddr_in*>(&addr);
    inet_ntop(AF_INET, &a->sin_addr, host, sizeof host);
    port = ntohs(a->sin_port);
  } else if (addr.ss_family == AF_INET6) {
    const auto* a = reinterpret_cast<const sockaddr_in6*>(&addr);
    inet_ntop(AF_INET6, &a->sin6_addr, host, sizeof host);
    port = ntohs(a->sin6_port);
    return absl::StrCat("[", host, "]:", port);
  }
  return absl::StrCat(host, ":", port);
}

}  // namespace

absl::StatusOr<std::unique_ptr<NbdServer>> NbdServer::Start(const NbdServerOptions& options,
                                                            store::Store* store) {
  const size_t colon = options.listen.rfind(':');
  if (colon == std::string::npos) {
    return absl::InvalidArgumentError(
        absl::StrCat("nbd-listen: ", options.listen, " is not HOST:PORT"));
  }
  std::string host = options.listen.substr(0, colon);
  const std::string port = options.listen.substr(colon + 1);
  if (host.size() >= 2 && host.front() == '[' && host.back() == ']') {
    host = host.substr(1, host.size() - 2);
  }
  addrinfo hints{};
  hints.ai_family = AF_UNSPEC;
  hints.ai_socktype = SOCK_STREAM;
  hints.ai_flags = AI_PASSIVE | AI_NUMERICSERV;
  addrinfo* found = nullptr;
  if (int rc = getaddrinfo(host.empty() ? nullptr : host.c_str(), port.c_str(), &hints, &found);
      rc != 0) {
    return absl::InvalidArgumentError(
        absl::StrCat("nbd-listen: ", options.listen, ": ", gai_strerror(rc)));
  }
  int fd = -1;
  std::string error;
  for (addrinfo* a = found; a != nullptr && fd < 0; a = a->ai_next) {
    fd = socket(a->ai_family, a->ai_socktype | SOCK_CLOEXEC, a->ai_protocol);
    if (fd < 0) continue;
    const int one = 1;
    setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
    if (bind(fd, a->ai_addr, a->ai_addrlen) != 0 || listen(fd, 128) != 0) {
      error = std::strerror(errno);
      close(fd);
      fd = -1;
    }
  }
  freeaddrinfo(found);
  if (fd < 0) {
    return absl::UnavailableError(absl::StrCat("nbd-listen: cannot listen on ", options.listen,
                                               error.empty() ? "" : ": ", error));
  }
  sockaddr_storage bound{};
  socklen_t len = sizeof bound;
  getsockname(fd, reinterpret_cast<sockaddr*>(&bound), &len);
  const int wake = eventfd(0, EFD_CLOEXEC);
  if (wake < 0) {
    close(fd);
    return absl::InternalError(absl::StrCat("eventfd: ", std::strerror(errno)));
  }
  const uint16_t bound_port = ntohs(bound.ss_family == AF_INET6
                                        ? reinterpret_cast<const sockaddr_in6*>(&bound)->sin6_port
                                        : reinterpret_cast<const sockaddr_in*>(&bound)->sin_port);
  std::unique_ptr<NbdServer> server(
      new NbdServer(options, store, fd, wake, PeerName(bound), bound_port));
  server->acceptor_ = std::thread([s = server.get()] { s->AcceptLoop(); });
  pthread_setname_np(server->acceptor_.native_handle(), "nbd-accept");
  return server;
}

NbdServer::NbdServer(const NbdServerOptions& options, store::Store* store, int listen_fd,
                     int wake_fd,
                     std::string address, uint16_t port)
    : options_(options),
      store_(store),
      listen_fd_(listen_fd),
      wake_fd_(wake_fd),
      address_(std::move(address)),
      port_(port) {}

NbdServer::~NbdServer() {
  Shutdown(std::chrono::steady_clock::now());
  close(listen_fd_);
  close(wake_fd_);
}

void NbdServer::AcceptLoop() {
  while (true) {
    pollfd fds[2] = {{listen_fd_, POLLIN, 0}, {wake_fd_, POLLIN, 0}};
    if (poll(fds, 2, -1) < 0) {
      if (errno == EINTR) continue;
      Log(LogLevel::kError, "nbd_accept_failed", {{"error", std::strerror(errno)}});
      return;
    }
    if (fds[1].revents != 0) return;
    sockaddr_storage peer{};
    socklen_t len = sizeof peer;
    const int fd = accept4(listen_fd_, reinterpret_cast<sockaddr*>(&peer), &len, SOCK_CLOEXEC);
    if (fd < 0) continue;  // the client went away, or out of descriptors for now
    const int one = 1;
    setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    setsockopt(fd, SOL_SOCKET, SO_KEEPALIVE, &one, sizeof one);
    const std::string name = PeerName(peer);
    Log(LogLevel::kInfo, "nbd_connected", {{"peer", name}});
    core::PipelineOptions pipeline;
    pipeline.transport = "nbd";
    pipeline.peer = name;
    pipeline.max_in_flight = options_.max_in_flight;
    // --engine-poll-us polls after NBD requests only: through gRPC it cost
    // more than it gained (gRPC's threads need the core the engine spins
    // on; bench/RESULTS.md, "Engine polling").
    pipeline.poll_after = true;
    pipeline.zero_copy_min_bytes = options_.zero_copy ? kZeroCopyMinBytes : 0;
    pipeline.inline_writes = options_.inline_writes;
    auto conn = std::make_shared<Connection>(fd, store_, std::move(pipeline));
    std::lock_guard<std::mutex> lock(mu_);
    ReapLocked();
    conn->Start();
    connections_.push_back(std::move(conn));
  }
}

void NbdServer::ReapLocked() {
  for (auto it = connections_.begin(); it != connections_.end();) {
    if ((*it)->finished()) {
      (*it)->Join();
      it = connections_.erase(it);
    } else {
      ++it;
    }
  }
}

void NbdServer::Shutdown(std::chrono::steady_clock::time_point deadline) {
  {
    std::lock_guard<std::mutex> lock(mu_);
    if (shut_down_) return;
    shut_down_ = true;
  }
  const uint64_t one = 1;
  if (write(wake_fd_, &one, sizeof one) != sizeof one) {
    // An eventfd write fails only on overflow: the loop is already woken.
  }
  acceptor_.join();
  std::list<std::shared_ptr<Connection>> connections;
  {
    std::lock_guard<std::mutex> lock(mu_);
    connections.swap(connections_);
  }
  for (auto& c : connections) c->StopReading();
  for (auto& c : connections) {
    if (!c->WaitFinished(deadline)) {
      c->Cut();  // a client that does not take its replies
      c->WaitFinished();
    }
    c->Join();
  }
}

}  // namespace cowblk::nbd
