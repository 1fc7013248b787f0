// CommitVolume against a real cowblkd while the volume is in use: the image
// is the volume at one moment (issue #20, item 8), and a commit whose
// caller gave up leaves nothing behind.

#include <chrono>
#include <filesystem>
#include <string>
#include <thread>
#include <vector>

#include "gmock/gmock.h"
#include "tests/integration/pass_writers.h"
#include "tests/support/server_fixture.h"

namespace cowblk::testing {
namespace {

constexpr uint64_t kMiB = 1 << 20;

class ServerCommitTest : public ServerFixture {
 protected:
  grpc::Status Commit(const std::string& volume, const std::string& image,
                      std::chrono::milliseconds deadline = std::chrono::milliseconds(0)) {
    grpc::ClientContext ctx;
    if (deadline.count() > 0) ctx.set_deadline(std::chrono::system_clock::now() + deadline);
    v1::CommitVolumeRequest req;
    req.set_name(volume);
    req.set_image(image);
    v1::Image out;
    return volumes_->CommitVolume(&ctx, req, &out);
  }

  std::string ImagesDir() const { return dir_.path() + "/images"; }

  // Names in images/ (hidden ones included), the blank bases' folder left out.
  std::vector<std::string> ImageFiles() const {
    std::vector<std::string> names;
    for (const auto& e : std::filesystem::directory_iterator(ImagesDir())) {
      if (e.path().filename() != ".blank") names.push_back(e.path().filename().string());
    }
    return names;
  }
};

// Four writers go over their blocks pass after pass while a commit runs
// (pass_writers.h): the image is the volume at one moment of the commit
// call, in every durability and cache mode.
class ServerCommitMomentTest : public ServerCommitTest,
                               public ::testing::WithParamInterface<std::vector<std::string>> {
 protected:
  void SetUp() override { StartServer(GetParam()); }
};

TEST_P(ServerCommitMomentTest, ImageIsTheVolumeAtOneMomentWhileWritersRun) {
  constexpr uint64_t kVolume = 256 * kMiB;
  ASSERT_TRUE(Create("live", kVolume).ok());
  PassWriters writers(/*writers=*/4, /*blocks_each=*/32, kVolume);
  grpc::Status committed;
  const bool ran = writers.Run(
      [&](int, uint64_t offset, const std::string& data) {
        return WriteData("live", offset, data).ok();
      },
      [&] {
        committed = Commit("live", "moment");
        return committed.ok();
      });
  ASSERT_TRUE(ran) << committed.error_message();
  EXPECT_EQ(writers.Check(ImagesDir() + "/moment.img"), "");
}

INSTANTIATE_TEST_SUITE_P(
    Modes, ServerCommitMomentTest,
    ::testing::Values(std::vector<std::string>{},
                      std::vector<std::string>{"--durability", "deferred"},
                      std::vector<std::string>{"--durability", "unordered", "--cache", "none"}),
    [](const auto& info) {
      std::string name = "ordered_writeback";
      if (!info.param.empty()) name = info.param[1] + (info.param.size() > 2 ? "_none" : "");
      return name;
    });

// A commit whose deadline passes while it copies stops there: no image, no
// temporary file, and the volume serves on.
TEST_F(ServerCommitTest, CommitPastItsDeadlineLeavesNothingAndTheVolumeServesOn) {
  constexpr uint64_t kVolume = uint64_t{4} << 30;  // a copy of seconds
  ASSERT_TRUE(Create("big", kVolume).ok());
  const std::string before = PassWriters::BlockPattern(0, 1, 0);
  ASSERT_TRUE(WriteData("big", 3 * kMiB, before).ok());

  const grpc::Status s = Commit("big", "late", std::chrono::milliseconds(200));
  EXPECT_EQ(s.error_code(), grpc::StatusCode::DEADLINE_EXCEEDED) << s.error_message();
  // The server's own end of the commit: either line.
  server_.WaitForLog("event=volume_commit");
  EXPECT_THAT(server_.log(), ::testing::Not(::testing::HasSubstr("event=volume_committed")));
  EXPECT_THAT(ImageFiles(), ::testing::IsEmpty());

  // The snapshot ended with it: a second commit is not refused as a
  // concurrent one (FAILED_PRECONDITION); it too runs out of time.
  const grpc::Status again = Commit("big", "late", std::chrono::milliseconds(200));
  EXPECT_EQ(again.error_code(), grpc::StatusCode::DEADLINE_EXCEEDED) << again.error_message();
  server_.WaitForLog("event=volume_commit", 2);
  EXPECT_THAT(ImageFiles(), ::testing::IsEmpty());

  const std::string after = PassWriters::BlockPattern(0, 2, 0);
  ASSERT_TRUE(WriteData("big", 3 * kMiB, after).ok());
  std::string got;
  ASSERT_TRUE(ReadData("big", 3 * kMiB, after.size(), &got).ok());
  EXPECT_TRUE(got == after);
}

// A commit the client cancels while it copies stops there too.
TEST_F(ServerCommitTest, CommitCancelledByTheClientLeavesNothing) {
  ASSERT_TRUE(Create("big", uint64_t{4} << 30).ok());
  grpc::ClientContext ctx;
  grpc::Status committed;
  std::thread commit([&] {
    v1::CommitVolumeRequest req;
    req.set_name("big");
    req.set_image("dropped");
    v1::Image out;
    committed = volumes_->CommitVolume(&ctx, req, &out);
  });
  server_.WaitForLog("event=volume_snapshot_taken volume=big");
  ctx.TryCancel();
  commit.join();
  EXPECT_EQ(committed.error_code(), grpc::StatusCode::CANCELLED) << committed.error_message();
  server_.WaitForLog("event=volume_commit_failed");
  EXPECT_THAT(ImageFiles(), ::testing::IsEmpty());
  EXPECT_TRUE(WriteData("big", 0, PassWriters::BlockPattern(0, 1, 0)).ok());
}

// Snapshots are commits plus a record: the same moment under writers, and
// a cancelled one leaves neither image nor record.
TEST_F(ServerCommitTest, SnapshotIsTheVolumeAtOneMomentWhileWritersRun) {
  constexpr uint64_t kVolume = 256 * kMiB;
  ASSERT_TRUE(Create("live", kVolume).ok());
  PassWriters writers(/*writers=*/4, /*blocks_each=*/32, kVolume);
  grpc::Status taken;
  v1::Snapshot snap;
  const bool ran = writers.Run(
      [&](int, uint64_t offset, const std::string& data) {
        return WriteData("live", offset, data).ok();
      },
      [&] {
        grpc::ClientContext ctx;
        v1::CreateSnapshotRequest req;
        req.set_volume("live");
        req.set_name("moment");
        taken = volumes_->CreateSnapshot(&ctx, req, &snap);
        return taken.ok();
      });
  ASSERT_TRUE(ran) << taken.error_message();
  EXPECT_EQ(writers.Check(ImagesDir() + "/moment.img"), "");
  EXPECT_EQ(snap.source_volume(), "live");
  EXPECT_EQ(snap.size_bytes(), kVolume);
  EXPECT_THAT(ImageFiles(), ::testing::UnorderedElementsAre("moment.img", "moment.snapshot"));
}

TEST_F(ServerCommitTest, SnapshotCancelledByTheClientLeavesNothing) {
  ASSERT_TRUE(Create("big", uint64_t{4} << 30).ok());
  grpc::ClientContext ctx;
  grpc::Status taken;
  std::thread snapshot([&] {
    v1::CreateSnapshotRequest req;
    req.set_volume("big");
    req.set_name("dropped");
    v1::Snapshot out;
    taken = volumes_->CreateSnapshot(&ctx, req, &out);
  });
  server_.WaitForLog("event=volume_snapshot_taken volume=big");
  ctx.TryCancel();
  snapshot.join();
  EXPECT_EQ(taken.error_code(), grpc::StatusCode::CANCELLED) << taken.error_message();
  server_.WaitForLog("event=volume_commit_failed");
  EXPECT_THAT(ImageFiles(), ::testing::IsEmpty());
  grpc::ClientContext list_ctx;
  v1::ListSnapshotsResponse list;
  ASSERT_TRUE(volumes_->ListSnapshots(&list_ctx, v1::ListSnapshotsRequest(), &list).ok());
  EXPECT_EQ(list.snapshots_size(), 0);
}

// A volume deleted while its commit copies: the commit fails UNAVAILABLE
// and leaves nothing behind.
TEST_F(ServerCommitTest, VolumeDeletedDuringItsCommitLeavesNoImage) {
  ASSERT_TRUE(Create("gone", uint64_t{4} << 30).ok());
  ASSERT_TRUE(WriteData("gone", 0, PassWriters::BlockPattern(0, 1, 0)).ok());
  grpc::Status committed;
  std::thread commit([&] { committed = Commit("gone", "never"); });
  server_.WaitForLog("event=volume_snapshot_taken volume=gone");
  grpc::ClientContext ctx;
  v1::DeleteVolumeRequest req;
  req.set_name("gone");
  v1::DeleteVolumeResponse resp;
  const grpc::Status deleted = volumes_->DeleteVolume(&ctx, req, &resp);
  commit.join();
  EXPECT_TRUE(deleted.ok()) << deleted.error_message();
  EXPECT_EQ(committed.error_code(), grpc::StatusCode::UNAVAILABLE) << committed.error_message();
  EXPECT_THAT(ImageFiles(), ::testing::IsEmpty());
}

}  // namespace
}  // namespace cowblk::testing
