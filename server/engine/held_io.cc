// HeldIo: bitmap writes parked until released, and the FIFO that releases
// them for cowblkd --debug-hold-bitmap-writes.

#include "server/engine/held_io.h"

#include <fcntl.h>
#include <poll.h>
#include <pthread.h>
#include <sys/eventfd.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <thread>

#include "absl/strings/str_cat.h"
#include "common/file_io.h"
#include "common/log.h"

namespace cowblk::engine {

void HeldIo::Submit(const IoOp& op) {
  if (op.purpose != IoPurpose::kBitmap) {
    real_->Submit(op);
    return;
  }
  if (credit_ > 0) {
    --credit_;
    real_->Submit(op);
    return;
  }
  held_.push_back(op);
  Log(LogLevel::kInfo, "io_held", {{"op", "bitmap_write"}, {"held", std::to_string(held_.size())}});
}

void HeldIo::Release() {
  if (held_.empty()) {
    ++credit_;
    return;
  }
  const IoOp op = held_.front();
  held_.pop_front();
  Log(LogLevel::kInfo, "io_released",
      {{"op", "bitmap_write"}, {"held", std::to_string(held_.size())}});
  real_->Submit(op);
}

namespace {

class FifoHeldIo : public HeldIo {
 public:
  // Takes over `fifo_fd`.
  FifoHeldIo(IoBackend* real, int fifo_fd, std::function<void(std::function<void()>)> post)
      : HeldIo(real), fifo_fd_(fifo_fd), post_(std::move(post)) {}
  ~FifoHeldIo() override {
    if (reader_.joinable()) {
      const uint64_t one = 1;
      ssize_t rc = write(stop_fd_, &one, sizeof one);
      (void)rc;
      reader_.join();
    }
    if (stop_fd_ >= 0) close(stop_fd_);
    close(fifo_fd_);
  }

  absl::Status Start() {
    stop_fd_ = eventfd(0, EFD_CLOEXEC);
    if (stop_fd_ < 0) return ErrnoStatus(errno, "eventfd");
    reader_ = std::thread([this] { ReadLoop(); });
    pthread_setname_np(reader_.native_handle(), "cowblk-hold");
    return absl::OkStatus();
  }

 private:
  // One Release per byte, until the destructor signals stop_fd_.
  void ReadLoop() {
    for (;;) {
      struct pollfd fds[2] = {{fifo_fd_, POLLIN, 0}, {stop_fd_, POLLIN, 0}};
      if (poll(fds, 2, -1) < 0 && errno != EINTR) return;
      if (fds[1].revents != 0) return;
      char buf[64];
      const ssize_t n = read(fifo_fd_, buf, sizeof buf);
      for (ssize_t i = 0; i < n; ++i) post_([this] { Release(); });
    }
  }

  const int fifo_fd_;
  int stop_fd_ = -1;  // an eventfd that ends the reader
  std::function<void(std::function<void()>)> post_;
  std::thread reader_;
};

}  // namespace

absl::StatusOr<std::unique_ptr<IoBackend>> HoldBitmapWritesUntilFifo(
    const std::string& fifo, IoBackend* real, std::function<void(std::function<void()>)> post) {
  // Read-write: the open does not wait for a writer, and the FIFO never
  // reports end of file when writers come and go.
  const int fd = open(fifo.c_str(), O_RDWR | O_NONBLOCK | O_CLOEXEC);
  if (fd < 0) return ErrnoStatus(errno, absl::StrCat("open ", fifo));
  auto held = std::make_unique<FifoHeldIo>(real, fd, std::move(post));
  struct stat st;
  if (fstat(fd, &st) != 0 || !S_ISFIFO(st.st_mode)) {
    return absl::InvalidArgumentError(absl::StrCat(fifo, " is not a FIFO (mkfifo)"));
  }
  if (absl::Status s = held->Start(); !s.ok()) return s;
  Log(LogLevel::kWarning, "holding_bitmap_writes", {{"fifo", fifo}});
  return held;
}

}  // namespace cowblk::engine
