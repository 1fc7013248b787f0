// The administrative calls of cowblk::Client against a real cowblkd:
// volumes, images, allocation, health, and how their errors come back.

#include <fcntl.h>
#include <unistd.h>

#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "tests/client/client_fixture.h"
#include "tests/support/fragmented_bitmap.h"

namespace cowblk::testing {
namespace {

constexpr uint64_t kMiB = 1 << 20;

using ClientAdminTest = ClientFixture;

TEST_F(ClientAdminTest, CreateGetListDeleteAVolume) {
  COWBLK_ASSERT_OK_AND_ASSIGN(created, client_->CreateVolume("disk0", 4 * kMiB));
  EXPECT_EQ(created.name, "disk0");
  EXPECT_EQ(created.size_bytes, 4 * kMiB);
  EXPECT_EQ(created.sector_size, 512u);
  EXPECT_EQ(created.image, "");
  EXPECT_EQ(created.state, VolumeState::kReady);

  COWBLK_ASSERT_OK_AND_ASSIGN(got, client_->GetVolume("disk0"));
  EXPECT_EQ(got.size_bytes, 4 * kMiB);
  ASSERT_TRUE(client_->CreateVolume("disk1", kMiB).ok());

  COWBLK_ASSERT_OK_AND_ASSIGN(list, client_->ListVolumes());
  ASSERT_EQ(list.size(), 2u);
  EXPECT_EQ(list[0].name, "disk0");
  EXPECT_EQ(list[1].name, "disk1");

  EXPECT_TRUE(client_->DeleteVolume("disk0").ok());
  EXPECT_EQ(client_->GetVolume("disk0").status().code(), absl::StatusCode::kNotFound);
  COWBLK_ASSERT_OK_AND_ASSIGN(after, client_->ListVolumes());
  EXPECT_EQ(after.size(), 1u);
}

TEST_F(ClientAdminTest, ListVolumesFollowsEveryPage) {
  // The server pages at 1000: 1001 volumes need two pages.
  for (int i = 0; i < 1001; ++i) {
    ASSERT_TRUE(client_->CreateVolume(absl::StrCat("v", 10000 + i), 512).ok());
  }
  COWBLK_ASSERT_OK_AND_ASSIGN(list, client_->ListVolumes());
  ASSERT_EQ(list.size(), 1001u);
  EXPECT_EQ(list.back().name, "v11000");
}

TEST_F(ClientAdminTest, ErrorsKeepTheServersCodeAndMessage) {
  ASSERT_TRUE(client_->CreateVolume("disk0", kMiB).ok());
  auto again = client_->CreateVolume("disk0", kMiB);
  EXPECT_EQ(again.status().code(), absl::StatusCode::kAlreadyExists);
  auto bad = client_->CreateVolume("Bad/Name", kMiB);
  EXPECT_EQ(bad.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_NE(bad.status().message().find("name"), absl::string_view::npos) << bad.status();
  auto unaligned = client_->CreateVolume("disk1", 1000);
  EXPECT_EQ(unaligned.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(client_->DeleteVolume("nope").code(), absl::StatusCode::kNotFound);
  EXPECT_EQ(client_->OpenVolume("nope").status().code(), absl::StatusCode::kNotFound);
}

TEST_F(ClientAdminTest, UploadAnImageFromAFileAndLayerAVolumeOverIt) {
  const std::string bytes = RandomBytes(3 * kMiB + 512, 1);
  WriteFileBytes(dir_.File("base.img"), bytes);
  std::vector<uint64_t> progress;
  COWBLK_ASSERT_OK_AND_ASSIGN(image,
                              client_->UploadImage("base", dir_.File("base.img"),
                                                   [&](uint64_t n) { progress.push_back(n); }));
  EXPECT_EQ(image.name, "base");
  EXPECT_EQ(image.size_bytes, bytes.size());
  ASSERT_FALSE(progress.empty());
  EXPECT_EQ(progress.back(), bytes.size());

  COWBLK_ASSERT_OK_AND_ASSIGN(vol, client_->CreateVolumeFromImage("child", "base"));
  EXPECT_EQ(vol.image, "base");
  EXPECT_EQ(vol.size_bytes, bytes.size());
  COWBLK_ASSERT_OK_AND_ASSIGN(volume, client_->OpenVolume("child"));
  std::string back(bytes.size(), '\0');
  ASSERT_TRUE(volume->Read(0, back.data(), back.size()).ok());
  EXPECT_TRUE(back == bytes);

  COWBLK_ASSERT_OK_AND_ASSIGN(got, client_->GetImage("base"));
  EXPECT_EQ(got.volume_count, 1u);
  COWBLK_ASSERT_OK_AND_ASSIGN(images, client_->ListImages());
  ASSERT_EQ(images.size(), 1u);
  EXPECT_EQ(images[0].name, "base");
  EXPECT_EQ(client_->DeleteImage("base").code(), absl::StatusCode::kFailedPrecondition);
}

TEST_F(ClientAdminTest, UploadAnImageFromAReaderAndDeleteIt) {
  const std::string bytes = RandomBytes(2 * kMiB + 4096, 2);
  size_t at = 0;
  COWBLK_ASSERT_OK_AND_ASSIGN(
      image,
      client_->UploadImageFrom("piped", [&](char* buf, size_t size) -> absl::StatusOr<size_t> {
        const size_t n = std::min(size, bytes.size() - at);
        bytes.copy(buf, n, at);
        at += n;
        return n;
      }));
  EXPECT_EQ(image.size_bytes, bytes.size());
  EXPECT_TRUE(client_->DeleteImage("piped").ok());
  EXPECT_EQ(client_->GetImage("piped").status().code(), absl::StatusCode::kNotFound);
}

TEST_F(ClientAdminTest, AFailingReaderAbandonsTheUpload) {
  int calls = 0;
  auto image = client_->UploadImageFrom("broken", [&](char*, size_t) -> absl::StatusOr<size_t> {
    if (++calls == 3) return absl::DataLossError("disk on fire");
    return size_t{4096};
  });
  EXPECT_EQ(image.status().code(), absl::StatusCode::kDataLoss);
  EXPECT_EQ(client_->GetImage("broken").status().code(), absl::StatusCode::kNotFound);
}

TEST_F(ClientAdminTest, UploadOfAMissingFileFailsNotFound) {
  EXPECT_EQ(client_->UploadImage("x", dir_.File("missing")).status().code(),
            absl::StatusCode::kNotFound);
}

TEST_F(ClientAdminTest, CommitMergesAVolumeIntoANewImage) {
  const std::string base = RandomBytes(kMiB, 3);
  WriteFileBytes(dir_.File("base.img"), base);
  ASSERT_TRUE(client_->UploadImage("base", dir_.File("base.img")).ok());
  ASSERT_TRUE(client_->CreateVolumeFromImage("work", "base").ok());
  const std::string patch = RandomBytes(8192, 4);
  {
    COWBLK_ASSERT_OK_AND_ASSIGN(volume, client_->OpenVolume("work"));
    ASSERT_TRUE(volume->Write(65536, patch.data(), patch.size()).ok());
  }
  COWBLK_ASSERT_OK_AND_ASSIGN(merged, client_->CommitVolume("work", "merged"));
  EXPECT_EQ(merged.name, "merged");
  EXPECT_EQ(merged.size_bytes, kMiB);
  std::string want = base;
  want.replace(65536, patch.size(), patch);
  EXPECT_TRUE(ReadFileBytes(dir_.File("images/merged.img")) == want);
  EXPECT_EQ(client_->CommitVolume("work", "merged").status().code(),
            absl::StatusCode::kAlreadyExists);
}

TEST_F(ClientAdminTest, GetAllocationShowsWrittenRanges) {
  auto volume = NewVolume("disk0", kMiB);
  ASSERT_NE(volume, nullptr);
  const std::string data(8192, 'x');
  ASSERT_TRUE(volume->Write(65536, data.data(), data.size()).ok());
  COWBLK_ASSERT_OK_AND_ASSIGN(ranges, client_->GetAllocation("disk0"));
  ASSERT_EQ(ranges.size(), 3u);
  EXPECT_FALSE(ranges[0].allocated);
  EXPECT_EQ(ranges[1].offset, 65536u);
  EXPECT_EQ(ranges[1].length, 8192u);
  EXPECT_TRUE(ranges[1].allocated);
  EXPECT_EQ(ranges[2].offset + ranges[2].length, kMiB);

  COWBLK_ASSERT_OK_AND_ASSIGN(window, volume->GetAllocation(65536, 4096));
  ASSERT_EQ(window.size(), 1u);
  EXPECT_TRUE(window[0].allocated);
  EXPECT_EQ(client_->GetAllocation("nope").status().code(), absl::StatusCode::kNotFound);
}

TEST_F(ClientAdminTest, GetAllocationFollowsTheServersPages) {
  // 20480 one-sector runs: the server answers at most 10000 a call.
  ASSERT_TRUE(client_->CreateVolume("disk0", 16 * kMiB).ok());
  ASSERT_EQ(server_.Stop(), 0);
  ASSERT_TRUE(FragmentBitmap(dir_.File("volumes/disk0.cow"), 20480));
  StartServer();
  COWBLK_ASSERT_OK_AND_ASSIGN(ranges, client_->GetAllocation("disk0"));
  ASSERT_EQ(ranges.size(), 20480u);
  uint64_t covered = 0;
  for (size_t i = 0; i < ranges.size(); ++i) {
    ASSERT_EQ(ranges[i].offset, covered) << i;
    EXPECT_EQ(ranges[i].allocated, i % 2 == 0) << i;
    covered += ranges[i].length;
  }
  EXPECT_EQ(covered, 16 * kMiB);
  // A window that ends inside the runs keeps its end across pages.
  COWBLK_ASSERT_OK_AND_ASSIGN(window, client_->GetAllocation("disk0", 512, 15000 * 512));
  ASSERT_EQ(window.size(), 15000u);
  EXPECT_FALSE(window.front().allocated);
  EXPECT_EQ(window.back().offset + window.back().length, 15001u * 512);
}

TEST_F(ClientAdminTest, GetExtentsSplitsWhatReadsFromTheImageIntoItsDataAndItsHoles) {
  {  // An image of 4 MiB: data, a 2 MiB hole, data.
    const std::string path = dir_.File("images/holes.img");
    const std::string mib(kMiB, 'i');
    WriteFileBytes(path, mib);
    const int fd = open(path.c_str(), O_WRONLY);
    ASSERT_GE(fd, 0);
    ASSERT_EQ(pwrite(fd, mib.data(), mib.size(), 3 * kMiB), static_cast<ssize_t>(kMiB));
    close(fd);
  }
  ASSERT_TRUE(client_->CreateVolumeFromImage("vm", "holes").ok());
  COWBLK_ASSERT_OK_AND_ASSIGN(volume, client_->OpenVolume("vm"));
  const std::string data(65536, 'x');
  ASSERT_TRUE(volume->Write(2 * kMiB, data.data(), data.size()).ok());
  COWBLK_ASSERT_OK_AND_ASSIGN(extents, volume->GetExtents(0, 0));
  struct Want {
    uint64_t offset, length;
    bool allocated, zero;
  };
  const std::vector<Want> want = {{0, kMiB, false, false},
                                  {kMiB, kMiB, false, true},
                                  {2 * kMiB, 65536, true, false},
                                  {2 * kMiB + 65536, kMiB - 65536, false, true},
                                  {3 * kMiB, kMiB, false, false}};
  ASSERT_EQ(extents.size(), want.size());
  for (size_t i = 0; i < want.size(); ++i) {
    EXPECT_EQ(extents[i].offset, want[i].offset) << i;
    EXPECT_EQ(extents[i].length, want[i].length) << i;
    EXPECT_EQ(extents[i].allocated, want[i].allocated) << i;
    EXPECT_EQ(extents[i].zero, want[i].zero) << i;
  }
  // GetAllocation answers as before: alternating, no zeros.
  COWBLK_ASSERT_OK_AND_ASSIGN(ranges, volume->GetAllocation());
  ASSERT_EQ(ranges.size(), 3u);
  for (const AllocationRange& r : ranges) EXPECT_FALSE(r.zero);
}

TEST_F(ClientAdminTest, HealthIsServing) {
  COWBLK_ASSERT_OK_AND_ASSIGN(state, client_->Health());
  EXPECT_EQ(state, HealthState::kServing);
  COWBLK_ASSERT_OK_AND_ASSIGN(blocks, client_->Health("cowblk.v1.BlockService"));
  EXPECT_EQ(blocks, HealthState::kServing);
  EXPECT_EQ(client_->Health("no.such.Service").status().code(), absl::StatusCode::kNotFound);
  EXPECT_STREQ(HealthStateName(HealthState::kServing), "SERVING");
}

}  // namespace
}  // namespace cowblk::testing
