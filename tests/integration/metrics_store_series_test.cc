// The series of issue #24 (engine side) from a real cowblkd scraped over
// HTTP: each volume's state, ready or error (an error volume has no engine
// series, so only this one tells it exists), the epoch changes a crash
// reports, the data directory's free bytes against statvfs, the fdatasync
// histogram against the flushes issued, and the engine inbox's depth and
// wait against the requests handed to the engine.

#include <signal.h>
#include <sys/statvfs.h>
#include <unistd.h>

#include <algorithm>
#include <cstdint>

#include "gmock/gmock.h"
#include "tests/support/metrics_fixture.h"

namespace cowblk::testing {
namespace {

constexpr uint64_t kMiB = 1 << 20;

class MetricsStoreSeriesTest : public MetricsFixture {};

TEST_F(MetricsStoreSeriesTest, AVolumeInErrorAtStartShowsInTheStateGauge) {
  ASSERT_TRUE(Upload("base", std::string(kMiB, 'b')).ok());
  ASSERT_TRUE(Create("good", kMiB).ok());
  ASSERT_TRUE(Create("header", kMiB).ok());
  ASSERT_TRUE(Create("orphan", 0, "base").ok());
  Scrape before = ScrapeNow();
  for (const char* name : {"good", "header", "orphan"}) {
    EXPECT_EQ(before.Get("cowblk_volume_state", {{"volume", name}, {"state", "ready"}}), 1) << name;
    EXPECT_EQ(before.Get("cowblk_volume_state", {{"volume", name}, {"state", "error"}}), 0) << name;
  }
  ASSERT_EQ(StopServer(), 0);
  // A COW header that cannot be read, and a backing file that is gone.
  WriteFileBytes(dir_.File("volumes/header.cow"), std::string(4096, 'X'));
  ASSERT_EQ(unlink(dir_.File("images/base.img").c_str()), 0);
  ASSERT_NO_FATAL_FAILURE(StartWithMetrics());

  Scrape after = ScrapeNow();
  EXPECT_EQ(after.Get("cowblk_volume_state", {{"volume", "good"}, {"state", "ready"}}), 1);
  EXPECT_EQ(after.Get("cowblk_volume_state", {{"volume", "good"}, {"state", "error"}}), 0);
  for (const char* name : {"header", "orphan"}) {
    EXPECT_EQ(after.Get("cowblk_volume_state", {{"volume", name}, {"state", "ready"}}), 0) << name;
    EXPECT_EQ(after.Get("cowblk_volume_state", {{"volume", name}, {"state", "error"}}), 1) << name;
    // The engine's families know only open volumes: without the state
    // gauge these volumes would not appear at all.
    EXPECT_FALSE(after.Get("cowblk_volume_size_bytes", {{"volume", name}}).has_value()) << name;
  }
  int series = 0;
  after.Sum("cowblk_volume_state", {}, &series);
  EXPECT_EQ(series, 6);  // two per volume, no others
}

// Bits wait for a commit that a 60 s interval never starts on its own, so a
// write is acknowledged and not durable until a flush (client/epoch_test.cc).
TEST_F(MetricsStoreSeriesTest, ACrashThatMayHaveLostWritesCountsAnEpochChange) {
  const std::vector<std::string> deferred = {"--durability", "deferred", "--commit-interval-ms",
                                             "60000"};
  ASSERT_EQ(StopServer(), 0);
  ASSERT_NO_FATAL_FAILURE(StartWithMetrics(deferred));
  ASSERT_TRUE(Create("vm1", kMiB).ok());
  ASSERT_TRUE(Create("vm2", kMiB).ok());
  ASSERT_TRUE(WriteData("vm1", 0, std::string(4096, 'a')).ok());  // acknowledged, not flushed
  EXPECT_EQ(ScrapeNow().Get("cowblk_volume_epoch_changes_total"), 0);

  StopServer(SIGKILL);
  ASSERT_NO_FATAL_FAILURE(StartWithMetrics(deferred));
  ASSERT_NE(server_.log().find("event=volume_epoch_changed"), std::string::npos) << server_.log();
  // Both were left open by a deferred server: each may have lost writes.
  EXPECT_EQ(ScrapeNow().Get("cowblk_volume_epoch_changes_total"), 2);

  ASSERT_EQ(StopServer(), 0);  // closed cleanly: nothing can be lost
  ASSERT_NO_FATAL_FAILURE(StartWithMetrics(deferred));
  EXPECT_EQ(ScrapeNow().Get("cowblk_volume_epoch_changes_total"), 0);
}

TEST_F(MetricsStoreSeriesTest, DataDirFreeBytesSayWhatStatvfsSays) {
  ASSERT_TRUE(Create("vm1", kMiB).ok());
  struct statvfs fs;
  ASSERT_EQ(statvfs(dir_.path().c_str(), &fs), 0);
  const double before = static_cast<double>(fs.f_bavail) * static_cast<double>(fs.f_frsize);
  const double size = static_cast<double>(fs.f_blocks) * static_cast<double>(fs.f_frsize);
  Scrape s = ScrapeNow();
  ASSERT_EQ(statvfs(dir_.path().c_str(), &fs), 0);
  const double after = static_cast<double>(fs.f_bavail) * static_cast<double>(fs.f_frsize);
  // Other processes share the file system: the scrape's figure lies between
  // the test's two readings, give or take what moved while they were taken
  // plus 16 MiB.
  const double slack = std::abs(after - before) + 16.0 * kMiB;
  const auto free_bytes = s.Get("cowblk_data_dir_free_bytes");
  ASSERT_TRUE(free_bytes.has_value());
  EXPECT_GE(*free_bytes, std::min(before, after) - slack);
  EXPECT_LE(*free_bytes, std::max(before, after) + slack);
  EXPECT_GT(*free_bytes, 0);
  EXPECT_EQ(s.Get("cowblk_data_dir_size_bytes"), size);
}

TEST_F(MetricsStoreSeriesTest, EveryFlushAddsOneFdatasyncToTheHistogram) {
  ASSERT_TRUE(Create("vm1", kMiB).ok());
  const Scrape::Labels vm1 = {{"volume", "vm1"}};
  Scrape before = ScrapeNow();
  const double count0 = before.Get("cowblk_fdatasync_duration_seconds_count", vm1).value_or(-1);
  ASSERT_GE(count0, 0);
  constexpr int kFlushes = 5;
  for (int i = 0; i < kFlushes; ++i) ASSERT_TRUE(Flush("vm1").ok()) << i;
  Scrape after = ScrapeNow();
  EXPECT_EQ(after.Get("cowblk_fdatasync_duration_seconds_count", vm1), count0 + kFlushes);
  // One sample per fdatasync the engine counts, each taking some time.
  EXPECT_EQ(after.Get("cowblk_fdatasync_duration_seconds_count", vm1),
            after.Get("cowblk_fsyncs_total", vm1));
  EXPECT_GT(after.Get("cowblk_fdatasync_duration_seconds_sum", vm1).value_or(0),
            before.Get("cowblk_fdatasync_duration_seconds_sum", vm1).value_or(0));
  EXPECT_EQ(after.Get("cowblk_fdatasync_duration_seconds_bucket", {{"volume", "vm1"}, {"le", "+Inf"}}),
            count0 + kFlushes);
}

// Every request reaches the engine through an engine's inbox once: the
// inbox wait histogram grows by the requests the engine completed, and with
// every answer in, nothing is left in the inbox.
TEST_F(MetricsStoreSeriesTest, EveryRequestWaitsInTheEngineInboxOnce) {
  ASSERT_TRUE(Create("vm1", kMiB).ok());
  Scrape before = ScrapeNow();
  const double waits0 = before.Sum("cowblk_engine_inbox_wait_seconds_count");
  const double ops0 = before.Sum("cowblk_io_ops_total");
  const std::string block(4096, 'w');
  for (uint64_t i = 0; i < 8; ++i) ASSERT_TRUE(WriteData("vm1", i * 4096, block).ok()) << i;
  std::string got;
  ASSERT_TRUE(ReadData("vm1", 0, 4096, &got).ok());
  ASSERT_TRUE(Flush("vm1").ok());
  Scrape after = ScrapeNow();
  const double ops = after.Sum("cowblk_io_ops_total") - ops0;
  EXPECT_GE(ops, 10);  // 8 writes, a read, a flush (more if the server split them)
  EXPECT_EQ(after.Sum("cowblk_engine_inbox_wait_seconds_count") - waits0, ops);
  int engines = 0, depths = 0;
  after.Sum("cowblk_uring_inflight", {}, &engines);
  EXPECT_EQ(after.Sum("cowblk_engine_inbox_depth", {}, &depths), 0);
  EXPECT_EQ(depths, engines);  // one per engine
  EXPECT_EQ(after.Get("cowblk_engine_inbox_depth", {{"engine", "0"}}), 0);
}

}  // namespace
}  // namespace cowblk::testing
