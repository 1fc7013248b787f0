// HandOff (common/handoff.h) under ThreadSanitizer: a Receive() happens-after
// every Publish() before it, also when two threads published, one after the
// other, with no order between them that TSan sees. The order between the
// threads here is made with relaxed atomics, which carry none, as gRPC's
// does from inside uninstrumented libgrpc. With Publish() a release store,
// the receiver's reads of what the first publisher wrote are a data race
// for TSan (make test runs this under TSan: the `core` label); in other
// builds the test shows the order of values only.

#include <atomic>
#include <thread>

#include "common/handoff.h"
#include "gtest/gtest.h"

namespace cowblk {
namespace {

TEST(HandOffTest, AReceiveHappensAfterThePublishesOfTwoThreads) {
  struct Shared {
    int first = 0;   // written by the first publisher
    int second = 0;  // written by the second
    HandOff handoff;
  } shared;
  std::atomic<int> stage{0};  // relaxed: an order TSan does not see

  std::thread first([&] {
    shared.first = 1;
    shared.handoff.Publish();
    stage.store(1, std::memory_order_relaxed);
  });
  std::thread second([&] {
    while (stage.load(std::memory_order_relaxed) < 1) std::this_thread::yield();
    shared.second = 2;
    shared.handoff.Publish();
    stage.store(2, std::memory_order_relaxed);
  });
  while (stage.load(std::memory_order_relaxed) < 2) std::this_thread::yield();
  shared.handoff.Receive();
  EXPECT_EQ(shared.first, 1);
  EXPECT_EQ(shared.second, 2);
  first.join();
  second.join();
}

}  // namespace
}  // namespace cowblk
