// core::Budget and its use by core::Pipeline, in process: the line below
// the limit, the call back of a waiter once bytes return (on the budget's
// thread, never twice queued), Cancel, and a pipeline with nothing in
// flight that always has room.

#include <condition_variable>
#include <mutex>
#include <thread>

#include "gtest/gtest.h"
#include "server/core/budget.h"
#include "server/core/pipeline.h"

namespace cowblk::core {
namespace {

class CountingWaiter : public Budget::Waiter {
 public:
  void OnBudgetRoom() override {
    std::lock_guard<std::mutex> lock(mu_);
    ++calls_;
    thread_ = std::this_thread::get_id();
    cv_.notify_all();
  }
  // Waits for the `n`th call back.
  void Wait(int n) {
    std::unique_lock<std::mutex> lock(mu_);
    cv_.wait(lock, [&] { return calls_ >= n; });
  }
  int calls() {
    std::lock_guard<std::mutex> lock(mu_);
    return calls_;
  }
  std::thread::id thread() {
    std::lock_guard<std::mutex> lock(mu_);
    return thread_;
  }

 private:
  std::mutex mu_;
  std::condition_variable cv_;
  int calls_ = 0;
  std::thread::id thread_;
};

TEST(BudgetTest, AWaiterIsCalledBackOnceBytesBringTheTotalBelowTheLine) {
  Budget budget(800);  // the line: 700
  CountingWaiter w;
  budget.Take(699);
  EXPECT_TRUE(budget.RoomOrWait(&w));
  budget.Take(1);
  EXPECT_FALSE(budget.RoomOrWait(&w));
  EXPECT_FALSE(budget.RoomOrWait(&w));  // still waiting: queued once
  EXPECT_EQ(budget.waits(), 1u);  // one wait, however often it asked
  EXPECT_EQ(budget.used(), 700u);
  budget.Give(1);
  w.Wait(1);
  EXPECT_NE(w.thread(), std::this_thread::get_id());
  EXPECT_TRUE(budget.RoomOrWait(&w));
  budget.Give(699);
  EXPECT_EQ(budget.used(), 0u);
  EXPECT_EQ(w.calls(), 1);
}

TEST(BudgetTest, ACancelledWaiterIsNotCalledBack) {
  Budget budget(8);
  CountingWaiter cancelled, other;
  budget.Take(8);
  EXPECT_FALSE(budget.RoomOrWait(&cancelled));
  EXPECT_FALSE(budget.RoomOrWait(&other));
  budget.Cancel(&cancelled);
  budget.Give(8);
  other.Wait(1);  // the waiters are called in order: `cancelled` would be first
  EXPECT_EQ(cancelled.calls(), 0);
}

class NullSink : public Pipeline::Sink {
 public:
  void OnAnswered(absl::Span<Call* const>) override {}
};

// A pipeline holding calls waits for the budget; one holding none never
// does, so every client makes progress however full the budget is.
TEST(BudgetTest, APipelineWithNothingInFlightAlwaysHasRoom) {
  Budget budget(64);
  NullSink sink;
  PipelineOptions hog_options, idle_options;
  hog_options.budget = idle_options.budget = &budget;
  Pipeline hog(&sink, hog_options), idle(&sink, idle_options);
  Call* held = hog.Begin(1, 64);
  EXPECT_EQ(budget.used(), 64u);
  EXPECT_FALSE(hog.HasRoom());
  EXPECT_TRUE(idle.HasRoom());
  Call* one = idle.Begin(2, 8);
  EXPECT_FALSE(idle.HasRoom());
  idle.Finish(one);
  hog.Finish(held);
  EXPECT_EQ(budget.used(), 0u);
  EXPECT_TRUE(hog.HasRoom());
}

}  // namespace
}  // namespace cowblk::core
