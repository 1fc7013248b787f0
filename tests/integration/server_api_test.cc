// Every VolumeService and BlockService RPC against a real cowblkd: the happy
// path, each error code, and that refused requests change nothing on disk.

#include <filesystem>

#include "gmock/gmock.h"
#include "grpc/health/v1/health.grpc.pb.h"
#include "server/cow/cow_file.h"
#include "tests/support/command.h"
#include "tests/support/fragmented_bitmap.h"
#include "tests/support/server_fixture.h"

namespace cowblk::testing {
namespace {

using ::testing::HasSubstr;

constexpr uint64_t kMiB = 1 << 20;

class ServerApiTest : public ServerFixture {};

TEST_F(ServerApiTest, BlankVolumeReadsZerosAndKeepsWhatIsWritten) {
  v1::Volume vol;
  ASSERT_TRUE(Create("vm1", kMiB, "", &vol).ok());
  EXPECT_EQ(vol.name(), "vm1");
  EXPECT_EQ(vol.size_bytes(), kMiB);
  EXPECT_EQ(vol.sector_size(), 512u);
  EXPECT_EQ(vol.state(), v1::VOLUME_STATE_READY);
  EXPECT_EQ(vol.image(), "");
  const std::string data = RandomBytes(8192, 1);
  ASSERT_TRUE(WriteData("vm1", 4096, data, /*flush=*/true).ok());
  std::string got;
  ASSERT_TRUE(ReadData("vm1", 0, kMiB, &got).ok());
  std::string want(kMiB, '\0');
  want.replace(4096, data.size(), data);
  EXPECT_TRUE(got == want);

  grpc::ClientContext ctx;
  v1::GetVolumeRequest req;
  req.set_name("vm1");
  ASSERT_TRUE(volumes_->GetVolume(&ctx, req, &vol).ok());
  EXPECT_EQ(vol.allocated_bytes(), 8192u);

  grpc::ClientContext actx;
  v1::GetAllocationRequest areq;
  areq.set_name("vm1");
  v1::GetAllocationResponse alloc;
  ASSERT_TRUE(volumes_->GetAllocation(&actx, areq, &alloc).ok());
  ASSERT_EQ(alloc.ranges_size(), 3);
  EXPECT_FALSE(alloc.ranges(0).allocated());
  EXPECT_EQ(alloc.ranges(1).offset(), 4096u);
  EXPECT_EQ(alloc.ranges(1).length(), 8192u);
  EXPECT_TRUE(alloc.ranges(1).allocated());
  EXPECT_EQ(alloc.ranges(2).offset() + alloc.ranges(2).length(), kMiB);
}

TEST_F(ServerApiTest, GetAllocationAnswersAFragmentedVolumeInPages) {
  // Every other sector of the first 20480 allocated (the last run reaches
  // the end): 20480 ranges, more than one answer holds.
  ASSERT_TRUE(Create("vm1", 16 * kMiB).ok());
  ASSERT_EQ(StopServer(), 0);
  ASSERT_TRUE(FragmentBitmap(dir_.File("volumes/vm1.cow"), 20480));
  StartServer();
  auto page = [&](uint64_t offset, uint32_t page_size, v1::GetAllocationResponse* resp) {
    grpc::ClientContext ctx;
    v1::GetAllocationRequest req;
    req.set_name("vm1");
    req.set_offset(offset);
    req.set_page_size(page_size);
    return volumes_->GetAllocation(&ctx, req, resp);
  };
  v1::GetAllocationResponse resp;
  ASSERT_TRUE(page(0, 0, &resp).ok());
  ASSERT_EQ(resp.ranges_size(), 10000);
  EXPECT_EQ(resp.next_offset(), 10000u * 512);
  ASSERT_TRUE(page(0, 7, &resp).ok());
  EXPECT_EQ(resp.ranges_size(), 7);
  EXPECT_EQ(resp.next_offset(), 7u * 512);
  // Followed to the end: consecutive, alternating, covering the volume.
  uint64_t from = 0, covered = 0;
  int ranges = 0, pages = 0;
  bool last_allocated = false;
  do {
    ASSERT_TRUE(page(from, 0, &resp).ok());
    ++pages;
    for (const v1::AllocationRange& r : resp.ranges()) {
      ASSERT_EQ(r.offset(), covered);
      if (ranges > 0) {
        EXPECT_NE(r.allocated(), last_allocated) << r.offset();
      }
      last_allocated = r.allocated();
      covered += r.length();
      ++ranges;
    }
    from = resp.next_offset();
  } while (from != 0);
  EXPECT_EQ(pages, 3);
  EXPECT_EQ(ranges, 20480);
  EXPECT_EQ(covered, 16 * kMiB);
}

TEST_F(ServerApiTest, VolumeOverAnUploadedImageReadsTheImage) {
  const std::string image = RandomBytes(2 * kMiB + 4096, 2);
  ASSERT_TRUE(Upload("base", image).ok());
  v1::Volume vol;
  ASSERT_TRUE(Create("vm1", 0, "base", &vol).ok());
  EXPECT_EQ(vol.image(), "base");
  EXPECT_EQ(vol.size_bytes(), image.size());
  std::string got;
  ASSERT_TRUE(ReadData("vm1", 0, image.size(), &got).ok());
  EXPECT_TRUE(got == image);
  // The COW file is a UML COW file over the image: UML's tools can read it.
  auto cow = cow::CowFile::Open(dir_.File("volumes/vm1.cow"), cow::OpenOptions{.lock = false});
  ASSERT_TRUE(cow.ok()) << cow.status();
  EXPECT_EQ((*cow)->header().backing_file, dir_.File("images/base.img"));

  grpc::ClientContext ctx;
  v1::GetImageRequest req;
  req.set_name("base");
  v1::Image info;
  ASSERT_TRUE(volumes_->GetImage(&ctx, req, &info).ok());
  EXPECT_EQ(info.size_bytes(), image.size());
  EXPECT_EQ(info.volume_count(), 1u);
}

TEST_F(ServerApiTest, ListVolumesPagesInNameOrder) {
  for (const char* name : {"e", "a", "c", "b", "d"}) ASSERT_TRUE(Create(name, kMiB).ok());
  std::vector<std::string> seen;
  std::string token;
  int pages = 0;
  do {
    grpc::ClientContext ctx;
    v1::ListVolumesRequest req;
    req.set_page_size(2);
    req.set_page_token(token);
    v1::ListVolumesResponse resp;
    ASSERT_TRUE(volumes_->ListVolumes(&ctx, req, &resp).ok());
    for (const auto& v : resp.volumes()) seen.push_back(v.name());
    token = resp.next_page_token();
    ++pages;
  } while (!token.empty() && pages < 10);
  EXPECT_EQ(pages, 3);
  EXPECT_EQ(seen, (std::vector<std::string>{"a", "b", "c", "d", "e"}));
}

TEST_F(ServerApiTest, DeleteVolumeRemovesItAndItsFile) {
  ASSERT_TRUE(Create("vm1", kMiB).ok());
  grpc::ClientContext ctx;
  v1::DeleteVolumeRequest req;
  req.set_name("vm1");
  v1::DeleteVolumeResponse resp;
  ASSERT_TRUE(volumes_->DeleteVolume(&ctx, req, &resp).ok());
  EXPECT_FALSE(std::filesystem::exists(dir_.File("volumes/vm1.cow")));
  std::string got;
  EXPECT_EQ(ReadData("vm1", 0, 512, &got).error_code(), grpc::StatusCode::NOT_FOUND);
  EXPECT_TRUE(Create("vm1", kMiB).ok());  // the name is free again
}

TEST_F(ServerApiTest, CommitVolumeWritesWhatUmlMooWrites) {
  // uml_moo reads the live COW file, whose bitmap on disk holds every
  // acknowledged write only in ordered durability (deferred, the default,
  // writes the bits in the background; a flush waits for them).
  ASSERT_EQ(StopServer(), 0);
  StartServer(std::vector<std::string>{"--durability", "ordered"});
  const std::string image = RandomBytes(4 * kMiB, 3);
  ASSERT_TRUE(Upload("base", image).ok());
  ASSERT_TRUE(Create("vm1", 0, "base").ok());
  std::string model = image;
  for (uint64_t off : {uint64_t{0}, 63 * 512ul, 4 * kMiB - 512, kMiB + 4096}) {
    const std::string data = RandomBytes(1024 > 4 * kMiB - off ? 512 : 1024, off);
    ASSERT_TRUE(WriteData("vm1", off, data).ok());
    model.replace(off, data.size(), data);
  }
  grpc::ClientContext ctx;
  v1::CommitVolumeRequest req;
  req.set_name("vm1");
  req.set_image("merged");
  v1::Image out;
  ASSERT_TRUE(volumes_->CommitVolume(&ctx, req, &out).ok());
  EXPECT_EQ(out.size_bytes(), image.size());
  EXPECT_TRUE(ReadFileBytes(dir_.File("images/merged.img")) == model);
  ASSERT_EQ(RunShell("uml_moo " + dir_.File("volumes/vm1.cow") + " " + dir_.File("moo.img") +
                     " >/dev/null"),
            0);
  EXPECT_EQ(RunShell("cmp " + dir_.File("moo.img") + " " + dir_.File("images/merged.img")), 0);
  ASSERT_TRUE(Create("vm2", 0, "merged").ok());  // the new image is usable at once
}

TEST_F(ServerApiTest, ImagesListGetAndDeleteOnlyWhenUnused) {
  ASSERT_TRUE(Upload("img-b", RandomBytes(kMiB, 4)).ok());
  ASSERT_TRUE(Upload("img-a", RandomBytes(kMiB, 5)).ok());
  ASSERT_TRUE(Create("vm1", 0, "img-a").ok());
  grpc::ClientContext lctx;
  v1::ListImagesResponse list;
  ASSERT_TRUE(volumes_->ListImages(&lctx, v1::ListImagesRequest(), &list).ok());
  ASSERT_EQ(list.images_size(), 2);
  EXPECT_EQ(list.images(0).name(), "img-a");
  EXPECT_EQ(list.images(0).volume_count(), 1u);

  const std::string before = Snapshot();
  grpc::ClientContext dctx;
  v1::DeleteImageRequest del;
  del.set_name("img-a");
  v1::DeleteImageResponse dresp;
  grpc::Status s = volumes_->DeleteImage(&dctx, del, &dresp);
  EXPECT_EQ(s.error_code(), grpc::StatusCode::FAILED_PRECONDITION);
  EXPECT_THAT(s.error_message(), HasSubstr("vm1"));
  EXPECT_EQ(Snapshot(), before);

  grpc::ClientContext vctx;
  v1::DeleteVolumeRequest dv;
  dv.set_name("vm1");
  v1::DeleteVolumeResponse dvr;
  ASSERT_TRUE(volumes_->DeleteVolume(&vctx, dv, &dvr).ok());
  grpc::ClientContext d2;
  EXPECT_TRUE(volumes_->DeleteImage(&d2, del, &dresp).ok());
  EXPECT_FALSE(std::filesystem::exists(dir_.File("images/img-a.img")));
}

TEST_F(ServerApiTest, RefusedRequestsGetTheirCodeAndChangeNothing) {
  ASSERT_TRUE(Upload("base", RandomBytes(kMiB, 6)).ok());
  ASSERT_TRUE(Create("vm1", 0, "base").ok());
  ASSERT_TRUE(WriteData("vm1", 0, RandomBytes(4096, 7), true).ok());
  const std::string before = Snapshot();
  struct Case {
    std::string what;
    std::function<grpc::Status()> call;
    grpc::StatusCode code;
    std::string message;
  };
  std::string sink;
  std::vector<Case> cases = {
      {"bad name", [&] { return Create("Bad/Name", kMiB); }, grpc::StatusCode::INVALID_ARGUMENT, "name"},
      {"long name", [&] { return Create(std::string(64, 'a'), kMiB); }, grpc::StatusCode::INVALID_ARGUMENT, "name"},
      {"dot name", [&] { return Create("..", kMiB); }, grpc::StatusCode::INVALID_ARGUMENT, "name"},
      {"zero size", [&] { return Create("vm2", 0); }, grpc::StatusCode::INVALID_ARGUMENT, "size_bytes"},
      {"odd size", [&] { return Create("vm2", 1000); }, grpc::StatusCode::INVALID_ARGUMENT, "size_bytes"},
      {"size with image", [&] { return Create("vm2", kMiB, "base"); }, grpc::StatusCode::INVALID_ARGUMENT, "size_bytes"},
      {"missing image", [&] { return Create("vm2", 0, "nope"); }, grpc::StatusCode::NOT_FOUND, "nope"},
      {"existing", [&] { return Create("vm1", kMiB); }, grpc::StatusCode::ALREADY_EXISTS, "vm1"},
      {"existing image", [&] { return Upload("base", "x"); }, grpc::StatusCode::ALREADY_EXISTS, "base"},
      {"bad image name", [&] { return Upload("-x", "x"); }, grpc::StatusCode::INVALID_ARGUMENT, "name"},
      {"read unaligned", [&] { return ReadData("vm1", 1, 512, &sink); }, grpc::StatusCode::INVALID_ARGUMENT, "offset"},
      {"read empty", [&] { return ReadData("vm1", 0, 0, &sink); }, grpc::StatusCode::INVALID_ARGUMENT, "length"},
      {"read past end", [&] { return ReadData("vm1", kMiB, 512, &sink); }, grpc::StatusCode::OUT_OF_RANGE, "beyond"},
      {"read missing", [&] { return ReadData("vm9", 0, 512, &sink); }, grpc::StatusCode::NOT_FOUND, "vm9"},
      {"write odd length", [&] { return WriteData("vm1", 0, std::string(100, 'x')); }, grpc::StatusCode::INVALID_ARGUMENT, "length"},
      {"write unaligned", [&] { return WriteData("vm1", 100, std::string(512, 'x')); }, grpc::StatusCode::INVALID_ARGUMENT, "offset"},
      {"write past end", [&] { return WriteData("vm1", kMiB - 512, std::string(1024, 'x')); }, grpc::StatusCode::OUT_OF_RANGE, "beyond"},
      {"flush missing", [&] { return Flush("vm9"); }, grpc::StatusCode::NOT_FOUND, "vm9"},
  };
  for (const Case& c : cases) {
    grpc::Status s = c.call();
    EXPECT_EQ(s.error_code(), c.code) << c.what << ": " << s.error_message();
    EXPECT_THAT(s.error_message(), HasSubstr(c.message)) << c.what;
  }
  auto unary = [&](auto method, auto req, auto resp) {
    grpc::ClientContext ctx;
    return ((*volumes_).*method)(&ctx, req, &resp);
  };
  v1::GetVolumeRequest gv;
  gv.set_name("vm9");
  EXPECT_EQ(unary(&v1::VolumeService::Stub::GetVolume, gv, v1::Volume()).error_code(),
            grpc::StatusCode::NOT_FOUND);
  v1::DeleteVolumeRequest dv;
  dv.set_name("vm9");
  EXPECT_EQ(unary(&v1::VolumeService::Stub::DeleteVolume, dv, v1::DeleteVolumeResponse()).error_code(),
            grpc::StatusCode::NOT_FOUND);
  v1::CommitVolumeRequest cv;
  cv.set_name("vm1");
  cv.set_image("base");
  EXPECT_EQ(unary(&v1::VolumeService::Stub::CommitVolume, cv, v1::Image()).error_code(),
            grpc::StatusCode::ALREADY_EXISTS);
  v1::GetAllocationRequest ga;
  ga.set_name("vm1");
  ga.set_offset(2 * kMiB);
  EXPECT_EQ(unary(&v1::VolumeService::Stub::GetAllocation, ga, v1::GetAllocationResponse()).error_code(),
            grpc::StatusCode::OUT_OF_RANGE);
  v1::GetImageRequest gi;
  gi.set_name("nope");
  EXPECT_EQ(unary(&v1::VolumeService::Stub::GetImage, gi, v1::Image()).error_code(),
            grpc::StatusCode::NOT_FOUND);
  EXPECT_EQ(Snapshot(), before);
}

TEST_F(ServerApiTest, ABadVolumeFileIsReportedAndSkippedAtStart) {
  ASSERT_TRUE(Upload("base", RandomBytes(kMiB, 8)).ok());
  ASSERT_TRUE(Create("good", 0, "base").ok());
  ASSERT_TRUE(Create("bad", 0, "base").ok());
  ASSERT_TRUE(Create("moved", 0, "base").ok());
  ASSERT_EQ(StopServer(), 0);
  std::string raw = ReadFileBytes(dir_.File("volumes/bad.cow"));
  raw[0] = 'X';
  WriteFileBytes(dir_.File("volumes/bad.cow"), raw);
  // A COW file whose backing lies outside the data directory is refused.
  WriteFileBytes(dir_.File("outside.img"), RandomBytes(kMiB, 9));
  std::filesystem::remove(dir_.File("volumes/moved.cow"));
  ASSERT_EQ(RunShell("uml_mkcow " + dir_.File("volumes/moved.cow") + " " + dir_.File("outside.img")), 0);
  StartServer();
  EXPECT_THAT(server_.log(), HasSubstr("event=volume_unavailable volume=bad"));
  for (const char* name : {"bad", "moved"}) {
    grpc::ClientContext ctx;
    v1::GetVolumeRequest req;
    req.set_name(name);
    v1::Volume vol;
    ASSERT_TRUE(volumes_->GetVolume(&ctx, req, &vol).ok());
    EXPECT_EQ(vol.state(), v1::VOLUME_STATE_ERROR) << name;
    EXPECT_FALSE(vol.error().empty());
    std::string got;
    EXPECT_EQ(ReadData(name, 0, 512, &got).error_code(), grpc::StatusCode::FAILED_PRECONDITION);
  }
  std::string got;
  EXPECT_TRUE(ReadData("good", 0, 512, &got).ok());
}

TEST_F(ServerApiTest, StartRemovesLeftoverTemporariesAndSymlinkedImagesAreRefused) {
  ASSERT_EQ(StopServer(), 0);
  WriteFileBytes(dir_.File("images/.upload-x-0123456789abcdef"), "partial upload");
  WriteFileBytes(dir_.File("images/.commit-y-0123456789abcdef"), "partial commit");
  WriteFileBytes(dir_.File("real.img"), RandomBytes(kMiB, 10));
  std::filesystem::create_symlink(dir_.File("real.img"), dir_.File("images/link.img"));
  StartServer();
  EXPECT_FALSE(std::filesystem::exists(dir_.File("images/.upload-x-0123456789abcdef")));
  EXPECT_FALSE(std::filesystem::exists(dir_.File("images/.commit-y-0123456789abcdef")));
  grpc::Status s = Create("vm1", 0, "link");
  EXPECT_EQ(s.error_code(), grpc::StatusCode::FAILED_PRECONDITION);
  EXPECT_THAT(s.error_message(), HasSubstr("symlinks are refused"));
  EXPECT_FALSE(std::filesystem::exists(dir_.File("volumes/vm1.cow")));
}

TEST_F(ServerApiTest, HealthIsServingOnceStarted) {
  auto health = grpc::health::v1::Health::NewStub(server_.Channel());
  for (const char* service : {"", "cowblk.v1.BlockService", "cowblk.v1.VolumeService"}) {
    grpc::ClientContext ctx;
    grpc::health::v1::HealthCheckRequest req;
    req.set_service(service);
    grpc::health::v1::HealthCheckResponse resp;
    ASSERT_TRUE(health->Check(&ctx, req, &resp).ok());
    EXPECT_EQ(resp.status(), grpc::health::v1::HealthCheckResponse::SERVING);
  }
  grpc::ClientContext ctx;
  grpc::health::v1::HealthCheckRequest req;
  req.set_service("no.such.Service");
  grpc::health::v1::HealthCheckResponse resp;
  EXPECT_EQ(health->Check(&ctx, req, &resp).error_code(), grpc::StatusCode::NOT_FOUND);
}

}  // namespace
}  // namespace cowblk::testing
