// cowblk-csi's pure rules (csi/placement.h): names, ids, capacity ranges,
// zones and the choice of server, without servers.

#include "csi/placement.h"

#include "gtest/gtest.h"

namespace cowblk::csi {
namespace {

TEST(CsiNamesTest, AValidCowblkNameIsKeptAndOthersHashStably) {
  EXPECT_EQ(*VolumeNameFor("pvc-0f1e2d3c-aaaa-bbbb-cccc-0123456789ab"),
            "pvc-0f1e2d3c-aaaa-bbbb-cccc-0123456789ab");
  auto upper = VolumeNameFor("My Volume");
  ASSERT_TRUE(upper.ok());
  EXPECT_EQ(upper->size(), 4u + 32u);
  EXPECT_EQ(upper->rfind("csi-", 0), 0u);
  EXPECT_EQ(*VolumeNameFor("My Volume"), *upper);  // the same name, the same volume
  EXPECT_NE(*VolumeNameFor("My Volume2"), *upper);
  EXPECT_TRUE(VolumeNameFor(std::string(128, 'x')).ok());  // too long for cowblk: hashed
  EXPECT_EQ(VolumeNameFor("").status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(VolumeNameFor(std::string(129, 'x')).status().code(),
            absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(VolumeNameFor("a\x01" "b").status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(VolumeNameFor("a\xc2\x85" "b").status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_TRUE(VolumeNameFor("tab\tand newline\n are allowed").ok());
}

TEST(CsiNamesTest, VolumeIdsNameTheServerAndTheVolume) {
  EXPECT_EQ(VolumeId("a", "pvc-1"), "a/pvc-1");
  auto id = ParseVolumeId("srv-1.zone/pvc-1");
  ASSERT_TRUE(id.ok());
  EXPECT_EQ(id->server, "srv-1.zone");
  EXPECT_EQ(id->volume, "pvc-1");
  for (const char* bad : {"nothing", "/v", "a/", "a/b/c", "a/Bad"}) {
    EXPECT_EQ(ParseVolumeId(bad).status().code(), absl::StatusCode::kNotFound) << bad;
  }
  EXPECT_EQ(ParseVolumeId("").status().code(), absl::StatusCode::kInvalidArgument);
}

TEST(CsiCapacityTest, RangesBecomeSectorMultiples) {
  EXPECT_EQ(*SizeFor(0, 0, 4096), 4096u);
  EXPECT_EQ(*SizeFor(1, 0, 4096), 512u);
  EXPECT_EQ(*SizeFor(513, 0, 4096), 1024u);
  EXPECT_EQ(*SizeFor(0, 1000, 4096), 512u);  // the default, clamped to the limit
  EXPECT_EQ(*SizeFor(1024, 1024, 4096), 1024u);
  EXPECT_EQ(SizeFor(0, 100, 4096).status().code(), absl::StatusCode::kOutOfRange);
  EXPECT_EQ(SizeFor(1000, 1000, 4096).status().code(), absl::StatusCode::kOutOfRange);
  EXPECT_EQ(SizeFor(2048, 1024, 4096).status().code(), absl::StatusCode::kOutOfRange);
  EXPECT_EQ(SizeFor(-1, 0, 4096).status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(SizeFor(0, -1, 4096).status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_TRUE(SizeFits(1024, 1000, 0));
  EXPECT_FALSE(SizeFits(512, 1000, 0));
  EXPECT_FALSE(SizeFits(2048, 0, 1024));
}

TEST(CsiPlacementTest, RoomCountsWhatVolumesWerePromised) {
  EXPECT_EQ(Available(1000, 300, 100), 800u);
  EXPECT_EQ(Available(1000, 100, 300), 1000u);  // more allocated than provisioned: no debt
  EXPECT_EQ(Available(100, 500, 0), 0u);
}

TEST(CsiPlacementTest, TheRoomiestAllowedReachableServerWins) {
  std::vector<Candidate> servers = {
      {.name = "a", .zone = "z1", .reachable = true, .available = 100, .max_volume_size = 0},
      {.name = "b", .zone = "z2", .reachable = true, .available = 300, .max_volume_size = 0},
      {.name = "c", .zone = "z2", .reachable = false, .available = 900, .max_volume_size = 0},
  };
  EXPECT_EQ(Place(servers, 50, {})->name, "b");
  TopologyRequirement z1;
  z1.requisite.push_back({{kZoneKey, "z1"}});
  EXPECT_EQ(Place(servers, 50, z1)->name, "a");
  EXPECT_EQ(Place(servers, 200, z1).status().code(), absl::StatusCode::kResourceExhausted);
  TopologyRequirement z3;
  z3.requisite.push_back({{kZoneKey, "z3"}});
  EXPECT_EQ(Place(servers, 50, z3).status().code(), absl::StatusCode::kInvalidArgument);
  servers[0].reachable = servers[1].reachable = false;
  EXPECT_EQ(Place(servers, 50, {}).status().code(), absl::StatusCode::kUnavailable);
}

TEST(CsiPlacementTest, TiesGoToThePreferredZoneThenTheName) {
  std::vector<Candidate> servers = {
      {.name = "b", .zone = "z1", .reachable = true, .available = 100, .max_volume_size = 0},
      {.name = "a", .zone = "z2", .reachable = true, .available = 100, .max_volume_size = 0},
  };
  EXPECT_EQ(Place(servers, 50, {})->name, "a");
  TopologyRequirement pref;
  pref.requisite.push_back({{kZoneKey, "z1"}});
  pref.requisite.push_back({{kZoneKey, "z2"}});
  pref.preferred.push_back({{kZoneKey, "z1"}});
  EXPECT_EQ(Place(servers, 50, pref)->name, "b");
}

TEST(CsiPlacementTest, AServerWithoutAZoneIsAllowedAnywhere) {
  TopologyRequirement z1;
  z1.requisite.push_back({{kZoneKey, "z1"}});
  EXPECT_TRUE(ZoneAllowed("", z1));
  EXPECT_TRUE(ZoneAllowed("z1", z1));
  EXPECT_FALSE(ZoneAllowed("z2", z1));
  TopologyRequirement other_key;
  other_key.requisite.push_back({{"kubernetes.io/hostname", "node-1"}});
  EXPECT_TRUE(ZoneAllowed("z2", other_key));  // no zone named: no restriction
}

}  // namespace
}  // namespace cowblk::csi
