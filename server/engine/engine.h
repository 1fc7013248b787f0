// Engine: one thread that owns one io_uring and every volume assigned to it.
// Other threads hand it requests through a queue plus an eventfd that the
// ring itself waits on; completions come back through Request::done on the
// engine thread. EngineGroup spreads volumes over several engines.
//
// Thread-safety: every public method of Engine and EngineGroup may be called
// from any thread. Volume objects are touched only on their engine thread.

#ifndef COWBLK_SERVER_ENGINE_ENGINE_H_
#define COWBLK_SERVER_ENGINE_ENGINE_H_

#include <atomic>
#include <deque>
#include <functional>
#include <memory>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include "absl/status/statusor.h"
#include "server/cow/cow_file.h"
#include "server/engine/request.h"
#include "server/engine/volume.h"

namespace cowblk::engine {

class UringIo;

struct EngineOptions {
  unsigned ring_entries = 256;
  // Debugging aid (cowblkd --debug-hold-bitmap-writes), empty: off. The path
  // of a FIFO: every bitmap block write is parked (logged as event=io_held)
  // until a byte read from the FIFO releases it, oldest first; bytes that
  // arrive while nothing is parked release the next writes at once.
  std::string hold_bitmap_writes_fifo;
  // cowblkd --engine-poll-us: after handling requests with
  // Request::poll_after, the engine thread polls its inbox and its ring
  // this long (microseconds) before it sleeps; requests that come meanwhile
  // need no wake-up (a thread woken on another CPU costs ~20 us on a VM).
  // 0: sleep at once.
  unsigned poll_us = 0;
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
 public:
  static absl::StatusOr<std::unique_ptr<Engine>> Start(const EngineOptions& options);
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
  // Runs `fn` on the engine thread (tests, administrative work).
  void Post(std::function<void()> fn);
  // io_uring operations in flight (approximate when read from outside).
  size_t io_in_flight() const;
  // Calls `fn` with every open volume, under a lock that only opening and
  // closing a volume also take (never the I/O path), so each volume stays
  // alive during its call. `fn` must be quick and must not call into this
  // engine. Any thread (metrics scrapes).
  void ForEachVolume(const std::function<void(const Volume&)>& fn) const;

 private:
  friend class SubmitBatch;
  Engine() = default;
  void Run();
  absl::Status StartHolding(const std::string& fifo);
  void HoldBitmapWrite(std::function<void()> submit);  // engine thread
  void ReleaseHeldWrite();                              // engine thread

  // SubmitBatch's wake-up, once per engine when the batch is flushed.
  void WakeForBatch();

  std::unique_ptr<UringIo> io_;
  VolumeIoSink sink_;
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
  };
  std::vector<Inbound> inbox_;
  std::vector<std::function<void()>> posted_;
  bool stop_ = false;
  bool polling_ = false;  // the engine polls: submitters need not wake it
  // Set with the inbox (under mu_), read without the lock while polling.
  std::atomic<bool> work_hint_{false};

  // Changed on the engine thread only, under volumes_mu_ so that
  // ForEachVolume may read it from other threads.
  std::vector<std::unique_ptr<Volume>> volumes_;
  mutable std::mutex volumes_mu_;

  // Held bitmap writes (EngineOptions::hold_bitmap_writes_fifo). A thread
  // reads the FIFO and posts one release per byte.
  int hold_fd_ = -1;
  int hold_stop_fd_ = -1;  // eventfd that ends the reader thread
  std::thread hold_thread_;
  std::deque<std::function<void()>> held_;  // engine thread only
  uint64_t hold_credit_ = 0;                // engine thread only

  // Engine thread only.
  struct Closing {
    Volume* volume;
    std::function<void()> done;
  };
  std::vector<Closing> closing_;
  std::atomic<size_t> io_in_flight_{0};
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
