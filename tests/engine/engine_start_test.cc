// Engine::Start when its I/O backend cannot be set up: an io_uring refused
// (as under a container runtime whose seccomp profile leaves out the
// io_uring_* system calls, with --io-backend uring) or worker threads that
// cannot start: an error that cowblkd reports as engine_failed, not a
// crash. (cowblkd's fallback where io_uring is refused for real:
// tests/integration/server_io_backend_test.cc.)
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

TEST(EngineStartTest, TheThreadsBackendNeedsNoRing) {
  EngineOptions options;
  options.io_backend = IoBackendKind::kThreads;
  options.ring_entries = 0;  // would fail any io_uring
  auto engine = Engine::Start(options);
  ASSERT_TRUE(engine.ok()) << engine.status();
  EXPECT_STREQ((*engine)->io_backend(), "threads");
}

TEST(EngineStartTest, ReturnsAnErrorWhenNoIoWorkerCanRun) {
  EngineOptions options;
  options.io_backend = IoBackendKind::kThreads;
  options.io_threads = 0;
  auto engine = Engine::Start(options);
  ASSERT_FALSE(engine.ok());
  EXPECT_THAT(std::string(engine.status().message()), HasSubstr("0 workers"));
}

TEST(EngineStartTest, AutoRunsIoUringWhereItIsAllowed) {
  auto engine = Engine::Start(EngineOptions{});
  ASSERT_TRUE(engine.ok()) << engine.status();
  EXPECT_STREQ((*engine)->io_backend(), "uring");
}

}  // namespace
}  // namespace cowblk::engine
