// gRPC's hand-off of a callback reactor between its threads, restated where
// ThreadSanitizer can see it.
//
// gRPC builds a reactor on the thread that received the call (the method
// handler) and runs its reactions (OnReadDone, OnWriteDone, OnCancel,
// OnDone) on any of its threads. It orders them: no reaction starts before
// the handler that built the reactor returned. It does so with its own
// atomics and locks inside libgrpc, which Debian does not build with
// -fsanitize=thread, so TSan does not see that ordering: the first reaction
// on another thread (OnCancel locking the reactor's mutex, say) looks as if
// it raced with the constructor that built the mutex. That report is a false
// positive, and it is ours to silence, not to suppress: a suppression of
// the reactor's frames would hide real races in them too.
//
// The reactor's constructor ends with Publish() (a release store); each
// reaction that may run first on a thread begins with Receive() (an acquire
// load of it). A reaction then happens-after the whole construction, for
// TSan as for the C++ memory model. On x86-64 both are plain moves.
//
// Thread-safety: Publish() once, from the constructing thread; Receive()
// from any thread.

#ifndef COWBLK_SERVER_TRANSPORT_GRPC_REACTOR_HANDOFF_H_
#define COWBLK_SERVER_TRANSPORT_GRPC_REACTOR_HANDOFF_H_

#include <atomic>

namespace cowblk::rpc {

class ReactorHandOff {
 public:
  // The reactor is built: its reactions may run on other threads.
  void Publish() { built_.store(true, std::memory_order_release); }
  // In a reaction, before touching the reactor's state.
  void Receive() const { (void)built_.load(std::memory_order_acquire); }

 private:
  std::atomic<bool> built_{false};
};

}  // namespace cowblk::rpc

#endif  // COWBLK_SERVER_TRANSPORT_GRPC_REACTOR_HANDOFF_H_
