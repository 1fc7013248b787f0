#include "server/engine/uring_io.h"

#include <linux/falloc.h>
#include <sys/eventfd.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>

#include "absl/strings/str_cat.h"
#include "common/file_io.h"

namespace cowblk::engine {
namespace {
// user_data of the eventfd read that wakes the engine; engine ops are
// pointers and never 1.
constexpr uint64_t kWakeTag = 1;
}  // namespace

absl::StatusOr<std::unique_ptr<UringIo>> UringIo::Create(unsigned entries,
                                                         IoSink* sink) {
  auto io = std::make_unique<UringIo>(Passkey(), sink);
  struct io_uring_params params;
  memset(&params, 0, sizeof params);
  params.flags = IORING_SETUP_CQSIZE;
  params.cq_entries = entries * 2;
  int rc = io_uring_queue_init_params(entries, &io->ring_, &params);
  if (rc < 0) return ErrnoStatus(-rc, "io_uring_queue_init");
  io->ring_ok_ = true;
  io->entries_ = params.sq_entries;
  io->wake_fd_ = eventfd(0, EFD_CLOEXEC);
  if (io->wake_fd_ < 0) return ErrnoStatus(errno, "eventfd");
  io->ArmWakeRead();
  return io;
}

UringIo::~UringIo() {
  if (ring_ok_) io_uring_queue_exit(&ring_);
}

void UringIo::ArmWakeRead() {
  struct io_uring_sqe* sqe = io_uring_get_sqe(&ring_);
  if (sqe == nullptr) {
    io_uring_submit(&ring_);
    sqe = io_uring_get_sqe(&ring_);
  }
  io_uring_prep_read(sqe, wake_fd_, &event_buf_, sizeof event_buf_, 0);
  io_uring_sqe_set_data64(sqe, kWakeTag);
  wake_armed_ = true;
}

bool UringIo::Push(const IoOp& op) {
  // One slot stays free for the wake-up read.
  if (in_flight_ + 1 >= entries_) return false;
  struct io_uring_sqe* sqe = io_uring_get_sqe(&ring_);
  if (sqe == nullptr) {
    io_uring_submit(&ring_);
    sqe = io_uring_get_sqe(&ring_);
    if (sqe == nullptr) return false;
  }
  switch (op.opcode) {
    case IoOpcode::kRead:
      io_uring_prep_read(sqe, op.fd, op.buf, static_cast<unsigned>(op.len), op.offset);
      break;
    case IoOpcode::kWrite:
      io_uring_prep_write(sqe, op.fd, op.buf, static_cast<unsigned>(op.len), op.offset);
      break;
    case IoOpcode::kFdatasync:
      io_uring_prep_fsync(sqe, op.fd, IORING_FSYNC_DATASYNC);
      break;
    case IoOpcode::kPunchHole:
      io_uring_prep_fallocate(sqe, op.fd,
                              FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE,
                              op.offset, op.len);
      break;
    case IoOpcode::kZeroRange:
      io_uring_prep_fallocate(sqe, op.fd, FALLOC_FL_ZERO_RANGE | FALLOC_FL_KEEP_SIZE,
                              op.offset, op.len);
      break;
    case IoOpcode::kTimeout: {
      __kernel_timespec& ts = timeouts_[op.user_data];
      ts.tv_sec = static_cast<int64_t>(op.len / 1000000000);
      ts.tv_nsec = static_cast<long long>(op.len % 1000000000);
      io_uring_prep_timeout(sqe, &ts, 0, 0);
      break;
    }
    case IoOpcode::kTimeoutRemove:
      io_uring_prep_timeout_remove(sqe, op.offset, 0);
      break;
  }
  io_uring_sqe_set_data64(sqe, op.user_data);
  ++in_flight_;
  return true;
}

void UringIo::Submit(const IoOp& op) {
  if (!overflow_.empty() || !Push(op)) overflow_.push_back(op);
}

bool UringIo::Poll() {
  if (!wake_armed_) ArmWakeRead();
  int rc = io_uring_submit_and_wait(&ring_, 1);
  if (rc < 0 && rc != -EINTR && rc != -EAGAIN && rc != -EBUSY) return false;
  unsigned head;
  unsigned seen = 0;
  struct io_uring_cqe* cqe;
  // Copy out first: completions may submit new operations.
  struct Done {
    uint64_t user_data;
    int32_t res;
  };
  Done batch[256];
  unsigned n = 0;
  io_uring_for_each_cqe(&ring_, head, cqe) {
    if (n == sizeof batch / sizeof batch[0]) break;
    ++seen;
    const uint64_t data = io_uring_cqe_get_data64(cqe);
    if (data == kWakeTag) {
      wake_armed_ = false;
      woken_ = true;
      continue;
    }
    int32_t res = cqe->res;
    if (!timeouts_.empty() && timeouts_.erase(data) != 0 && res == -ETIME) res = 0;
    batch[n++] = {data, res};
  }
  io_uring_cq_advance(&ring_, seen);
  in_flight_ -= n;
  delivered_ = n;
  for (unsigned i = 0; i < n; ++i) sink_->OnIoComplete(batch[i].user_data, batch[i].res);
  // Freed slots go to the operations that waited for them, in order.
  size_t moved = 0;
  while (moved < overflow_.size() && Push(overflow_[moved])) ++moved;
  overflow_.erase(overflow_.begin(), overflow_.begin() + static_cast<std::ptrdiff_t>(moved));
  return true;
}

void UringIo::SubmitQueued() {
  if (!wake_armed_) ArmWakeRead();
  io_uring_submit(&ring_);
}

}  // namespace cowblk::engine
