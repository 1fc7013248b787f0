#include "server/engine/engine.h"

#include <pthread.h>

#include <algorithm>
#include <future>

#include "common/clock.h"
#include "server/engine/threads_io.h"
#include "server/engine/uring_io.h"

namespace cowblk::engine {
namespace {
// The engine whose thread this is; lets Submit skip the wake-up (an eventfd
// write plus a ring round trip per request) when a completion callback
// resubmits.
thread_local Engine* t_engine = nullptr;

// A spin-wait hint to the CPU (another hyperthread gets the core's time).
inline void CpuRelax() {
#if defined(__x86_64__) || defined(__i386__)
  __builtin_ia32_pause();
#elif defined(__aarch64__)
  asm volatile("yield");
#endif
}

}  // namespace

void SubmitBatch::Flush() {
  for (Engine* e : to_wake_) e->WakeForBatch();
  to_wake_.clear();
}

void Engine::WakeForBatch() {
  if (t_engine != this) WakeUnlessPolling();
}

void Engine::WakeUnlessPolling() {
  if (poll_ns_ == 0) {  // never polls: no flag to look at
    backend_->Wake();
    return;
  }
  {
    std::lock_guard<std::mutex> lock(mu_);
    work_hint_.store(true, std::memory_order_release);
    if (polling_) return;  // it looks at the inbox before it sleeps
  }
  backend_->Wake();
}

bool Engine::PollBriefly() {
  {
    std::lock_guard<std::mutex> lock(mu_);
    polling_ = true;
  }
  backend_->SubmitQueued();  // what this thread queued goes out now
  const int64_t end = MonotonicNs() + poll_ns_;
  for (int i = 0;; ++i) {
    if (work_hint_.load(std::memory_order_acquire) || backend_->CompletionsReady()) break;
    CpuRelax();
    if (i % 16 == 15 && MonotonicNs() >= end) break;
  }
  // From here on submitters wake the engine again; what they queued before
  // is in the inbox now (both under mu_).
  std::lock_guard<std::mutex> lock(mu_);
  polling_ = false;
  return !inbox_.empty() || !posted_.empty() || !ordered_.empty();
}

// Out of line: the backends' types are complete only here.
Engine::Engine(Passkey) {}

absl::StatusOr<std::unique_ptr<Engine>> Engine::Start(const EngineOptions& options) {
  auto e = std::make_unique<Engine>(Passkey());
  int refused = 0;
  if (ResolveIoBackend(options.io_backend, &refused) == IoBackendKind::kThreads) {
    auto threads = ThreadsIo::Create(options.io_threads, &e->sink_);
    if (!threads.ok()) return threads.status();
    e->backend_ = *std::move(threads);
  } else {
    auto ring = UringIo::Create(options.ring_entries, &e->sink_);
    if (!ring.ok()) return ring.status();
    e->backend_ = *std::move(ring);
  }
  e->io_ = e->backend_.get();
  if (options.wrap_io) {
    auto wrapped =
        options.wrap_io(e->backend_.get(), [raw = e.get()](std::function<void()> fn) {
          raw->Post(std::move(fn));
        });
    if (!wrapped.ok()) return wrapped.status();
    e->wrapped_ = *std::move(wrapped);
    e->io_ = e->wrapped_.get();
  }
  e->poll_ns_ = static_cast<int64_t>(options.poll_us) * 1000;
  e->inbox_histogram_ = options.inbox_histogram;
  e->thread_ = std::thread([raw = e.get()] { raw->Run(); });
  // Names show in top -H, perf and /proc/PID/task/*/comm (15 bytes at most).
  pthread_setname_np(e->thread_.native_handle(), "cowblk-engine");
  return e;
}

Engine::~Engine() {
  // Start() fails before the thread exists (and backend_ may be null) when
  // the backend cannot be set up, e.g. --io-backend uring where a seccomp
  // profile refuses io_uring.
  if (thread_.joinable()) {
    {
      std::lock_guard<std::mutex> lock(mu_);
      stop_ = true;
    }
    backend_->Wake();
    thread_.join();
  }
  // Before the ring and the inbox: it may still post (and wake) until it
  // is gone, and nothing runs what it posts any more.
  wrapped_.reset();
}

void Engine::Run() {
  t_engine = this;
  std::vector<Inbound> requests;
  std::vector<std::function<void()>> posted;
  std::vector<Ordered> ordered;
  for (;;) {
    bool stop;
    {
      std::lock_guard<std::mutex> lock(mu_);
      requests.swap(inbox_);
      inbox_depth_.store(0, std::memory_order_relaxed);
      posted.swap(posted_);
      ordered.swap(ordered_);
      work_hint_.store(false, std::memory_order_relaxed);
      stop = stop_;
    }
    const bool worked = !requests.empty() || !posted.empty() || !ordered.empty() ||
                        backend_->delivered() > 0;
    if (poll_ns_ > 0 && !requests.empty()) {
      poll_after_ = false;
      for (const Inbound& in : requests) poll_after_ = poll_after_ || in.poll_after;
    }
    if (inbox_histogram_ && !requests.empty()) {
      const int64_t taken_ns = MonotonicNs();
      for (const Inbound& in : requests) {
        inbox_wait_.Record(static_cast<uint64_t>(std::max<int64_t>(taken_ns - in.queued_ns, 0)));
      }
    }
    for (auto& fn : posted) fn();
    posted.clear();
    auto next_ordered = ordered.begin();
    for (size_t i = 0; i < requests.size(); ++i) {
      for (; next_ordered != ordered.end() && next_ordered->at <= i; ++next_ordered) {
        next_ordered->fn();
      }
      requests[i].volume->Submit(requests[i].request);
    }
    for (; next_ordered != ordered.end(); ++next_ordered) next_ordered->fn();
    requests.clear();
    ordered.clear();
    batch_ends_.Run();
    for (size_t i = 0; i < closing_.size();) {
      if (closing_[i].volume->requests_in_flight() != 0) {
        ++i;
        continue;
      }
      Volume* v = closing_[i].volume;
      auto done = std::move(closing_[i].done);
      closing_.erase(closing_.begin() + static_cast<std::ptrdiff_t>(i));
      {
        std::lock_guard<std::mutex> lock(volumes_mu_);
        std::erase_if(volumes_, [v](const auto& p) { return p.get() == v; });
      }
      done();
    }
    // The metric counts the backend's operations; stopping waits for every
    // operation a volume submitted, including any a wrapper keeps back.
    io_in_flight_.store(backend_->in_flight(), std::memory_order_relaxed);
    if (stop && io_->in_flight() == 0) return;
    {
      // Work queued by this thread itself (no wake-up was sent for it).
      std::lock_guard<std::mutex> lock(mu_);
      if (!inbox_.empty() || !posted_.empty() || !ordered_.empty()) continue;
    }
    // With --engine-poll-us: poll first after requests that asked for it
    // (SubmitBatch::poll_after), and only while idle spells have been shorter
    // than the window (a moving average): at depth 1 the next request comes
    // within it; a spell longer than the window (large requests, a client
    // thinking, an idle volume) would be a busy core for nothing.
    const bool polls = poll_ns_ > 0;
    const int64_t idle_from = polls ? MonotonicNs() : 0;
    const bool found = polls && worked && poll_after_ && !stop && idle_ewma_ns_ < poll_ns_ &&
                       PollBriefly();
    // The backend itself failed: nothing can continue.
    if (!found && !backend_->Poll()) abort();
    if (polls) idle_ewma_ns_ += (MonotonicNs() - idle_from - idle_ewma_ns_) / 8;
    if (found) continue;
    // Before the answers leave (at the batch end): a client that saw its
    // last answer must not scrape an operation still in flight.
    io_in_flight_.store(backend_->in_flight(), std::memory_order_relaxed);
    batch_ends_.Run();
    backend_->TakeWake();
  }
}

void Engine::Post(std::function<void()> fn) {
  {
    std::lock_guard<std::mutex> lock(mu_);
    posted_.push_back(std::move(fn));
  }
  WakeUnlessPolling();
}

void Engine::PostAfterSubmitted(std::function<void()> fn) {
  {
    std::lock_guard<std::mutex> lock(mu_);
    ordered_.push_back({inbox_.size(), std::move(fn)});
  }
  WakeUnlessPolling();
}

void Engine::Submit(Volume* volume, Request* req, SubmitBatch* batch) {
  bool first;
  bool polling;
  const bool batched = batch != nullptr && t_engine != this;
  const int64_t queued_ns = inbox_histogram_ ? MonotonicNs() : 0;
  {
    std::lock_guard<std::mutex> lock(mu_);
    first = inbox_.empty();
    inbox_.push_back({volume, req, batch != nullptr && batch->poll_after(), queued_ns});
    inbox_depth_.store(inbox_.size(), std::memory_order_relaxed);
    polling = polling_;
    // A batch's requests are announced when it is flushed (WakeForBatch).
    if (!batched && poll_ns_ > 0) work_hint_.store(true, std::memory_order_release);
  }
  if (polling && !batched) return;  // it looks at the inbox before it sleeps
  if (first && batched) {
    // One wake-up when the batch is flushed.
    if (std::find(batch->to_wake_.begin(), batch->to_wake_.end(), this) ==
        batch->to_wake_.end()) {
      batch->to_wake_.push_back(this);
    }
    return;
  }
  // Later submitters ride on the first one's wake-up; the engine thread
  // itself looks at the inbox before it waits.
  if (first && t_engine != this) backend_->Wake();
}

absl::StatusOr<Volume*> Engine::OpenVolume(std::unique_ptr<cow::CowFile> file,
                                           const VolumeOptions& options) {
  std::promise<absl::StatusOr<Volume*>> result;
  auto future = result.get_future();
  // By reference: this thread waits until the engine thread ran it.
  Post([this, &file, &options, &result] {
    auto v = Volume::Create(std::move(file), io_, options, &batch_ends_);
    if (!v.ok()) {
      result.set_value(v.status());
      return;
    }
    std::lock_guard<std::mutex> lock(volumes_mu_);
    volumes_.push_back(*std::move(v));
    result.set_value(volumes_.back().get());
  });
  return future.get();
}

void Engine::CloseVolume(Volume* volume) {
  std::promise<void> closed;
  auto future = closed.get_future();
  Post([this, volume, &closed] {
    volume->BeginClose();
    closing_.push_back({volume, [&closed] { closed.set_value(); }});
  });
  future.wait();
}

size_t Engine::io_in_flight() const {
  return io_in_flight_.load(std::memory_order_relaxed);
}

void Engine::ForEachVolume(const std::function<void(const Volume&)>& fn) const {
  std::lock_guard<std::mutex> lock(volumes_mu_);
  for (const auto& v : volumes_) fn(*v);
}

absl::StatusOr<std::unique_ptr<EngineGroup>> EngineGroup::Start(
    int threads, const EngineOptions& options) {
  auto g = std::make_unique<EngineGroup>();
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
