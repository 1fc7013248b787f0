// Cuts streams whose client takes no answers: each watched stream notes
// when its outstanding answer write began (WriteStarted) and when it
// completed (WriteDone); a thread (cowblk-sendwd) looks each second and
// calls OnSendTimeout, once, on a stream whose write has been outstanding
// for `timeout` (--grpc-send-timeout-seconds). The stream then ends itself
// (gRPC: ServerContext::TryCancel), and its calls' bytes go back to the
// byte budget (budget.h) as its writes fail.
//
// Lifetime: a stream is watched from Watch until Unwatch; once Unwatch
// returns, no OnSendTimeout of it runs (it waits for one running on another
// thread; from the callback itself it returns at once). Callbacks run with
// no lock of the watchdog held.
//
// Thread-safety: every method may be called from any thread.

#ifndef COWBLK_SERVER_CORE_SEND_WATCHDOG_H_
#define COWBLK_SERVER_CORE_SEND_WATCHDOG_H_

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <mutex>
#include <thread>
#include <unordered_set>

#include "server/core/callback_gate.h"

namespace cowblk::core {

class SendWatchdog {
 public:
  class Watched {
   public:
    virtual ~Watched() = default;
    // An answer write began, or completed (no write outstanding).
    void WriteStarted();
    void WriteDone() { started_ns_.store(0, std::memory_order_relaxed); }
    // The write began `timeout` ago and has not completed: end the stream.
    // On the watchdog's thread; once per stream.
    virtual void OnSendTimeout() = 0;

   private:
    friend class SendWatchdog;
    std::atomic<int64_t> started_ns_{0};  // steady clock; 0: none outstanding
    bool fired_ = false;                  // guarded by SendWatchdog::mu_
  };

  // A zero `timeout` watches nothing (no thread).
  explicit SendWatchdog(std::chrono::seconds timeout);
  // REQUIRES: nothing watched any more.
  ~SendWatchdog();
  SendWatchdog(const SendWatchdog&) = delete;
  SendWatchdog& operator=(const SendWatchdog&) = delete;

  void Watch(Watched* w);
  void Unwatch(Watched* w);
  // Streams cut so far (cowblk_grpc_send_timeouts_total).
  uint64_t timeouts() const { return timeouts_.load(std::memory_order_relaxed); }

 private:
  void Run();

  const std::chrono::seconds timeout_;
  std::atomic<uint64_t> timeouts_{0};
  std::mutex mu_;  // guards below, and Watched::fired_
  std::condition_variable cv_;
  CallbackGate gate_;  // the stream whose OnSendTimeout runs
  std::unordered_set<Watched*> watched_;
  bool stop_ = false;
  std::thread thread_;
};

}  // namespace cowblk::core

#endif  // COWBLK_SERVER_CORE_SEND_WATCHDOG_H_
