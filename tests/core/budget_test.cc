// core::Budget and its use by core::Pipeline, in process: the line below
// the limit, the call back of a waiter once bytes return (on the budget's
// thread, never twice queued), Cancel, a pipeline with nothing in flight
// that may use the reserve, and the hard cap: the total never passes the
// limit, a first request that does not fit waits too.

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
  ASSERT_TRUE(budget.TryTake(699, /*holds=*/true, &w));
  EXPECT_TRUE(budget.RoomOrWait(&w));
  ASSERT_TRUE(budget.TryTake(1, /*holds=*/true, &w));
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
  ASSERT_TRUE(budget.TryTake(8, /*holds=*/false, &other));
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

TEST(BudgetTest, TheTotalNeverPassesTheLimit) {
  Budget budget(800);  // the line: 700
  CountingWaiter holder, first;
  EXPECT_FALSE(budget.TryTake(701, /*holds=*/true, &holder));  // past the line
  EXPECT_TRUE(budget.TryTake(700, /*holds=*/true, &holder));
  EXPECT_FALSE(budget.TryTake(101, /*holds=*/false, &first));  // past the limit
  EXPECT_EQ(budget.used(), 700u);
  EXPECT_EQ(budget.waits(), 2u);
  EXPECT_TRUE(budget.TryTake(100, /*holds=*/false, &first));  // the reserve, up to the limit
  EXPECT_EQ(budget.used(), 800u);
  EXPECT_FALSE(budget.TryTake(1, /*holds=*/false, &first));
  budget.Give(100);
  first.Wait(1);  // called back once bytes came back
  EXPECT_TRUE(budget.TryTake(100, /*holds=*/false, &first));
  budget.Give(800);
  EXPECT_EQ(budget.used(), 0u);
}

// A pipeline holding calls waits for the budget at the line; one holding
// none may use the reserve, and waits (called back) only past the limit.
TEST(BudgetTest, APipelineWithNothingInFlightUsesTheReserveButNotMore) {
  Budget budget(64);  // the line: 56
  NullSink sink;
  std::mutex mu;
  std::condition_variable cv;
  int room_calls = 0;
  PipelineOptions hog_options, idle_options;
  hog_options.budget = idle_options.budget = &budget;
  idle_options.on_budget_room = [&] {
    std::lock_guard<std::mutex> lock(mu);
    ++room_calls;
    cv.notify_all();
  };
  Pipeline hog(&sink, hog_options), idle(&sink, idle_options);
  Call* held = hog.Begin(1, 56);
  ASSERT_NE(held, nullptr);
  EXPECT_EQ(budget.used(), 56u);
  EXPECT_FALSE(hog.HasRoom());
  EXPECT_TRUE(idle.HasRoom());
  EXPECT_EQ(idle.Begin(2, 9), nullptr);  // 65 bytes would pass the limit
  EXPECT_FALSE(idle.HasRoom());           // until the budget calls back
  EXPECT_EQ(budget.used(), 56u);
  Call* one = idle.Begin(3, 8);  // asking again is allowed; the reserve fits it
  ASSERT_NE(one, nullptr);
  EXPECT_EQ(budget.used(), 64u);
  idle.Finish(one);
  {
    std::unique_lock<std::mutex> lock(mu);
    cv.wait(lock, [&] { return room_calls >= 1; });
  }
  EXPECT_TRUE(idle.HasRoom());
  hog.Finish(held);
  EXPECT_EQ(budget.used(), 0u);
  EXPECT_TRUE(hog.HasRoom());
  idle.StopWaiting();
}

// A request larger than the limit takes nothing: it is refused alone.
TEST(BudgetTest, ARequestOverTheLimitTakesNothing) {
  Budget budget(64);
  NullSink sink;
  PipelineOptions options;
  options.budget = &budget;
  Pipeline p(&sink, options);
  Call* big = p.Begin(1, 65);
  ASSERT_NE(big, nullptr);
  EXPECT_EQ(budget.used(), 0u);
  p.Finish(big);
  EXPECT_EQ(budget.used(), 0u);
}

}  // namespace
}  // namespace cowblk::core
