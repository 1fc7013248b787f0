#include "server/core/budget.h"

#include <pthread.h>

namespace cowblk::core {

Budget::Budget(uint64_t limit)
    : limit_(limit), line_(limit - limit / 8), thread_([this] { Run(); }) {
  pthread_setname_np(thread_.native_handle(), "cowblk-budget");
}

Budget::~Budget() {
  {
    std::lock_guard<std::mutex> lock(mu_);
    stop_ = true;
  }
  cv_.notify_one();
  thread_.join();
}

bool Budget::BelowLineLocked() const { return used_.load(std::memory_order_relaxed) < line_; }

void Budget::WaitLocked(Waiter* waiter) {
  if (waiter->queued_) return;
  waiter->queued_ = true;
  waiting_.push_back(waiter);
  waits_.fetch_add(1, std::memory_order_relaxed);
}

bool Budget::RoomOrWait(Waiter* waiter) {
  // Asked before every request of every stream: below the line, no lock.
  // A yes is advice (TryTake decides under the lock); a no is checked
  // again under the lock, so a waiter is never queued past a Give.
  if (used_.load(std::memory_order_relaxed) < line_) return true;
  std::lock_guard<std::mutex> lock(mu_);
  if (BelowLineLocked()) return true;
  WaitLocked(waiter);
  return false;
}

bool Budget::TryTake(uint64_t bytes, bool holds, Waiter* waiter) {
  std::lock_guard<std::mutex> lock(mu_);
  const uint64_t used = used_.load(std::memory_order_relaxed);
  const uint64_t ceiling = holds ? line_ : limit_;
  if (bytes <= ceiling && used <= ceiling - bytes) {
    used_.store(used + bytes, std::memory_order_relaxed);
    return true;
  }
  WaitLocked(waiter);
  return false;
}

void Budget::Give(uint64_t bytes) {
  if (bytes == 0) return;
  bool wake;
  {
    std::lock_guard<std::mutex> lock(mu_);
    used_.fetch_sub(bytes, std::memory_order_relaxed);
    // Any waiter may fit now (a first request up to the limit): each looks.
    wake = !waiting_.empty();
    if (wake) wake_ = true;
  }
  if (wake) cv_.notify_one();
}

void Budget::Cancel(Waiter* waiter) {
  std::unique_lock<std::mutex> lock(mu_);
  if (waiter->queued_) {
    for (auto it = waiting_.begin(); it != waiting_.end(); ++it) {
      if (*it == waiter) {
        waiting_.erase(it);
        break;
      }
    }
    waiter->queued_ = false;
  }
  gate_.WaitOut(lock, waiter, thread_.get_id());
}

void Budget::Run() {
  std::unique_lock<std::mutex> lock(mu_);
  while (true) {
    cv_.wait(lock, [this] { return stop_ || wake_; });
    if (stop_) return;
    wake_ = false;
    // Everyone waiting gets a turn, in order; each checks the room again
    // (and may queue again) from its callback.
    for (size_t n = waiting_.size(); n > 0 && !waiting_.empty(); --n) {
      Waiter* w = waiting_.front();
      waiting_.pop_front();
      w->queued_ = false;
      gate_.Call(lock, w, [w] { w->OnBudgetRoom(); });
    }
  }
}

}  // namespace cowblk::core
