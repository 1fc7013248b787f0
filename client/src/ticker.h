// A thread that runs registered functions every `period` while any of them
// has work; idle, it sleeps until Kick(). Open volumes use it for deadlines,
// delayed retries and reconnect backoff, so no request needs a timer or a
// thread of its own.
//
// Thread-safety: every method is thread-safe. Functions run on the ticker's
// thread, one at a time.

#ifndef COWBLK_CLIENT_SRC_TICKER_H_
#define COWBLK_CLIENT_SRC_TICKER_H_

#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <functional>
#include <map>
#include <mutex>
#include <thread>

namespace cowblk::internal {

class Ticker {
 public:
  using Clock = std::chrono::steady_clock;
  // Returns true while it has work (deadlines to watch, retries to send).
  using Fn = std::function<bool(Clock::time_point now)>;

  explicit Ticker(std::chrono::milliseconds period);
  // Stops and joins the thread. REQUIRES: every function was removed.
  ~Ticker();
  Ticker(const Ticker&) = delete;
  Ticker& operator=(const Ticker&) = delete;

  // Registers `fn`; returns its id for Remove().
  uint64_t Add(Fn fn);
  // Unregisters; if the function is running, waits until it returned.
  // REQUIRES: not called from a registered function.
  void Remove(uint64_t id);
  // Wakes the thread: some function has work again.
  void Kick();

 private:
  void Run();

  const std::chrono::milliseconds period_;
  std::mutex mu_;  // guards everything below
  std::condition_variable cv_;
  std::map<uint64_t, Fn> fns_;
  uint64_t next_id_ = 1;
  uint64_t running_ = 0;  // id of the function running now, 0 if none
  bool kicked_ = false;
  bool idle_ = false;  // waiting for a Kick(), not for the next period
  bool stop_ = false;
  std::thread thread_;  // last: starts after the fields above exist
};

}  // namespace cowblk::internal

#endif  // COWBLK_CLIENT_SRC_TICKER_H_
