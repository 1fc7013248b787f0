#include "server/engine/io.h"

#include <fcntl.h>
#include <linux/falloc.h>
#include <unistd.h>

#include <cerrno>

namespace cowblk::engine {

int32_t RunSyncIo(const IoOp& op) {
  for (;;) {
    ssize_t rc = 0;
    switch (op.opcode) {
      case IoOpcode::kRead:
        rc = pread(op.fd, op.buf, op.len, static_cast<off_t>(op.offset));
        break;
      case IoOpcode::kWrite:
        rc = pwrite(op.fd, op.buf, op.len, static_cast<off_t>(op.offset));
        break;
      case IoOpcode::kFdatasync:
        rc = fdatasync(op.fd);
        break;
      case IoOpcode::kPunchHole:
        rc = fallocate(op.fd, FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE,
                       static_cast<off_t>(op.offset), static_cast<off_t>(op.len));
        break;
      case IoOpcode::kZeroRange:
        rc = fallocate(op.fd, FALLOC_FL_ZERO_RANGE | FALLOC_FL_KEEP_SIZE,
                       static_cast<off_t>(op.offset), static_cast<off_t>(op.len));
        break;
      case IoOpcode::kTimeout:
      case IoOpcode::kTimeoutRemove:
        return -EINVAL;
    }
    // io_uring retries what a signal interrupted; so does this.
    if (rc >= 0) return static_cast<int32_t>(rc);
    if (errno != EINTR) return -errno;
  }
}

}  // namespace cowblk::engine
