#include "client/src/ticker.h"

#include <vector>

namespace cowblk::internal {

Ticker::Ticker(std::chrono::milliseconds period) : period_(period), thread_([this] { Run(); }) {}

Ticker::~Ticker() {
  {
    std::lock_guard<std::mutex> lock(mu_);
    stop_ = true;
  }
  cv_.notify_all();
  thread_.join();
}

uint64_t Ticker::Add(Fn fn) {
  std::lock_guard<std::mutex> lock(mu_);
  const uint64_t id = next_id_++;
  fns_.emplace(id, std::move(fn));
  return id;
}

void Ticker::Remove(uint64_t id) {
  std::unique_lock<std::mutex> lock(mu_);
  cv_.wait(lock, [&] { return running_ != id; });
  fns_.erase(id);
}

void Ticker::Kick() {
  bool wake;
  {
    std::lock_guard<std::mutex> lock(mu_);
    kicked_ = true;
    wake = idle_;
  }
  // Busy, the thread looks again within a period anyway: waking it for
  // every request would cost a context switch each.
  if (wake) cv_.notify_all();
}

void Ticker::Run() {
  bool busy = false;
  std::unique_lock<std::mutex> lock(mu_);
  while (true) {
    if (busy) {
      cv_.wait_for(lock, period_, [this] { return stop_; });
    } else {
      idle_ = true;
      cv_.wait(lock, [this] { return stop_ || kicked_; });
      idle_ = false;
    }
    if (stop_) return;
    kicked_ = false;
    busy = false;
    std::vector<uint64_t> ids;
    for (const auto& [id, fn] : fns_) ids.push_back(id);
    for (uint64_t id : ids) {
      auto it = fns_.find(id);
      if (it == fns_.end()) continue;  // removed meanwhile
      Fn fn = it->second;
      running_ = id;
      lock.unlock();
      const bool has_work = fn(Clock::now());
      lock.lock();
      running_ = 0;
      cv_.notify_all();
      busy = busy || has_work;
    }
    // A Kick() that came while the functions ran means new work: look again
    // after one period rather than sleeping until the next Kick().
    busy = busy || kicked_;
  }
}

}  // namespace cowblk::internal
