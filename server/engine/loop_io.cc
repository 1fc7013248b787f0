#include "server/engine/loop_io.h"

#include <liburing.h>
#include <unistd.h>

#include <cerrno>

namespace cowblk::engine {

LoopIo::~LoopIo() {
  if (wake_fd_ >= 0) close(wake_fd_);
}

void LoopIo::Wake() {
  const uint64_t one = 1;
  ssize_t rc = write(wake_fd_, &one, sizeof one);
  (void)rc;  // the counter only saturates; a wake-up is never lost
}

bool LoopIo::TakeWake() {
  const bool w = woken_;
  woken_ = false;
  return w;
}

bool ParseIoBackend(const std::string& text, IoBackendKind* out) {
  if (text == "auto") {
    *out = IoBackendKind::kAuto;
  } else if (text == "uring") {
    *out = IoBackendKind::kUring;
  } else if (text == "threads") {
    *out = IoBackendKind::kThreads;
  } else {
    return false;
  }
  return true;
}

IoBackendKind ResolveIoBackend(IoBackendKind wanted, int* refused_errno) {
  *refused_errno = 0;
  if (wanted != IoBackendKind::kAuto) return wanted;
  struct io_uring ring;
  const int rc = io_uring_queue_init(1, &ring, 0);
  if (rc == 0) {
    io_uring_queue_exit(&ring);
    return IoBackendKind::kUring;
  }
  if (rc == -EPERM || rc == -ENOSYS || rc == -EACCES) {
    *refused_errno = -rc;
    return IoBackendKind::kThreads;
  }
  return IoBackendKind::kUring;
}

}  // namespace cowblk::engine
