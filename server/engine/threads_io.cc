#include "server/engine/threads_io.h"

#include <fcntl.h>
#include <poll.h>
#include <pthread.h>
#include <sys/eventfd.h>
#include <sys/uio.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <system_error>

#include "common/clock.h"
#include "common/file_io.h"

namespace cowblk::engine {
absl::StatusOr<std::unique_ptr<ThreadsIo>> ThreadsIo::Create(unsigned workers, IoSink* sink) {
  if (workers == 0) return absl::InvalidArgumentError("threads I/O backend: 0 workers");
  auto io = std::make_unique<ThreadsIo>(Passkey(), sink);
  io->wake_fd_ = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
  if (io->wake_fd_ < 0) return ErrnoStatus(errno, "eventfd");
  for (unsigned i = 0; i < workers; ++i) {
    try {
      io->workers_.emplace_back([raw = io.get()] { raw->Work(); });
    } catch (const std::system_error& e) {
      // The destructor stops the workers started so far.
      return ErrnoStatus(e.code().value(), "starting an I/O worker thread");
    }
    // Shown in top -H and /proc/PID/task/*/comm (15 bytes at most).
    pthread_setname_np(io->workers_.back().native_handle(), "cowblk-io");
  }
  return io;
}

ThreadsIo::~ThreadsIo() {
  StopWorkers();
}

void ThreadsIo::StopWorkers() {
  {
    std::lock_guard<std::mutex> lock(work_mu_);
    stop_ = true;
  }
  work_cv_.notify_all();
  for (std::thread& t : workers_) t.join();
  workers_.clear();
}

void ThreadsIo::Work() {
  for (;;) {
    IoOp op;
    {
      std::unique_lock<std::mutex> lock(work_mu_);
      work_cv_.wait(lock, [this] { return stop_ || !work_.empty(); });
      if (stop_) return;
      op = work_.front();
      work_.pop_front();
    }
    const Done done{op.user_data, RunSyncIo(op)};
    bool first;
    {
      std::lock_guard<std::mutex> lock(done_mu_);
      first = done_.empty();
      done_.push_back(done);
      done_ready_.store(true, std::memory_order_release);
    }
    // One signal per batch the engine has not taken yet: whoever queued
    // the first completion of a batch signals after queueing it.
    if (first) Wake();
  }
}

void ThreadsIo::Submit(const IoOp& op) {
  ++in_flight_;
  switch (op.opcode) {
    case IoOpcode::kTimeout:
      timers_[op.user_data] = MonotonicNs() + static_cast<int64_t>(op.len);
      return;
    case IoOpcode::kTimeoutRemove:
      // Delivered by the next Poll, as the ring would: never from Submit.
      if (timers_.erase(op.offset) != 0) {
        local_done_.push_back({op.offset, -ECANCELED});
        local_done_.push_back({op.user_data, 0});
      } else {
        local_done_.push_back({op.user_data, -ENOENT});
      }
      return;
    default:
      pending_.push_back(op);
  }
}

bool ThreadsIo::ReadInline(const IoOp& op) {
  // Never O_DIRECT: RWF_NOWAIT would still wait for the device there.
  const int flags = fcntl(op.fd, F_GETFL);
  if (flags < 0 || (flags & O_DIRECT) != 0) return false;
  struct iovec iov = {op.buf, op.len};
  const ssize_t rc = preadv2(op.fd, &iov, 1, static_cast<off_t>(op.offset), RWF_NOWAIT);
  // Nothing cached (EAGAIN), or any error: a worker tries for real. Short:
  // the rest was not cached (or the end of the file), and the volume
  // continues it as it continues io_uring's short reads.
  if (rc < 0) return false;
  local_done_.push_back({op.user_data, static_cast<int32_t>(rc)});
  return true;
}

void ThreadsIo::SubmitQueued() {
  if (pending_.empty()) return;
  // Reads the page cache holds complete here, as io_uring completes them
  // inline: a hand-off to a worker and back costs more than the copy.
  std::erase_if(pending_, [this](const IoOp& op) {
    return op.opcode == IoOpcode::kRead && ReadInline(op);
  });
  if (pending_.empty()) return;
  const size_t n = pending_.size();
  {
    std::lock_guard<std::mutex> lock(work_mu_);
    work_.insert(work_.end(), pending_.begin(), pending_.end());
  }
  pending_.clear();
  if (n == 1) {
    work_cv_.notify_one();
  } else {
    work_cv_.notify_all();
  }
}

int64_t ThreadsIo::NextTimeoutNs() const {
  if (timers_.empty()) return -1;
  int64_t earliest = timers_.begin()->second;
  for (const auto& [user_data, deadline] : timers_) earliest = std::min(earliest, deadline);
  return std::max<int64_t>(0, earliest - MonotonicNs());
}

bool ThreadsIo::CompletionsReady() {
  return !local_done_.empty() || done_ready_.load(std::memory_order_acquire) ||
         NextTimeoutNs() == 0;
}

bool ThreadsIo::Poll() {
  SubmitQueued();
  if (!CompletionsReady()) {
    const int64_t wait_ns = NextTimeoutNs();
    struct timespec ts = {static_cast<time_t>(wait_ns / 1000000000),
                          static_cast<long>(wait_ns % 1000000000)};
    struct pollfd pfd = {wake_fd_, POLLIN, 0};
    const int rc = ppoll(&pfd, 1, wait_ns < 0 ? nullptr : &ts, nullptr);
    if (rc < 0 && errno != EINTR) return false;
    if (rc > 0) {
      uint64_t count;
      // Completions and wake-ups share the counter: either ends the wait.
      if (read(wake_fd_, &count, sizeof count) > 0) woken_ = true;
    }
  }
  // Copy out first: completions may submit new operations.
  std::vector<Done> batch;
  batch.swap(local_done_);
  if (done_ready_.load(std::memory_order_acquire)) {
    std::lock_guard<std::mutex> lock(done_mu_);
    batch.insert(batch.end(), done_.begin(), done_.end());
    done_.clear();
    done_ready_.store(false, std::memory_order_relaxed);
  }
  if (!timers_.empty()) {
    const int64_t now = MonotonicNs();
    for (auto it = timers_.begin(); it != timers_.end();) {
      if (it->second > now) {
        ++it;
        continue;
      }
      batch.push_back({it->first, 0});
      it = timers_.erase(it);
    }
  }
  in_flight_ -= batch.size();
  delivered_ = static_cast<unsigned>(batch.size());
  for (const Done& d : batch) sink_->OnIoComplete(d.user_data, d.result);
  // What the completions submitted starts at once, not on the next Poll.
  SubmitQueued();
  return true;
}

}  // namespace cowblk::engine
