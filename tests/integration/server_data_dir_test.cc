// The data directory against what a crash, an administrator or a hostile
// file leaves in it: start-up removes exactly our temporaries and orphan
// epoch records, never blocks on a FIFO, refuses hard links, and no error
// text names the data directory's absolute path.

#include <sys/mount.h>
#include <sys/stat.h>
#include <unistd.h>

#include <filesystem>

#include "gmock/gmock.h"
#include "tests/support/command.h"
#include "tests/support/scratch.h"
#include "tests/support/server_fixture.h"

namespace cowblk::testing {
namespace {

using ::testing::HasSubstr;
using ::testing::Not;

constexpr uint64_t kMiB = 1 << 20;

class ServerDataDirTest : public ServerFixture {
 protected:
  v1::Volume Get(const std::string& name) {
    grpc::ClientContext ctx;
    v1::GetVolumeRequest req;
    req.set_name(name);
    v1::Volume vol;
    grpc::Status s = volumes_->GetVolume(&ctx, req, &vol);
    EXPECT_TRUE(s.ok()) << name << ": " << s.error_message();
    return vol;
  }

  // Replaces the image a volume's header names with a FIFO.
  static void ReplaceWithFifo(const std::string& path) {
    ASSERT_EQ(unlink(path.c_str()), 0) << path;
    ASSERT_EQ(mkfifo(path.c_str(), 0600), 0) << path;
  }
};

TEST_F(ServerDataDirTest, AnImageNamedLikeATemporarySurvivesARestartWithItsVolume) {
  const std::string bytes = RandomBytes(kMiB, 1);
  ASSERT_TRUE(Upload("x.tmp-1", bytes).ok());
  ASSERT_TRUE(Create("vm1", 0, "x.tmp-1").ok());
  ASSERT_TRUE(WriteData("vm1", 0, std::string(4096, 'a'), /*flush=*/true).ok());
  ASSERT_TRUE(Create("blank", kMiB).ok());
  ASSERT_EQ(StopServer(), 0);
  // What a crash leaves (today's names and a blank base's older one).
  for (const char* t : {"images/.upload-x-0123456789abcdef", "images/.blank/.tmp-512-0123456789abcdef",
                        "images/.blank/512.img.tmp-0123456789abcdef", "volumes/.probe-0123456789abcdef"}) {
    WriteFileBytes(dir_.File(t), "leftover");
  }
  StartServer();
  for (const char* t : {"images/.upload-x-0123456789abcdef", "images/.blank/.tmp-512-0123456789abcdef",
                        "images/.blank/512.img.tmp-0123456789abcdef", "volumes/.probe-0123456789abcdef"}) {
    EXPECT_FALSE(std::filesystem::exists(dir_.File(t))) << t;
  }
  EXPECT_TRUE(ReadFileBytes(dir_.File("images/x.tmp-1.img")) == bytes);
  EXPECT_TRUE(std::filesystem::exists(dir_.File("images/.blank/1048576.img")));
  EXPECT_EQ(Get("vm1").state(), v1::VOLUME_STATE_READY) << Get("vm1").error();
  EXPECT_EQ(Get("blank").state(), v1::VOLUME_STATE_READY) << Get("blank").error();
  std::string got;
  ASSERT_TRUE(ReadData("vm1", 0, 8192, &got).ok());
  EXPECT_EQ(got, std::string(4096, 'a') + bytes.substr(4096, 4096));
}

TEST_F(ServerDataDirTest, FifoBackingFilesPutTheirVolumesInErrorAndStartDoesNotWait) {
  TempDir outside;
  const std::string image = RandomBytes(kMiB, 2);
  ASSERT_TRUE(Upload("base", image).ok());
  ASSERT_TRUE(Upload("piped", image).ok());
  ASSERT_TRUE(Create("good", 0, "base").ok());
  ASSERT_TRUE(Create("inside", 0, "piped").ok());
  ASSERT_EQ(StopServer(), 0);
  // A COW file over a file outside the data directory that becomes a FIFO:
  // opened before the confinement check, start-up waited for a writer.
  WriteFileBytes(outside.File("far.img"), image);
  ASSERT_EQ(RunShell("uml_mkcow " + dir_.File("volumes/outside.cow") + " " + outside.File("far.img")),
            0);
  ReplaceWithFifo(outside.File("far.img"));
  ReplaceWithFifo(dir_.File("images/piped.img"));
  StartServer();
  for (const char* name : {"outside", "inside"}) {
    const v1::Volume vol = Get(name);
    EXPECT_EQ(vol.state(), v1::VOLUME_STATE_ERROR) << name;
    EXPECT_THAT(vol.error(), Not(HasSubstr(dir_.path()))) << name;
    std::string got;
    EXPECT_EQ(ReadData(name, 0, 512, &got).error_code(), grpc::StatusCode::FAILED_PRECONDITION);
  }
  EXPECT_THAT(Get("outside").error(), HasSubstr("is outside images"));
  EXPECT_THAT(Get("inside").error(), HasSubstr("backing file images/piped.img is not a regular file"));
  std::string got;
  ASSERT_TRUE(ReadData("good", 0, kMiB, &got).ok());
  EXPECT_TRUE(got == image);
}

TEST_F(ServerDataDirTest, AVolumeInErrorKeepsTheSizeAndImageItsHeaderNames) {
  ASSERT_TRUE(Upload("base", RandomBytes(3 * kMiB, 11)).ok());
  ASSERT_TRUE(Create("layered", 0, "base").ok());
  ASSERT_TRUE(Create("blank", 2 * kMiB, "").ok());
  std::string bad_bytes(4096, 'X');
  WriteFileBytes(dir_.File("volumes/garbage.cow"), bad_bytes);
  ASSERT_EQ(StopServer(), 0);
  // Both images change under their volumes (UML's mtime check).
  SetMtime(dir_.File("images/base.img"), 981173106);
  SetMtime(dir_.File("images/.blank/2097152.img"), 981173106);
  StartServer();
  const v1::Volume layered = Get("layered");
  EXPECT_EQ(layered.state(), v1::VOLUME_STATE_ERROR);
  EXPECT_THAT(layered.error(), HasSubstr("mtime mismatch"));
  EXPECT_EQ(layered.size_bytes(), 3 * kMiB);
  EXPECT_EQ(layered.image(), "base");
  const v1::Volume blank = Get("blank");
  EXPECT_EQ(blank.state(), v1::VOLUME_STATE_ERROR);
  EXPECT_EQ(blank.size_bytes(), 2 * kMiB);
  EXPECT_EQ(blank.image(), "");
  // A header that cannot be read says nothing.
  const v1::Volume garbage = Get("garbage");
  EXPECT_EQ(garbage.state(), v1::VOLUME_STATE_ERROR);
  EXPECT_EQ(garbage.size_bytes(), 0u);
  EXPECT_EQ(garbage.image(), "");
  {
    grpc::ClientContext ctx;
    v1::ListVolumesRequest req;
    v1::ListVolumesResponse resp;
    ASSERT_TRUE(volumes_->ListVolumes(&ctx, req, &resp).ok());
    ASSERT_EQ(resp.volumes_size(), 3);
    EXPECT_EQ(resp.volumes(2).name(), "layered");  // name order: blank, garbage, layered
    EXPECT_EQ(resp.volumes(2).size_bytes(), 3 * kMiB);
    EXPECT_EQ(resp.volumes(2).image(), "base");
  }
  // The image still has its volume, and is not deleted from under it.
  grpc::ClientContext ctx;
  v1::DeleteImageRequest req;
  req.set_name("base");
  v1::DeleteImageResponse resp;
  EXPECT_EQ(volumes_->DeleteImage(&ctx, req, &resp).error_code(),
            grpc::StatusCode::FAILED_PRECONDITION);
  EXPECT_TRUE(std::filesystem::exists(dir_.File("images/base.img")));
}

TEST_F(ServerDataDirTest, ErrorTextsNameFilesRelativeToTheDataDirectory) {
  ASSERT_TRUE(Upload("base", RandomBytes(kMiB, 3)).ok());
  ASSERT_TRUE(Create("changed", 0, "base").ok());
  ASSERT_EQ(StopServer(), 0);
  // The image grows: the volume's header no longer matches it.
  WriteFileBytes(dir_.File("images/base.img"), RandomBytes(2 * kMiB, 4));
  WriteFileBytes(dir_.File("real.img"), RandomBytes(kMiB, 5));
  std::filesystem::create_symlink(dir_.File("real.img"), dir_.File("images/link.img"));
  StartServer();
  std::vector<std::string> texts;
  const v1::Volume vol = Get("changed");
  EXPECT_EQ(vol.state(), v1::VOLUME_STATE_ERROR);
  EXPECT_THAT(vol.error(), HasSubstr("images/base.img"));
  texts.push_back(vol.error());
  {
    grpc::ClientContext ctx;
    v1::ListVolumesRequest req;
    v1::ListVolumesResponse resp;
    ASSERT_TRUE(volumes_->ListVolumes(&ctx, req, &resp).ok());
    for (const v1::Volume& v : resp.volumes()) texts.push_back(v.error());
  }
  std::string got;
  grpc::Status read = ReadData("changed", 0, 512, &got);
  EXPECT_EQ(read.error_code(), grpc::StatusCode::FAILED_PRECONDITION);
  texts.push_back(read.error_message());
  {
    grpc::ClientContext ctx;
    auto stream = blocks_->Session(&ctx);
    v1::SessionRequest req;
    req.set_id(1);
    req.set_volume("changed");
    req.set_op(v1::OP_READ);
    req.set_length(512);
    ASSERT_TRUE(stream->Write(req));
    v1::SessionResponse resp;
    ASSERT_TRUE(stream->Read(&resp));
    EXPECT_EQ(resp.code(), grpc::StatusCode::FAILED_PRECONDITION);
    texts.push_back(resp.message());
    stream->WritesDone();
    texts.push_back(stream->Finish().error_message());
  }
  grpc::Status link = Create("vm1", 0, "link");
  EXPECT_EQ(link.error_code(), grpc::StatusCode::FAILED_PRECONDITION);
  EXPECT_THAT(link.error_message(), HasSubstr("symlinks are refused"));
  texts.push_back(link.error_message());
  {
    grpc::ClientContext ctx;
    v1::GetImageRequest req;
    req.set_name("link");
    v1::Image img;
    grpc::Status s = volumes_->GetImage(&ctx, req, &img);
    EXPECT_EQ(s.error_code(), grpc::StatusCode::FAILED_PRECONDITION);
    texts.push_back(s.error_message());
  }
  for (const std::string& text : texts) {
    EXPECT_THAT(text, Not(HasSubstr(dir_.path()))) << text;
  }
  // The log keeps the full paths.
  EXPECT_THAT(server_.log(), HasSubstr(dir_.File("images/base.img")));
}

TEST_F(ServerDataDirTest, HardLinkedImagesAreRefused) {
  // A hard link makes a file from anywhere on the file system (here one
  // outside the data directory) look like an image.
  WriteFileBytes(dir_.File("secret"), RandomBytes(kMiB, 6));
  ASSERT_EQ(link(dir_.File("secret").c_str(), dir_.File("images/stolen.img").c_str()), 0);
  const std::string before = Snapshot();
  grpc::Status s = Create("vm1", 0, "stolen");
  EXPECT_EQ(s.error_code(), grpc::StatusCode::FAILED_PRECONDITION);
  EXPECT_THAT(s.error_message(), HasSubstr("hard links"));
  EXPECT_EQ(Snapshot(), before);
  // The same at start, for a volume whose image gained a link meanwhile.
  ASSERT_TRUE(Upload("base", RandomBytes(kMiB, 7)).ok());
  ASSERT_TRUE(Create("vm2", 0, "base").ok());
  ASSERT_EQ(StopServer(), 0);
  ASSERT_EQ(link(dir_.File("images/base.img").c_str(), dir_.File("base-copy").c_str()), 0);
  StartServer();
  EXPECT_EQ(Get("vm2").state(), v1::VOLUME_STATE_ERROR);
  EXPECT_THAT(Get("vm2").error(), HasSubstr("hard links"));
}

TEST_F(ServerDataDirTest, AnOrphanEpochRecordIsRemovedAtStartAndNotInherited) {
  ASSERT_TRUE(Create("vm1", kMiB).ok());
  const std::string old_epoch = Get("vm1").epoch();
  ASSERT_FALSE(old_epoch.empty());
  ASSERT_EQ(StopServer(), 0);
  // A DeleteVolume cut short after the volume file went.
  ASSERT_EQ(unlink(dir_.File("volumes/vm1.cow").c_str()), 0);
  StartServer();
  EXPECT_FALSE(std::filesystem::exists(dir_.File("volumes/vm1.state")));
  EXPECT_THAT(server_.log(), HasSubstr("event=orphan_state_removed"));
  ASSERT_TRUE(Create("vm1", kMiB).ok());
  EXPECT_NE(Get("vm1").epoch(), old_epoch);
}

TEST_F(ServerDataDirTest, AReadOnlyImagesDirectoryStillServes) {
  // A fixed catalogue (docs/kubernetes.md): the size probe cannot create
  // its file in images/.blank, and the server serves anyway.
  ASSERT_TRUE(Upload("base", RandomBytes(kMiB, 8)).ok());
  ASSERT_TRUE(Create("vm1", 0, "base").ok());
  ASSERT_EQ(StopServer(), 0);
  const std::string images = dir_.File("images");
  ASSERT_EQ(RunShell("mount --bind " + images + " " + images + " && mount -o remount,bind,ro " +
                     images + " " + images),
            0)
      << "needs root (as CI has)";
  struct Unmount {
    std::string path;
    ~Unmount() { umount2(path.c_str(), MNT_DETACH); }
  } unmount{images};
  StartServer();
  EXPECT_THAT(server_.log(), HasSubstr("event=volume_size_unprobed"));
  ASSERT_TRUE(WriteData("vm1", 0, std::string(4096, 'w'), /*flush=*/true).ok());
  std::string got;
  ASSERT_TRUE(ReadData("vm1", 0, 4096, &got).ok());
  EXPECT_EQ(got, std::string(4096, 'w'));
  ASSERT_EQ(StopServer(), 0);
}

}  // namespace
}  // namespace cowblk::testing
