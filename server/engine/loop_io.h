// LoopIo: the I/O backend an engine thread waits on. Its Poll() is the
// engine loop's one wait: it returns on a completion, a timeout's expiry or
// a Wake() from any thread (a request in the inbox). Two implementations:
// UringIo (io_uring; an eventfd read in the ring carries the wake-ups) and
// ThreadsIo (a pool of worker threads, as QEMU's aio=threads; completions
// and wake-ups signal one eventfd the engine thread waits on).
//
// Which one an engine runs: IoBackendKind, chosen per process
// (cowblkd --io-backend auto|uring|threads; docs/cowblkd.md).
//
// Thread-safety: owned and used by one engine thread; Wake() is the only
// method other threads may call.

#ifndef COWBLK_SERVER_ENGINE_LOOP_IO_H_
#define COWBLK_SERVER_ENGINE_LOOP_IO_H_

#include <string>

#include "server/engine/io.h"

namespace cowblk::engine {

class LoopIo : public IoBackend {
 public:
  // Hands what is queued to the kernel (or the workers) and waits for at
  // least one completion or a Wake(), then delivers every completion ready
  // to the sink. Returns false when the backend failed (fatal for the
  // engine).
  virtual bool Poll() = 0;
  // Hands what is queued on without waiting (the engine's polling).
  virtual void SubmitQueued() = 0;
  // Completions the last Poll() delivered.
  virtual unsigned delivered() const = 0;
  // Completions are waiting to be delivered (owning thread).
  virtual bool CompletionsReady() = 0;
  // Makes a concurrent or the next Poll return: a write to wake_fd_. Any
  // thread.
  void Wake();
  // Consumes a pending wake-up (engine thread, after Poll returned).
  bool TakeWake();
  // "uring" or "threads": the metric label and the serving log's field.
  virtual const char* name() const = 0;

  // Closes wake_fd_.
  ~LoopIo() override;

 protected:
  // The eventfd Wake() writes and Poll waits on, made by the derived
  // class's Create; closed after the derived class's destructor.
  int wake_fd_ = -1;
  bool woken_ = false;  // Poll saw a wake-up (or a completion's signal)
};

enum class IoBackendKind {
  kAuto,     // io_uring, or threads when io_uring_setup is refused
  kUring,    // io_uring only: refused is an error
  kThreads,  // worker threads; never touches io_uring
};

// "auto", "uring", "threads" (the flag's values); false for anything else.
bool ParseIoBackend(const std::string& text, IoBackendKind* out);

// What kAuto resolves to on this host: kUring unless io_uring_setup is
// refused (EPERM: a seccomp profile or kernel.io_uring_disabled; ENOSYS: a
// kernel or profile without it; EACCES), then kThreads and `*refused_errno`
// says why. Other kinds are returned unchanged, and so is kUring on another
// failure (the engine's start reports it). Creates and closes a one-slot
// ring.
IoBackendKind ResolveIoBackend(IoBackendKind wanted, int* refused_errno);

}  // namespace cowblk::engine

#endif  // COWBLK_SERVER_ENGINE_LOOP_IO_H_
