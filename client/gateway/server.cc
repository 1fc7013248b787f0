#include "client/gateway/server.h"

#include <poll.h>
#include <sys/eventfd.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cerrno>
#include <exception>

#include "absl/strings/str_cat.h"
#include "common/log.h"

namespace cowblk::gateway {

absl::StatusOr<std::unique_ptr<Server>> Server::Start(int listen_fd, const Exports* exports,
                                                      ServerOptions options) {
  const int wake = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
  if (wake < 0) return absl::ErrnoToStatus(errno, "eventfd");
  std::unique_ptr<Server> s(new Server(listen_fd, wake, exports, std::move(options)));
  try {
    s->acceptor_ = std::thread([p = s.get()] { p->AcceptLoop(); });
  } catch (const std::exception& e) {
    return absl::ResourceExhaustedError(absl::StrCat("cannot start a thread: ", e.what()));
  }
  return s;
}

Server::Server(int listen_fd, int wake_fd, const Exports* exports, ServerOptions options)
    : listen_fd_(listen_fd), wake_fd_(wake_fd), exports_(exports), options_(std::move(options)) {}

Server::~Server() {
  Shutdown();
  close(wake_fd_);
}

void Server::Shutdown() {
  {
    std::lock_guard<std::mutex> lock(mu_);
    if (stop_ && !acceptor_.joinable()) return;
    stop_ = true;
  }
  const uint64_t one = 1;
  (void)!write(wake_fd_, &one, sizeof one);
  if (acceptor_.joinable()) acceptor_.join();
  std::list<std::unique_ptr<Connection>> left;
  {
    std::lock_guard<std::mutex> lock(mu_);
    left.swap(connections_);
  }
  for (auto& c : left) c->StopReading();
  for (auto& c : left) c->Join();
}

void Server::Reap() {
  std::list<std::unique_ptr<Connection>> ended;
  {
    std::lock_guard<std::mutex> lock(mu_);
    for (auto it = connections_.begin(); it != connections_.end();) {
      auto next = std::next(it);
      if ((*it)->finished()) ended.splice(ended.end(), connections_, it);
      it = next;
    }
  }
  for (auto& c : ended) c->Join();
}

void Server::AcceptLoop() {
  while (true) {
    pollfd fds[2] = {{listen_fd_, POLLIN, 0}, {wake_fd_, POLLIN, 0}};
    if (poll(fds, 2, -1) < 0 && errno != EINTR) break;
    if (fds[1].revents != 0) {
      uint64_t n;
      (void)!read(wake_fd_, &n, sizeof n);
      Reap();
      std::lock_guard<std::mutex> lock(mu_);
      if (stop_) break;
    }
    if (fds[0].revents != 0) Accept();
  }
}

void Server::Accept() {
  const int fd = accept4(listen_fd_, nullptr, nullptr, SOCK_CLOEXEC);
  if (fd < 0) {
    // At the descriptor limit the pending client stays queued; a
    // connection ending (wake_fd_) makes room. Wait for that, not spin.
    if (errno == EMFILE || errno == ENFILE) {
      pollfd w{wake_fd_, POLLIN, 0};
      poll(&w, 1, 1000);
    }
    return;
  }
  std::lock_guard<std::mutex> lock(mu_);
  if (static_cast<int>(connections_.size()) >= options_.max_connections) {
    Log(LogLevel::kWarning, "nbd_gateway_refused",
        {{"reason", absl::StrCat(options_.max_connections, " connections are open")}});
    close(fd);
    return;
  }
  ConnectionOptions o = options_.connection;
  o.on_finished = [this] {
    const uint64_t one = 1;
    (void)!write(wake_fd_, &one, sizeof one);
  };
  auto c = std::make_unique<Connection>(fd, exports_, absl::StrCat("client", ++accepted_),
                                        std::move(o));
  if (absl::Status s = c->Start(); !s.ok()) {
    Log(LogLevel::kWarning, "nbd_gateway_refused", {{"reason", std::string(s.message())}});
    return;  // c closes the socket
  }
  connections_.push_back(std::move(c));
}

}  // namespace cowblk::gateway
