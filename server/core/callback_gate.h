// A thread that calls objects back outside its lock, and the wait that lets
// an object leave only once no callback of it runs: Budget's waiters and
// SendWatchdog's streams.
//
// Thread-safety: every method is called with the owner's mutex held, through
// `lock` (Call releases it around the callback).

#ifndef COWBLK_SERVER_CORE_CALLBACK_GATE_H_
#define COWBLK_SERVER_CORE_CALLBACK_GATE_H_

#include <condition_variable>
#include <mutex>
#include <thread>
#include <utility>

namespace cowblk::core {

class CallbackGate {
 public:
  // Runs `callback`, the one of `who`, with `lock` released.
  template <typename F>
  void Call(std::unique_lock<std::mutex>& lock, const void* who, F&& callback) {
    calling_ = who;
    lock.unlock();
    std::forward<F>(callback)();
    lock.lock();
    calling_ = nullptr;
    returned_.notify_all();
  }
  // Returns once no callback of `who` runs. At once on `calling_thread`
  // (the thread that calls back): there it is a callback that asks.
  void WaitOut(std::unique_lock<std::mutex>& lock, const void* who,
               std::thread::id calling_thread) {
    if (std::this_thread::get_id() == calling_thread) return;
    returned_.wait(lock, [&] { return calling_ != who; });
  }

 private:
  const void* calling_ = nullptr;  // whose callback runs
  std::condition_variable returned_;
};

}  // namespace cowblk::core

#endif  // COWBLK_SERVER_CORE_CALLBACK_GATE_H_
