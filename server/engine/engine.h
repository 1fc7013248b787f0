// Engine: one thread that owns one I/O backend (an io_uring, or a pool of
// worker threads: loop_io.h) and every volume assigned to it. Other threads
// hand it requests through a queue plus an eventfd that the backend's wait
// covers; completions come back through Request::done on the engine thread.
// EngineGroup spreads volumes over several engines.
//
// Thread-safety: every public method of Engine and EngineGroup may be called
// from any thread. Volume objects are touched only on their engine thread.

#ifndef COWBLK_SERVER_ENGINE_ENGINE_H_
#define COWBLK_SERVER_ENGINE_ENGINE_H_

#include <atomic>
#include <functional>
#include <memory>
#include <mutex>
#include <thread>
#include <vector>

#include "absl/status/statusor.h"
#include "server/cow/cow_file.h"
#include "server/engine/io.h"
#include "server/engine/loop_io.h"
#include "server/engine/request.h"
#include "server/engine/volume.h"
#include "server/engine/volume_stats.h"

namespace cowblk::engine {

// Runs a closure on an engine's thread (Engine::Post).
using PostFn = std::function<void(std::function<void()>)>;
// Puts an I/O backend around an engine's ring: gets the real backend and a
// PostFn for the engine, returns a backend that forwards to the real one
// (a decorator such as HeldIo, held_io.h), or why it cannot.
using IoWrapper =
    std::function<absl::StatusOr<std::unique_ptr<IoBackend>>(IoBackend* real, PostFn post)>;

struct EngineOptions {
  // cowblkd --io-backend: kAuto runs io_uring unless io_uring_setup is
  // refused (ResolveIoBackend), then worker threads.
  IoBackendKind io_backend = IoBackendKind::kAuto;
  unsigned ring_entries = 256;  // io_uring
  // cowblkd --io-threads: the threads backend's workers per engine.
  unsigned io_threads = 8;
  // Empty: volumes submit to the ring. Otherwise called once per engine,
  // before its thread starts; the volumes submit to what it returns. The
  // engine destroys that backend after its thread ended, so closures it
  // posted that have not run by then never run. (cowblkd
  // --debug-hold-bitmap-writes wraps the ring in HeldIo this way.)
  IoWrapper wrap_io;
  // cowblkd --engine-poll-us: after handling requests with
  // Request::poll_after, the engine thread polls its inbox and its ring
  // this long (microseconds) before it sleeps; requests that come meanwhile
  // need no wake-up (a thread woken on another CPU costs ~20 us on a VM).
  // 0: sleep at once.
  unsigned poll_us = 0;
  // Time each request in the inbox (Engine::inbox_wait): a clock read per
  // Submit. cowblkd turns it off with metrics off, as
  // VolumeOptions::latency_histograms.
  bool inbox_histogram = true;
};

class Engine;

// Requests submitted together wake each engine once (docs/design.md,
// "Waves"): a request submitted with a SubmitBatch reaches its engine's
// queue at once, in order with everything else submitted to the volume,
// but the engine is woken only by Flush() (or the destructor), once per
// engine. Never keep one unflushed around anything that waits for an engine
// (SubmitAndWait would deadlock). Not thread-safe: one per submitting
// thread at a time.
class SubmitBatch {
 public:
  // `poll_after`: the submitter gains from a short latency more than from a
  // free core (an NBD connection's thread): with EngineOptions::poll_us the
  // engine polls for more work after these requests, and only after such.
  explicit SubmitBatch(bool poll_after = false) : poll_after_(poll_after) {}
  ~SubmitBatch() { Flush(); }
  SubmitBatch(const SubmitBatch&) = delete;
  SubmitBatch& operator=(const SubmitBatch&) = delete;

  // Wakes the engines this batch submitted to.
  void Flush();
  bool poll_after() const { return poll_after_; }

 private:
  friend class Engine;
  const bool poll_after_;
  std::vector<Engine*> to_wake_;
};

class Engine {
  // Only Start constructs an Engine: the constructor is public for
  // std::make_unique, and callable only with this private key.
  struct Passkey {
    explicit Passkey() = default;
  };

 public:
  static absl::StatusOr<std::unique_ptr<Engine>> Start(const EngineOptions& options);
  explicit Engine(Passkey);
  // Stops the thread after every volume was closed. REQUIRES: no volumes.
  ~Engine();

