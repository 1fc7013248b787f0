// --metrics-detail: the series a real cowblkd exposes per volume, counted
// from real scrapes with N volumes. `volume` (the default) has the latency
// histograms per volume; `server` has them once per server and no
// histogram series with a `volume` label, the other series still per volume.
// The counts printed here are the ones docs/metrics.md gives.

#include <cstdio>
#include <set>
#include <vector>
#include <string>

#include "absl/strings/str_cat.h"
#include "gtest/gtest.h"
#include "tests/support/metrics_scrape.h"
#include "tests/support/server_fixture.h"

namespace cowblk::testing {
namespace {

constexpr int kVolumes = 12;

struct Counted {
  int per_volume = 0;       // series with volume="v0" (every volume has as many)
  int with_volume = 0;      // series with any volume label
  int total = 0;            // every series
  int volume_histogram = 0; // histogram series (_bucket, _sum, _count) with a volume label
  int server_duration = 0;  // cowblk_io_duration_seconds_count series without one
};

bool IsHistogramSeries(const std::string& name) {
  for (const std::string suffix : {"_bucket", "_sum", "_count"}) {
    if (name.size() > suffix.size() &&
        name.compare(name.size() - suffix.size(), suffix.size(), suffix) == 0) {
      return true;
    }
  }
  return false;
}

class MetricsDetailTest : public ServerFixture {
 protected:
  void SetUp() override {}  // each test starts its server with its flags

  Counted CountWith(const std::vector<std::string>& args) {
    StartServer(args);
    for (int i = 0; i < kVolumes; ++i) {
      EXPECT_TRUE(Create(absl::StrCat("v", i), 1 << 20).ok());
    }
    Scrape s;
    EXPECT_TRUE(s.Fetch(server_.MetricsAddress())) << s.error();
    Counted c;
    std::set<std::string> volumes;
    for (const Scrape::Sample& sample : s.samples()) {
      ++c.total;
      auto it = sample.labels.find("volume");
      if (it == sample.labels.end()) {
        if (sample.name == "cowblk_io_duration_seconds_count") ++c.server_duration;
        continue;
      }
      volumes.insert(it->second);
      ++c.with_volume;
      if (it->second == "v0") ++c.per_volume;
      if (IsHistogramSeries(sample.name)) ++c.volume_histogram;
    }
    EXPECT_EQ(volumes.size(), static_cast<size_t>(kVolumes));
    return c;
  }
};

void Print(const char* mode, const Counted& c) {
  std::printf("--metrics-detail %s: %d series per volume, %d not per volume\n", mode,
              c.per_volume, c.total - c.with_volume);
}

TEST_F(MetricsDetailTest, VolumeDetailHasTheHistogramsPerVolume) {
  const Counted c = CountWith({});
  Print("volume", c);
  EXPECT_EQ(c.with_volume, c.per_volume * kVolumes);  // every volume has the same series
  EXPECT_GT(c.volume_histogram, 0);
  EXPECT_EQ(c.server_duration, 0);
}

TEST_F(MetricsDetailTest, ServerDetailHasNoPerVolumeHistogramSeries) {
  const Counted c = CountWith({"--metrics-detail", "server"});
  Print("server", c);
  EXPECT_EQ(c.with_volume, c.per_volume * kVolumes);
  EXPECT_GT(c.per_volume, 0);  // the gauges and counters stay per volume
  EXPECT_EQ(c.volume_histogram, 0);
  EXPECT_EQ(c.server_duration, 5);  // one histogram per op, for the whole server
}

TEST_F(MetricsDetailTest, AnUnknownDetailIsRefusedAtStart) {
  CowblkdProcess bad;
  EXPECT_FALSE(bad.Start(dir_.path(), {"--metrics-detail", "volumes"}));
  EXPECT_NE(bad.log().find("--metrics-detail"), std::string::npos) << bad.log();
}

}  // namespace
}  // namespace cowblk::testing
