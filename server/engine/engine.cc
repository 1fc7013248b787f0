#include "server/engine/engine.h"

#include <future>

#include "server/engine/uring_io.h"

namespace cowblk::engine {
namespace {
// The engine whose thread this is; lets Submit skip the wake-up (an eventfd
// write plus a ring round trip per request) when a completion callback
// resubmits.
thread_local Engine* t_engine = nullptr;
}  // namespace

absl::StatusOr<std::unique_ptr<Engine>> Engine::Start(const EngineOptions& options) {
  std::unique_ptr<Engine> e(new Engine);
  auto io = UringIo::Create(options.ring_entries, &e->sink_);
  if (!io.ok()) return io.status();
  e->io_ = *std::move(io);
  e->thread_ = std::thread([raw = e.get()] { raw->Run(); });
  return e;
}

Engine::~Engine() {
  {
    std::lock_guard<std::mutex> lock(mu_);
    stop_ = true;
  }
  io_->Wake();
  thread_.join();
}

void Engine::Run() {
  t_engine = this;
  std::vector<std::pair<Volume*, Request*>> requests;
  std::vector<std::function<void()>> posted;
  for (;;) {
    bool stop;
    {
      std::lock_guard<std::mutex> lock(mu_);
      requests.swap(inbox_);
      posted.swap(posted_);
      stop = stop_;
    }
    for (auto& fn : posted) fn();
    posted.clear();
    for (auto& [volume, req] : requests) volume->Submit(req);
    requests.clear();
    for (size_t i = 0; i < closing_.size();) {
      if (closing_[i].volume->requests_in_flight() != 0) {
        ++i;
        continue;
      }
      Volume* v = closing_[i].volume;
      auto done = std::move(closing_[i].done);
      closing_.erase(closing_.begin() + static_cast<std::ptrdiff_t>(i));
      std::erase_if(volumes_, [v](const auto& p) { return p.get() == v; });
      done();
    }
    io_in_flight_.store(io_->in_flight(), std::memory_order_relaxed);
    if (stop && io_->in_flight() == 0) return;
    {
      // Work queued by this thread itself (no wake-up was sent for it).
      std::lock_guard<std::mutex> lock(mu_);
      if (!inbox_.empty() || !posted_.empty()) continue;
    }
    if (!io_->Poll()) abort();  // the ring itself failed: nothing can continue
    io_->TakeWake();
  }
}

void Engine::Post(std::function<void()> fn) {
  {
    std::lock_guard<std::mutex> lock(mu_);
    posted_.push_back(std::move(fn));
  }
  io_->Wake();
}

void Engine::Submit(Volume* volume, Request* req) {
  bool first;
  {
    std::lock_guard<std::mutex> lock(mu_);
    first = inbox_.empty();
    inbox_.emplace_back(volume, req);
  }
  // Later submitters ride on the first one's wake-up; the engine thread
  // itself looks at the inbox before it waits.
  if (first && t_engine != this) io_->Wake();
}

absl::StatusOr<Volume*> Engine::OpenVolume(std::unique_ptr<cow::CowFile> file,
                                           const VolumeOptions& options) {
  std::promise<absl::StatusOr<Volume*>> result;
  auto future = result.get_future();
  cow::CowFile* raw = file.release();
  Post([this, raw, options, &result] {
    auto v = Volume::Create(std::unique_ptr<cow::CowFile>(raw), io_.get(), options);
    if (!v.ok()) {
      result.set_value(v.status());
      return;
    }
    volumes_.push_back(*std::move(v));
    result.set_value(volumes_.back().get());
  });
  return future.get();
}

void Engine::CloseVolume(Volume* volume) {
  std::promise<void> closed;
  auto future = closed.get_future();
  Post([this, volume, &closed] {
    closing_.push_back({volume, [&closed] { closed.set_value(); }});
  });
  future.wait();
}

size_t Engine::io_in_flight() const {
  return io_in_flight_.load(std::memory_order_relaxed);
}

absl::StatusOr<std::unique_ptr<EngineGroup>> EngineGroup::Start(
    int threads, const EngineOptions& options) {
  std::unique_ptr<EngineGroup> g(new EngineGroup);
  for (int i = 0; i < threads; ++i) {
    auto e = Engine::Start(options);
    if (!e.ok()) return e.status();
    g->engines_.push_back(*std::move(e));
  }
  return g;
}

Engine* EngineGroup::Pick() {
  return engines_[next_.fetch_add(1, std::memory_order_relaxed) % engines_.size()].get();
}

}  // namespace cowblk::engine
