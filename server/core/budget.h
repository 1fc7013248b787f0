// The server-wide byte budget of requests in flight: every Pipeline (gRPC
// Session and unary calls, NBD connections) takes its calls' buffer bytes
// from one Budget and gives them back when the transport is done with them
// (the answer sent or dropped). Per-stream caps stay in the pipeline
// (PipelineOptions::max_bytes); this is the cap over all of them
// (--max-server-bytes), and a hard one: the total never passes the limit.
//
// Fairness: a pipeline with calls in flight may take another only while
// the total stays within the limit minus a reserve (an eighth of the
// limit); a pipeline with nothing in flight may use the reserve too, up to
// the limit. So a client that reads its answers makes progress however many
// others hold theirs unread, as long as those holders leave the reserve free
// for it (a stream that never reads its answers is cut by the transport's
// send timeout, --grpc-send-timeout-seconds, --nbd-send-timeout-seconds).
// A request that does not fit waits (TryTake says no) like any other.
//
// A transport told "no room" stops reading its peer and is called back
// (Waiter::OnBudgetRoom) once bytes came back. Callbacks run on the
// budget's own thread, never under a lock of whoever gave the bytes back,
// so a waiter may take its own locks.
//
// Thread-safety: every method may be called from any thread.

#ifndef COWBLK_SERVER_CORE_BUDGET_H_
#define COWBLK_SERVER_CORE_BUDGET_H_

#include <atomic>
#include <condition_variable>
#include <cstdint>
#include <deque>
#include <mutex>
#include <thread>

#include "server/core/callback_gate.h"
#include "server/core/in_flight_gauges.h"

namespace cowblk::core {

class Budget {
 public:
  class Waiter {
   public:
    virtual ~Waiter() = default;
    // The budget has room again. Runs on the budget's thread.
    virtual void OnBudgetRoom() = 0;

   private:
    friend class Budget;
    bool queued_ = false;  // guarded by Budget::mu_
  };

  // `limit` bytes in flight over the whole server.
  explicit Budget(uint64_t limit);
  // REQUIRES: no pipeline uses it any more.
  ~Budget();
  Budget(const Budget&) = delete;
  Budget& operator=(const Budget&) = delete;

  // Whether a pipeline that holds calls may take another: the total is
  // below the limit minus the reserve. If not, `waiter` is called back once
  // it is (counted in waits(); a waiter already waiting is not queued
  // twice).
  bool RoomOrWait(Waiter* waiter);
  // Counts `bytes` as in flight if they fit: under the limit minus the
  // reserve when the caller `holds` calls already, under the limit when not.
  // If they do not, takes nothing and `waiter` is called back once bytes
  // came back (counted in waits() like RoomOrWait).
  bool TryTake(uint64_t bytes, bool holds, Waiter* waiter);
  // Gives back `bytes` taken before; wakes the waiters.
  void Give(uint64_t bytes);
  // `waiter` is no longer called back; once this returns, no callback of it
  // runs (it waits for one running on another thread).
  void Cancel(Waiter* waiter);

  uint64_t limit() const { return limit_; }
  // Bytes in flight now, and how often a pipeline began to wait (asking
  // again while it waits does not count).
  uint64_t used() const { return used_.load(std::memory_order_relaxed); }
  uint64_t waits() const { return waits_.load(std::memory_order_relaxed); }
  // The same bytes, and the calls holding them, by transport: every
  // Pipeline with this budget counts its calls there (in_flight_gauges.h).
  InFlightGauges& in_flight() { return in_flight_; }
  const InFlightGauges& in_flight() const { return in_flight_; }

 private:
  bool BelowLineLocked() const;
  void WaitLocked(Waiter* waiter);
  void Run();

  const uint64_t limit_;
  const uint64_t line_;  // limit_ minus the reserve
  std::atomic<uint64_t> used_{0};
  std::atomic<uint64_t> waits_{0};
  InFlightGauges in_flight_;

  std::mutex mu_;  // guards below, and Waiter::queued_
  std::condition_variable cv_;
  CallbackGate gate_;  // the waiter whose callback runs
  std::deque<Waiter*> waiting_;
  bool wake_ = false;            // waiters are due a callback
  bool stop_ = false;
  std::thread thread_;  // calls the waiters back; named cowblk-budget
};

}  // namespace cowblk::core

#endif  // COWBLK_SERVER_CORE_BUDGET_H_
