// A hand-off between threads that ThreadSanitizer cannot see, restated where
// it can: for gRPC's callback reactors (cowblkd's SessionReactor, libcowblk's
// SessionCall, the tests' FakeServer). Header-only.
//
// A reactor is built on one thread (a server's method handler; the client
// thread that starts a stream) and gRPC runs its reactions (OnReadDone,
// OnWriteDone, OnCancel, OnDone) on any of its threads. It orders them: no
// reaction starts before the reactor was handed to it (the handler returned;
// StartCall). It does so with its own atomics and locks inside libgrpc,
// which Debian does not build with -fsanitize=thread, so TSan does not see
// that ordering: the first reaction on another thread (OnCancel locking the
// reactor's mutex, say) looks as if it raced with the constructor that built
// the mutex. That report is a false positive, and it is ours to silence, not
// to suppress: a suppression of the reactor's frames would hide real races
// in them too.
//
// The thread that built the reactor calls Publish() (a release) before
// handing it to gRPC; each reaction that may run first on a thread begins
// with Receive() (an acquire load of it). A reaction then happens-after all
// that thread did before, for TSan as for the C++ memory model.
//
// Publish() is an atomic exchange, not a store, because it may run on two
// threads at once: an interceptor's batches overlap (the completion op's
// POST_RECV_CLOSE runs beside a pending read's batch). A release store
// replaces what the flag carries, so a later Receive() would happen-after
// the last Publish() only, not the one on the other thread (TSan reported
// exactly that: ~MetricsInterceptor freeing memory "racing" with a Publish
// it had not received). Read-modify-writes continue the release sequence:
// Receive() then happens-after every Publish() before it. On x86-64 a
// Receive() is a plain move and a Publish() a locked exchange.
//
// Thread-safety: Publish() and Receive() from any thread.

#ifndef COWBLK_COMMON_HANDOFF_H_
#define COWBLK_COMMON_HANDOFF_H_

#include <atomic>

namespace cowblk {

class HandOff {
 public:
  // The reactor is built: its reactions may run on other threads.
  void Publish() { (void)built_.exchange(true, std::memory_order_acq_rel); }
  // In a reaction, before touching the reactor's state.
  void Receive() const { (void)built_.load(std::memory_order_acquire); }

 private:
  std::atomic<bool> built_{false};
};

}  // namespace cowblk

#endif  // COWBLK_COMMON_HANDOFF_H_
