#include "server/transport/grpc/call_tracker.h"

namespace cowblk::rpc {

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
  if (draining_.exchange(true, std::memory_order_acq_rel)) return;
  for (DrainListener* l : listeners_) l->OnDrain();
}

void CallTracker::Watch(DrainListener* l) {
  std::lock_guard<std::mutex> lock(mu_);
  listeners_.insert(l);
  if (draining_.load(std::memory_order_relaxed)) l->OnDrain();
}

void CallTracker::Unwatch(DrainListener* l) {
  std::lock_guard<std::mutex> lock(mu_);
  listeners_.erase(l);
}

bool CallTracker::WaitIdle(std::chrono::steady_clock::time_point deadline) {
  std::unique_lock<std::mutex> lock(mu_);
  return idle_.wait_until(lock, deadline, [this] { return active_ == 0; });
}

}  // namespace cowblk::rpc
