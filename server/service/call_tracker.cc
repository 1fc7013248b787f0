#include "server/service/call_tracker.h"

namespace cowblk::service {

bool CallTracker::Begin() {
  std::lock_guard<std::mutex> lock(mu_);
  if (draining_) return false;
  ++active_;
  return true;
}

void CallTracker::End() {
  std::lock_guard<std::mutex> lock(mu_);
  if (--active_ == 0) idle_.notify_all();
}

void CallTracker::StartDraining() {
  std::lock_guard<std::mutex> lock(mu_);
  draining_ = true;
}

bool CallTracker::draining() const {
  std::lock_guard<std::mutex> lock(mu_);
  return draining_;
}

bool CallTracker::WaitIdle(std::chrono::steady_clock::time_point deadline) {
  std::unique_lock<std::mutex> lock(mu_);
  return idle_.wait_until(lock, deadline, [this] { return active_ == 0; });
}

}  // namespace cowblk::service
