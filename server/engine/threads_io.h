// ThreadsIo: the LoopIo (loop_io.h) for hosts where io_uring is refused, as
// QEMU's aio=threads: a fixed pool of worker threads runs each operation
// with the plain syscall (pread, pwrite, fdatasync, fallocate(PUNCH_HOLE |
// KEEP_SIZE)) and reports what it returned (bytes, possibly short, or
// -errno), as an io_uring completion would. Timeouts never reach a worker:
// the engine thread keeps them and Poll() waits until the earliest expires
// (a kTimeout completes 0 after `len` ns, or -ECANCELED when a
// kTimeoutRemove finds it; the remove completes 0, or -ENOENT).
//
// Reads the page cache holds (RWF_NOWAIT succeeds, never on an O_DIRECT
// descriptor) are done on the engine thread instead, as io_uring does them
// inline when it submits: a hand-off to a worker and back costs ~20 us on a
// VM, the copy of 4 KiB well under 1. Their completions still come from
// the next Poll(), never from Submit().
//
// Workers run operations concurrently and complete them in any order; the
// engine orders what must be ordered (docs/design.md) by submitting an
// operation only after the completions it depends on, as it does on
// io_uring. Completions reach the sink only on the engine thread, from
// Poll(): workers queue them and signal one eventfd, the same one Wake()
// signals, so the engine thread waits on one descriptor for both.
//
// Bounds: `workers` threads, started in Create, never one per operation.
// The queue holds what the engine submitted and has not completed, which
// its callers bound (per stream --max-in-flight, per server
// --max-server-bytes), as they bound UringIo's overflow.
//
// Thread-safety: owned and used by one engine thread; Wake() from any
// thread. The workers touch only the queues, under their mutexes.

#ifndef COWBLK_SERVER_ENGINE_THREADS_IO_H_
#define COWBLK_SERVER_ENGINE_THREADS_IO_H_

#include <atomic>
#include <condition_variable>
#include <cstdint>
#include <deque>
#include <map>
#include <memory>
#include <mutex>
#include <thread>
#include <vector>

#include "absl/status/statusor.h"
#include "server/engine/loop_io.h"

namespace cowblk::engine {

class ThreadsIo : public LoopIo {
  struct Passkey {
    explicit Passkey() = default;
  };

 public:
  // Starts `workers` threads (1 or more); an error when one cannot be
  // started (no thread is left running then).
  static absl::StatusOr<std::unique_ptr<ThreadsIo>> Create(unsigned workers, IoSink* sink);
  ThreadsIo(Passkey, IoSink* sink) : sink_(sink) {}
  // Stops the workers after the operations they are running.
  // REQUIRES: in_flight() == 0 (the engine stops only then).
  ~ThreadsIo() override;

  void Submit(const IoOp& op) override;
  size_t in_flight() const override { return in_flight_; }

  bool Poll() override;
  void SubmitQueued() override;
  unsigned delivered() const override { return delivered_; }
  bool CompletionsReady() override;
  const char* name() const override { return "threads"; }
  size_t workers() const { return workers_.size(); }

 private:
  struct Done {
    uint64_t user_data;
    int32_t result;
  };
  void Work();
  void StopWorkers();
  // A read of a descriptor without O_DIRECT, tried on the engine thread
  // with RWF_NOWAIT: true when it completed from the page cache (queued
  // in local_done_), false when a worker must do it.
  bool ReadInline(const IoOp& op);
  // Nanoseconds until the earliest timeout, 0 when one expired, -1: none.
  int64_t NextTimeoutNs() const;

  IoSink* sink_;
  std::vector<std::thread> workers_;

  // Engine thread only.
  size_t in_flight_ = 0;
  unsigned delivered_ = 0;
  std::vector<IoOp> pending_;           // submitted, not yet handed to workers
  std::vector<Done> local_done_;        // completed on the engine thread (timers)
  std::map<uint64_t, int64_t> timers_;  // kTimeout user_data -> deadline (monotonic ns)

  std::mutex work_mu_;
  std::condition_variable work_cv_;
  std::deque<IoOp> work_;  // guarded by work_mu_
  bool stop_ = false;      // guarded by work_mu_

  std::mutex done_mu_;
  std::vector<Done> done_;               // guarded by done_mu_
  std::atomic<bool> done_ready_{false};  // done_ is not empty
};

}  // namespace cowblk::engine

#endif  // COWBLK_SERVER_ENGINE_THREADS_IO_H_
