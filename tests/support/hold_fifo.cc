#include "tests/support/hold_fifo.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <utility>

namespace cowblk::testing {

HoldFifo::HoldFifo(std::string path) : path_(std::move(path)) {
  made_ = mkfifo(path_.c_str(), 0600) == 0;
}

bool HoldFifo::Release(size_t n) {
  const int fd = open(path_.c_str(), O_WRONLY | O_CLOEXEC);
  if (fd < 0) return false;
  const std::string bytes(n, 'r');
  const bool ok = write(fd, bytes.data(), n) == static_cast<ssize_t>(n);
  close(fd);
  return ok;
}

}  // namespace cowblk::testing
