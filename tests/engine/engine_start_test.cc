// Engine::Start when the io_uring cannot be set up, as under a container
// runtime whose seccomp profile leaves out the io_uring_* system calls: an
// error that cowblkd reports as engine_failed, not a crash.
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "server/engine/engine.h"

namespace cowblk::engine {
namespace {

using ::testing::HasSubstr;

TEST(EngineStartTest, ReturnsAnErrorWhenTheRingCannotBeSetUp) {
  EngineOptions options;
  options.ring_entries = 0;  // io_uring_setup refuses 0 entries (EINVAL)
  auto engine = Engine::Start(options);
  ASSERT_FALSE(engine.ok());
  EXPECT_THAT(std::string(engine.status().message()), HasSubstr("io_uring_queue_init"));
}

}  // namespace
}  // namespace cowblk::engine
