#include "server/transport/grpc/accept_guard.h"

#include <errno.h>
#include <fcntl.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <chrono>
#include <cstring>
#include <mutex>
#include <string>

#include "common/log.h"

namespace cowblk::rpc {
namespace {

// The flags gRPC's listener accepts with.
constexpr int kGrpcFlags = SOCK_NONBLOCK | SOCK_CLOEXEC;

std::mutex mu;
int spare = -1;                                     // guarded by mu
std::chrono::steady_clock::time_point last_logged;  // guarded by mu
uint64_t unlogged = 0;                              // guarded by mu
std::atomic<uint64_t> refused{0};

int RealAccept4(int fd, sockaddr* addr, socklen_t* len, int flags) {
  return static_cast<int>(syscall(SYS_accept4, fd, addr, len, flags));
}

void OpenSpare() {
  if (spare < 0) spare = open("/dev/null", O_RDONLY | O_CLOEXEC);
}

// Refuses the connections waiting on `listener`, one through the spare
// descriptor at a time, until the queue is empty or the spare is lost to
// another thread. REQUIRES: mu held.
uint64_t RefuseWaitingLocked(int listener) {
  uint64_t n = 0;
  OpenSpare();
  while (spare >= 0) {
    close(spare);
    spare = -1;
    const int c = RealAccept4(listener, nullptr, nullptr, kGrpcFlags);
    if (c >= 0) {
      close(c);
      ++n;
    }
    OpenSpare();
    if (c < 0) break;  // EAGAIN: the queue is empty; else still no room
  }
  return n;
}

}  // namespace

void StartAcceptGuard() {
  std::lock_guard<std::mutex> lock(mu);
  OpenSpare();
}

const std::atomic<uint64_t>& GrpcConnectionsRefused() { return refused; }

}  // namespace cowblk::rpc

extern "C" int accept4(int fd, sockaddr* addr, socklen_t* len, int flags) {
  using namespace cowblk::rpc;  // NOLINT: the file's own namespace
  const int got = RealAccept4(fd, addr, len, flags);
  if (got >= 0 || (flags & kGrpcFlags) != kGrpcFlags || (errno != EMFILE && errno != ENFILE)) {
    return got;
  }
  const int error = errno;
  std::lock_guard<std::mutex> lock(mu);
  const uint64_t n = RefuseWaitingLocked(fd);
  refused.fetch_add(n, std::memory_order_relaxed);
  unlogged += n;
  const auto now = std::chrono::steady_clock::now();
  if (unlogged > 0 && now - last_logged >= std::chrono::seconds(1)) {
    cowblk::Log(cowblk::LogLevel::kWarning, "grpc_refused",
                {{"reason", "descriptors"},
                 {"error", strerror(error)},
                 {"connections", std::to_string(unlogged)}});
    unlogged = 0;
    last_logged = now;
  }
  errno = EAGAIN;  // gRPC waits for the next connection instead of dropping the port
  return -1;
}
