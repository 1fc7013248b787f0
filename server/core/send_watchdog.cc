#include "server/core/send_watchdog.h"

#include <pthread.h>

#include <vector>

namespace cowblk::core {
namespace {

int64_t NowNs() {
  return std::chrono::duration_cast<std::chrono::nanoseconds>(
             std::chrono::steady_clock::now().time_since_epoch())
      .count();
}

}  // namespace

void SendWatchdog::Watched::WriteStarted() {
  started_ns_.store(NowNs(), std::memory_order_relaxed);
}

SendWatchdog::SendWatchdog(std::chrono::seconds timeout) : timeout_(timeout) {
  if (timeout_.count() == 0) return;
  thread_ = std::thread([this] { Run(); });
  pthread_setname_np(thread_.native_handle(), "cowblk-sendwd");
}

SendWatchdog::~SendWatchdog() {
  if (!thread_.joinable()) return;
  {
    std::lock_guard<std::mutex> lock(mu_);
    stop_ = true;
  }
  cv_.notify_one();
  thread_.join();
}

void SendWatchdog::Watch(Watched* w) {
  if (timeout_.count() == 0) return;
  std::lock_guard<std::mutex> lock(mu_);
  watched_.insert(w);
}

void SendWatchdog::Unwatch(Watched* w) {
  if (timeout_.count() == 0) return;
  std::unique_lock<std::mutex> lock(mu_);
  watched_.erase(w);
  gate_.WaitOut(lock, w, thread_.get_id());
}

void SendWatchdog::Run() {
  const int64_t timeout_ns = std::chrono::nanoseconds(timeout_).count();
  std::unique_lock<std::mutex> lock(mu_);
  while (!stop_) {
    cv_.wait_for(lock, std::chrono::seconds(1), [this] { return stop_; });
    if (stop_) return;
    const int64_t now = NowNs();
    auto is_stale = [&](Watched* w) {
      const int64_t started = w->started_ns_.load(std::memory_order_relaxed);
      return !w->fired_ && started != 0 && now - started >= timeout_ns;
    };
    std::vector<Watched*> stale;
    for (Watched* w : watched_) {
      if (is_stale(w)) stale.push_back(w);
    }
    for (Watched* w : stale) {
      // Unwatched (or another stream at its address) while another was called.
      if (watched_.count(w) == 0 || !is_stale(w)) continue;
      w->fired_ = true;
      timeouts_.fetch_add(1, std::memory_order_relaxed);
      gate_.Call(lock, w, [w] { w->OnSendTimeout(); });
    }
  }
}

}  // namespace cowblk::core