  // Moves `file` onto this engine. The returned pointer stays valid until
  // CloseVolume; use it only with Submit and the thread-safe stats().
  absl::StatusOr<Volume*> OpenVolume(std::unique_ptr<cow::CowFile> file,
                                     const VolumeOptions& options);
  // Waits until the volume's requests completed, then closes its files.
  void CloseVolume(Volume* volume);
  // Queues `req` for `volume` (which must belong to this engine) and wakes
  // the engine, or leaves the wake-up to `batch` when there is one.
  void Submit(Volume* volume, Request* req, SubmitBatch* batch = nullptr);
  // Runs `fn` on the engine thread (tests, administrative work). It may
  // run before requests submitted earlier reach their volume.
  void Post(std::function<void()> fn);
  // Runs `fn` on the engine thread after every request submitted to this
  // engine before the call was handed to its volume (Volume::Submit), and
  // before any submitted after it: a marker in the stream of requests (a
  // snapshot's moment, snapshot.h).
  void PostAfterSubmitted(std::function<void()> fn);
  // Backend operations in flight (approximate when read from outside);
  // not those a wrap_io backend keeps from the backend.
  size_t io_in_flight() const;
  // Requests handed to Submit that the engine thread has not taken from its
  // inbox yet (approximate when read from outside).
  size_t inbox_depth() const { return inbox_depth_.load(std::memory_order_relaxed); }
  // How long each request waited in the inbox, from Submit until the engine
  // thread took it (empty with EngineOptions::inbox_histogram off). Written
  // by the engine thread; any thread may read it.
  const LatencyHistogram& inbox_wait() const { return inbox_wait_; }
  // The backend this engine runs: "uring" or "threads" (LoopIo::name).
  const char* io_backend() const { return backend_->name(); }
  // Calls `fn` with every open volume, under a lock that only opening and
  // closing a volume also take (never the I/O path), so each volume stays
  // alive during its call. `fn` must be quick and must not call into this
  // engine. Any thread (metrics scrapes).
  void ForEachVolume(const std::function<void(const Volume&)>& fn) const;

 private:
  friend class SubmitBatch;
  void Run();

  // SubmitBatch's wake-up, once per engine when the batch is flushed.
  void WakeForBatch();

  VolumeIoSink sink_;
  std::unique_ptr<LoopIo> backend_;  // UringIo or ThreadsIo
  // EngineOptions::wrap_io's backend around backend_, or null. Destroyed
  // explicitly after the thread ended (it may post to this engine).
  std::unique_ptr<IoBackend> wrapped_;
  IoBackend* io_ = nullptr;  // what the volumes submit to: wrapped_ or backend_
  BatchEnds batch_ends_;  // engine thread only
  std::thread thread_;

  // Polls for up to poll_ns_ (EngineOptions::poll_us); true if the inbox
  // got work meanwhile (completions are left to the ring's Poll).
  bool PollBriefly();
  // Wakes the engine thread unless it is polling (REQUIRES mu_ not held).
  void WakeUnlessPolling();

  int64_t poll_ns_ = 0;
  int64_t idle_ewma_ns_ = 0;  // engine thread: moving average of idle spells
  bool poll_after_ = false;   // engine thread: the last requests asked for polling
  std::mutex mu_;  // guards the inbox only
  struct Inbound {
    Volume* volume;
    Request* request;
    bool poll_after;  // SubmitBatch::poll_after
    int64_t queued_ns;  // MonotonicNs at Submit, or 0 (inbox_histogram off)
  };
  std::vector<Inbound> inbox_;
  std::vector<std::function<void()>> posted_;
  // PostAfterSubmitted: each runs before inbox_[at] (or after the last).
  struct Ordered {
    size_t at;
    std::function<void()> fn;
  };
  std::vector<Ordered> ordered_;
  bool stop_ = false;
  bool polling_ = false;  // the engine polls: submitters need not wake it
  // Set with the inbox (under mu_), read without the lock while polling.
  std::atomic<bool> work_hint_{false};

  // Changed on the engine thread only, under volumes_mu_ so that
  // ForEachVolume may read it from other threads.
  std::vector<std::unique_ptr<Volume>> volumes_;
  mutable std::mutex volumes_mu_;

  // Engine thread only.
  struct Closing {
    Volume* volume;
    std::function<void()> done;
  };
  std::vector<Closing> closing_;
  std::atomic<size_t> io_in_flight_{0};
  bool inbox_histogram_ = true;             // EngineOptions::inbox_histogram
  std::atomic<size_t> inbox_depth_{0};      // inbox_.size(), set under mu_
  LatencyHistogram inbox_wait_;             // engine thread writes
};

// A fixed set of engines; volumes are placed round-robin.
class EngineGroup {
 public:
  static absl::StatusOr<std::unique_ptr<EngineGroup>> Start(int threads,
                                                             const EngineOptions& options);
  Engine* Pick();
  const std::vector<std::unique_ptr<Engine>>& engines() const { return engines_; }

 private:
  std::vector<std::unique_ptr<Engine>> engines_;
  std::atomic<size_t> next_{0};
};

}  // namespace cowblk::engine

#endif  // COWBLK_SERVER_ENGINE_ENGINE_H_
