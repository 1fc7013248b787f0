// Counts the RPCs in progress so a drain can end as soon as the last one is
// done (gRPC's own Shutdown(deadline) waits out the whole deadline while any
// client keeps an idle connection open), and refuses new ones while
// draining.
//
// Thread-safety: all methods are thread-safe.

#ifndef COWBLK_SERVER_TRANSPORT_GRPC_CALL_TRACKER_H_
#define COWBLK_SERVER_TRANSPORT_GRPC_CALL_TRACKER_H_

#include <grpcpp/support/status.h>

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <mutex>
#include <set>

namespace cowblk::rpc {

class CallTracker {
 public:
  // A call that must act when the drain starts (a stream idle in a read
  // would otherwise hold the drain open until its deadline).
  class DrainListener {
   public:
    virtual ~DrainListener() = default;
    // Called once, with the tracker's lock held: must not call back into
    // the tracker (draining() excepted).
    virtual void OnDrain() = 0;
  };

  // Registers a call; false (register nothing) once draining.
  bool Begin();
  void End();
  // Calls OnDrain() of every watched listener.
  void StartDraining();
  bool draining() const { return draining_.load(std::memory_order_acquire); }
  // Watches `l` until Unwatch(l); if draining already, calls OnDrain() at
  // once. Unwatch() returns after any OnDrain() call in progress.
  void Watch(DrainListener* l);
  void Unwatch(DrainListener* l);
  // Waits until no call is in progress or `deadline`; true when idle.
  bool WaitIdle(std::chrono::steady_clock::time_point deadline);

  static grpc::Status Refusal() {
    return grpc::Status(grpc::StatusCode::UNAVAILABLE, "the server is shutting down");
  }

 private:
  mutable std::mutex mu_;
  std::condition_variable idle_;
  int active_ = 0;
  std::atomic<bool> draining_{false};  // written under mu_
  std::set<DrainListener*> listeners_;
};

// Scope guard for synchronous handlers.
class CallScope {
 public:
  explicit CallScope(CallTracker* t) : tracker_(t), ok_(t->Begin()) {}
  ~CallScope() {
    if (ok_) tracker_->End();
  }
  CallScope(const CallScope&) = delete;
  CallScope& operator=(const CallScope&) = delete;
  bool ok() const { return ok_; }

 private:
  CallTracker* tracker_;
  bool ok_;
};

}  // namespace cowblk::rpc

#endif  // COWBLK_SERVER_TRANSPORT_GRPC_CALL_TRACKER_H_
