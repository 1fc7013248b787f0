// Counts the RPCs in progress so a drain can end as soon as the last one is
// done (gRPC's own Shutdown(deadline) waits out the whole deadline while any
// client keeps an idle connection open), and refuses new ones while
// draining.
//
// Thread-safety: all methods are thread-safe.

#ifndef COWBLK_SERVER_SERVICE_CALL_TRACKER_H_
#define COWBLK_SERVER_SERVICE_CALL_TRACKER_H_

#include <grpcpp/support/status.h>

#include <chrono>
#include <condition_variable>
#include <mutex>

namespace cowblk::service {

class CallTracker {
 public:
  // Registers a call; false (register nothing) once draining.
  bool Begin();
  void End();
  void StartDraining();
  bool draining() const;
  // Waits until no call is in progress or `deadline`; true when idle.
  bool WaitIdle(std::chrono::steady_clock::time_point deadline);

  static grpc::Status Refusal() {
    return grpc::Status(grpc::StatusCode::UNAVAILABLE, "the server is shutting down");
  }

 private:
  mutable std::mutex mu_;
  std::condition_variable idle_;
  int active_ = 0;
  bool draining_ = false;
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

}  // namespace cowblk::service

#endif  // COWBLK_SERVER_SERVICE_CALL_TRACKER_H_
