#include "server/transport/nbd/nbd_server.h"

#include <arpa/inet.h>
#include <malloc.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <pthread.h>
#include <sys/eventfd.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <exception>
#include <new>

#include "absl/strings/str_cat.h"
#include "common/log.h"
#include "server/transport/nbd/connection.h"

namespace cowblk::nbd {
namespace {

using Clock = std::chrono::steady_clock;

// Accepting pauses this long at the descriptor limit, doubling while it
// lasts, unless a connection ends first (which gives a descriptor back).
constexpr auto kMinAcceptPause = std::chrono::milliseconds(10);
constexpr auto kMaxAcceptPause = std::chrono::seconds(1);
// malloc_trim walks every arena: not more often than this.
constexpr auto kTrimInterval = std::chrono::seconds(1);
constexpr auto kRefusalLogInterval = std::chrono::seconds(1);

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
  // As --listen: getaddrinfo would take no host as every interface, and an
  // unauthenticated export must never listen there by accident.
  if (host.empty()) {
    return absl::InvalidArgumentError(absl::StrCat(
        "nbd-listen: ", options.listen,
        " names no host (0.0.0.0:PORT or [::]:PORT listen on every interface)"));
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
  const int reap = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
  if (wake < 0 || reap < 0) {
    const std::string error = std::strerror(errno);
    close(fd);
    if (wake >= 0) close(wake);
    if (reap >= 0) close(reap);
    return absl::InternalError(absl::StrCat("eventfd: ", error));
  }
  const uint16_t bound_port = ntohs(bound.ss_family == AF_INET6
                                        ? reinterpret_cast<const sockaddr_in6*>(&bound)->sin6_port
                                        : reinterpret_cast<const sockaddr_in*>(&bound)->sin_port);
  std::unique_ptr<NbdServer> server(
      new NbdServer(options, store, fd, wake, reap, PeerName(bound), bound_port));
  try {
    server->acceptor_ = std::thread([s = server.get()] { s->AcceptLoop(); });
  } catch (const std::exception& e) {
    server->shut_down_ = true;  // nothing to stop
    return absl::ResourceExhaustedError(
        absl::StrCat("nbd-listen: cannot start the accepting thread: ", e.what()));
  }
  return server;
}

NbdServer::NbdServer(const NbdServerOptions& options, store::Store* store, int listen_fd,
                     int wake_fd, int reap_fd, std::string address, uint16_t port)
    : options_(options),
      store_(store),
      listen_fd_(listen_fd),
      wake_fd_(wake_fd),
      reap_fd_(reap_fd),
      address_(std::move(address)),
      port_(port) {}

NbdServer::~NbdServer() {
  Shutdown(std::chrono::steady_clock::now());
  close(listen_fd_);
  close(wake_fd_);
  close(reap_fd_);
}

void NbdServer::AcceptLoop() {
  pthread_setname_np(pthread_self(), "nbd-accept");  // no descriptor needed, as in connection.cc
  Clock::time_point resume_accepting{};  // paused at the descriptor limit until then
  auto pause = kMinAcceptPause;
  while (true) {
    Clock::time_point now = Clock::now();
    const bool paused = now < resume_accepting;
    Clock::time_point wake_at = CutLateHandshakes(now);
    if (paused) wake_at = std::min(wake_at, resume_accepting);
    if (trim_pending_) wake_at = std::min(wake_at, last_trim_ + kTrimInterval);
    int timeout_ms = -1;
    if (wake_at != Clock::time_point::max()) {
      timeout_ms = static_cast<int>(std::min<int64_t>(
          std::chrono::ceil<std::chrono::milliseconds>(wake_at - now).count(), 1 << 30));
      timeout_ms = std::max(timeout_ms, 0);
    }
    // While paused the listening socket is not watched: a full accept
    // queue would wake the loop at once, again and again.
    pollfd fds[3] = {{wake_fd_, POLLIN, 0}, {reap_fd_, POLLIN, 0},
                     {paused ? -1 : listen_fd_, POLLIN, 0}};
    if (poll(fds, 3, timeout_ms) < 0) {
      if (errno == EINTR) continue;
      Log(LogLevel::kError, "nbd_accept_failed", {{"error", std::strerror(errno)}});
      return;
    }
    if (fds[0].revents != 0) return;
    if (fds[1].revents != 0) {
      uint64_t ended;
      if (read(reap_fd_, &ended, sizeof ended) < 0) {
        // Nonblocking: nothing to read means nothing ended since.
      }
      if (Reap()) {
        trim_pending_ = true;
        resume_accepting = {};  // their descriptors are back
      }
    }
    now = Clock::now();
    if (trim_pending_ && now >= last_trim_ + kTrimInterval) {
      // glibc keeps what the ended connections freed for reuse (cowblkd
      // asks it to: common/malloc_tuning.h); after a burst nothing may
      // need it again. This gives back what malloc_trim can: not the top
      // of each thread arena's heap (docs/cowblkd.md, "Limits").
      malloc_trim(0);
      stats_->memory_trims.fetch_add(1, std::memory_order_relaxed);
      trim_pending_ = false;
      last_trim_ = now;
    }
    if (fds[2].revents != 0 && now >= resume_accepting) {
      if (AcceptOne(pause == kMinAcceptPause)) {
        pause = kMinAcceptPause;
      } else {
        resume_accepting = Clock::now() + pause;
        pause = std::min<std::chrono::milliseconds>(pause * 2, kMaxAcceptPause);
      }
    }
  }
}

bool NbdServer::AcceptOne(bool first_failure) {
  sockaddr_storage peer{};
  socklen_t len = sizeof peer;
  const int fd = accept4(listen_fd_, reinterpret_cast<sockaddr*>(&peer), &len, SOCK_CLOEXEC);
  if (fd < 0) {
    const int error = errno;
    if (error != EMFILE && error != ENFILE && error != ENOBUFS && error != ENOMEM) {
      return true;  // the client went away before it was taken
    }
    stats_->accept_pauses.fetch_add(1, std::memory_order_relaxed);
    if (first_failure) {
      Log(LogLevel::kWarning, "nbd_accept_paused",
          {{"error", std::strerror(error)}, {"connections", std::to_string(connections_.size())}});
    }
    return false;
  }
  const int one = 1;
  setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
  setsockopt(fd, SOL_SOCKET, SO_KEEPALIVE, &one, sizeof one);
  const std::string name = PeerName(peer);
  if (connections_.size() >= options_.max_connections) Reap();  // one may just have ended
  if (connections_.size() >= options_.max_connections) {
    close(fd);
    Refuse(Refusal::kLimit, name,
           absl::StrCat(options_.max_connections, " connections are open (--nbd-max-connections)"));
    return true;
  }
  core::PipelineOptions pipeline;
  pipeline.transport = "nbd";
  pipeline.peer = name;
  pipeline.max_in_flight = options_.max_in_flight;
  pipeline.max_bytes = options_.max_stream_bytes;
  pipeline.budget = options_.budget;
  // --engine-poll-us polls after NBD requests only: through gRPC it cost
  // more than it gained (gRPC's threads need the core the engine spins
  // on; bench/RESULTS.md, "Engine polling").
  pipeline.poll_after = true;
  pipeline.zero_copy_min_bytes = options_.zero_copy ? kZeroCopyMinBytes : 0;
  pipeline.inline_writes = options_.inline_writes;
  ConnectionOptions connection;
  connection.idle_timeout = options_.idle_timeout;
  connection.send_timeout = options_.send_timeout;
  connection.stats = stats_.get();
  connection.tls = options_.tls.get();
  connection.access = options_.access;
  connection.on_finished = [reap = reap_fd_] {
    const uint64_t one = 1;
    if (write(reap, &one, sizeof one) != sizeof one) {
      // Fails only on overflow: the accepting thread is woken already.
    }
  };
  std::unique_ptr<Connection> conn;
  try {
    conn = std::make_unique<Connection>(fd, store_, std::move(pipeline), std::move(connection));
  } catch (const std::bad_alloc&) {
    close(fd);
    Refuse(Refusal::kMemory, name, "out of memory for the connection's state");
    return true;
  }
  Log(LogLevel::kInfo, "nbd_connected", {{"peer", name}});
  if (absl::Status started = conn->Start(); !started.ok()) {
    Refuse(Refusal::kThreads, name, std::string(started.message()));
    return true;  // `conn` closes the socket
  }
  stats_->accepted.fetch_add(1, std::memory_order_relaxed);
  stats_->open.fetch_add(1, std::memory_order_relaxed);
  connections_.push_back(std::move(conn));
  return true;
}

void NbdServer::Refuse(Refusal why, const std::string& peer, const std::string& error) {
  stats_->Refused(why);
  RefusalLog& log = refusal_log_[static_cast<int>(why)];
  const Clock::time_point now = Clock::now();
  if (now < log.next) {
    ++log.suppressed;
    return;
  }
  Log(LogLevel::kWarning, "nbd_refused",
      {{"peer", peer},
       {"reason", RefusalName(why)},
       {"error", error},
       {"suppressed", std::to_string(log.suppressed)}});
  log.suppressed = 0;
  log.next = now + kRefusalLogInterval;
}

Clock::time_point NbdServer::CutLateHandshakes(Clock::time_point now) {
  for (auto& c : connections_) {
    if (!c->in_handshake()) continue;
    const Clock::time_point deadline = c->accepted_at() + options_.handshake_timeout;
    if (deadline > now) return deadline;
    const auto ms =
        std::chrono::duration_cast<std::chrono::milliseconds>(options_.handshake_timeout).count();
    c->CutHandshake(absl::StrCat("handshake timeout: not done within ",
                                 ms % 1000 == 0 ? absl::StrCat(ms / 1000, " s")
                                                : absl::StrCat(ms, " ms")));
    stats_->TimedOut(Timeout::kHandshake);
  }
  return Clock::time_point::max();
}

bool NbdServer::Reap() {
  bool any = false;
  for (auto it = connections_.begin(); it != connections_.end();) {
    if ((*it)->finished()) {
      (*it)->Join();
      it = connections_.erase(it);  // closes what it held
      stats_->open.fetch_sub(1, std::memory_order_relaxed);
      any = true;
    } else {
      ++it;
    }
  }
  return any;
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
  if (acceptor_.joinable()) acceptor_.join();
  for (auto& c : connections_) c->StopReading();
  for (auto& c : connections_) {
    if (!c->WaitFinished(deadline)) {
      c->Cut();  // a client that does not take its replies
      c->WaitFinished();
    }
    c->Join();
  }
  stats_->open.fetch_sub(static_cast<int64_t>(connections_.size()), std::memory_order_relaxed);
  connections_.clear();
}

}  // namespace cowblk::nbd
