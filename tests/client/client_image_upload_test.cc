// Sparse image uploads through cowblk::ImageUpload against a real cowblkd:
// zero ranges and zero blocks in the data become holes in the server's
// image file (st_blocks), the image reads back as sent, and a declared size
// that the upload does not keep leaves no image.

#include <sys/stat.h>

#include <string>

#include "cowblk/image_upload.h"
#include "tests/client/client_fixture.h"

namespace cowblk::testing {
namespace {

constexpr uint64_t kMiB = 1 << 20;

class ClientImageUploadTest : public ClientFixture {
 protected:
  // Bytes the server's image file allocates.
  uint64_t Allocated(const std::string& image) {
    struct stat st;
    EXPECT_EQ(stat((dir_.path() + "/images/" + image + ".img").c_str(), &st), 0) << image;
    return static_cast<uint64_t>(st.st_blocks) * 512;
  }
  // The image's bytes, read through a volume over it.
  std::string ReadBack(const std::string& image, uint64_t size) {
    EXPECT_TRUE(client_->CreateVolumeFromImage(image + "-vol", image).ok());
    auto volume = client_->OpenVolume(image + "-vol");
    EXPECT_TRUE(volume.ok()) << volume.status();
    if (!volume.ok()) return "";
    std::string back((size + 511) / 512 * 512, '\x55');
    EXPECT_TRUE((*volume)->Read(0, back.data(), back.size()).ok());
    back.resize(size);
    return back;
  }
};

TEST_F(ClientImageUploadTest, ZeroRangesAreHolesInTheImageFile) {
  const std::string head = RandomBytes(kMiB, 1), tail = RandomBytes(3000, 2);
  const uint64_t size = kMiB + 64 * kMiB + tail.size() + 16 * kMiB;
  COWBLK_ASSERT_OK_AND_ASSIGN(up, client_->StartImageUpload("sparse", size));
  ASSERT_TRUE(up->Write(head.data(), head.size()).ok());
  ASSERT_TRUE(up->Zero(64 * kMiB).ok());
  ASSERT_TRUE(up->Write(tail.data(), tail.size()).ok());
  ASSERT_TRUE(up->Zero(16 * kMiB).ok());  // a hole at the end
  EXPECT_EQ(up->sent(), size);
  COWBLK_ASSERT_OK_AND_ASSIGN(image, up->Finish());
  EXPECT_EQ(image.size_bytes, size);
  // The data (1 MiB and one partial block), not 81 MiB.
  EXPECT_LE(Allocated("sparse"), kMiB + 2 * 4096);
  std::string want = head + std::string(64 * kMiB, '\0') + tail + std::string(16 * kMiB, '\0');
  EXPECT_TRUE(ReadBack("sparse", size) == want);
}

TEST_F(ClientImageUploadTest, ZeroBlocksInStreamedDataAreHolesToo) {
  // What an upload from stdin (or an older client) sends: every byte.
  std::string bytes(32 * kMiB, '\0');
  const std::string data = RandomBytes(8192, 3);
  bytes.replace(5 * kMiB + 4096, data.size(), data);
  size_t at = 0;
  COWBLK_ASSERT_OK_AND_ASSIGN(
      image,
      client_->UploadImageFrom("streamed", [&](char* buf, size_t size) -> absl::StatusOr<size_t> {
        const size_t n = std::min(size, bytes.size() - at);
        bytes.copy(buf, n, at);
        at += n;
        return n;
      }));
  EXPECT_EQ(image.size_bytes, bytes.size());
  EXPECT_LE(Allocated("streamed"), 2 * 8192u);
  EXPECT_TRUE(ReadBack("streamed", bytes.size()) == bytes);
}

TEST_F(ClientImageUploadTest, AnUploadShortOfItsDeclaredSizeLeavesNoImage) {
  const std::string data = RandomBytes(4096, 4);
  COWBLK_ASSERT_OK_AND_ASSIGN(up, client_->StartImageUpload("short", 2 * kMiB));
  ASSERT_TRUE(up->Write(data.data(), data.size()).ok());
  ASSERT_TRUE(up->Zero(kMiB).ok());
  auto image = up->Finish();
  EXPECT_EQ(image.status().code(), absl::StatusCode::kInvalidArgument) << image.status();
  EXPECT_NE(image.status().message().find("size_bytes"), absl::string_view::npos);
  EXPECT_EQ(client_->GetImage("short").status().code(), absl::StatusCode::kNotFound);
}

TEST_F(ClientImageUploadTest, ZerosPastTheSizeLimitAreRefused) {
  // Zero ranges cost no bandwidth: the limit must hold all the same.
  COWBLK_ASSERT_OK_AND_ASSIGN(up, client_->StartImageUpload("huge"));
  absl::Status s = up->Zero(uint64_t{1} << 62);
  if (s.ok()) s = up->Finish().status();
  EXPECT_EQ(s.code(), absl::StatusCode::kResourceExhausted) << s;
  EXPECT_EQ(client_->GetImage("huge").status().code(), absl::StatusCode::kNotFound);
  // And a declared size past it is refused at once.
  COWBLK_ASSERT_OK_AND_ASSIGN(declared, client_->StartImageUpload("huge", uint64_t{1} << 62));
  const std::string data = RandomBytes(4096, 5);
  s = declared->Write(data.data(), data.size());
  if (s.ok()) s = declared->Finish().status();
  EXPECT_EQ(s.code(), absl::StatusCode::kResourceExhausted) << s;
}

TEST_F(ClientImageUploadTest, ADroppedUploadLeavesNoImage) {
  {
    COWBLK_ASSERT_OK_AND_ASSIGN(up, client_->StartImageUpload("dropped", 2 * kMiB));
    ASSERT_TRUE(up->Zero(kMiB).ok());
  }
  EXPECT_EQ(client_->GetImage("dropped").status().code(), absl::StatusCode::kNotFound);
}

}  // namespace
}  // namespace cowblk::testing
