// Limits and resource errors end to end: oversized messages, a full file
// system and a file system's file size limit (a real, tiny loop-mounted
// ext4), and requests to a volume deleted
// under a session.

#include <fcntl.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <unistd.h>

#include <thread>

#include "gmock/gmock.h"
#include "tests/support/command.h"
#include "tests/support/server_fixture.h"

namespace cowblk::testing {
namespace {

using ::testing::HasSubstr;
using ::testing::Not;

constexpr uint64_t kMiB = 1 << 20;

v1::SessionRequest Write(uint64_t id, uint64_t offset, const std::string& data,
                         const std::string& volume = "") {
  v1::SessionRequest r;
  r.set_id(id);
  r.set_volume(volume);
  r.set_op(v1::OP_WRITE);
  r.set_offset(offset);
  r.set_data(data);
  return r;
}

class ServerLimitsTest : public ServerFixture {};

TEST_F(ServerLimitsTest, AMessageAboveTheLimitIsResourceExhausted) {
  ASSERT_TRUE(Create("vm1", 64 * kMiB).ok());
  const std::string before = Snapshot();
  grpc::Status s = WriteData("vm1", 0, std::string(48 * kMiB, 'x'));
  EXPECT_EQ(s.error_code(), grpc::StatusCode::RESOURCE_EXHAUSTED) << s.error_message();
  EXPECT_EQ(Snapshot(), before);
}

TEST_F(ServerLimitsTest, ARequestToAVolumeDeletedUnderTheSessionFailsAlone) {
  ASSERT_TRUE(Create("vm1", kMiB).ok());
  grpc::ClientContext ctx;
  auto stream = blocks_->Session(&ctx);
  v1::SessionResponse resp;
  ASSERT_TRUE(stream->Write(Write(1, 0, std::string(512, 'a'), "vm1")));
  ASSERT_TRUE(stream->Read(&resp));
  EXPECT_EQ(resp.code(), 0);
  grpc::ClientContext dctx;
  v1::DeleteVolumeRequest del;
  del.set_name("vm1");
  v1::DeleteVolumeResponse dresp;
  ASSERT_TRUE(volumes_->DeleteVolume(&dctx, del, &dresp).ok());
  ASSERT_TRUE(stream->Write(Write(2, 0, std::string(512, 'b'))));
  ASSERT_TRUE(stream->Read(&resp));
  EXPECT_EQ(resp.id(), 2u);
  EXPECT_EQ(resp.code(), grpc::StatusCode::UNAVAILABLE);
  EXPECT_THAT(resp.message(), HasSubstr("closed"));
  stream->WritesDone();
  EXPECT_TRUE(stream->Finish().ok());
}

TEST_F(ServerLimitsTest, SigtermEndsIdleSessionsAtOnceFlushesAndExitsZero) {
  ASSERT_EQ(StopServer(), 0);
  // A drain timeout far above what ending an idle session takes: 1 s was
  // passed once under TSan on a loaded machine (drain_timeout logged 1.0 s
  // after draining, the Session ended by it).
  StartServer({"--drain-seconds", "30"});
  ASSERT_TRUE(Create("vm1", kMiB).ok());
  grpc::ClientContext ctx;
  auto stream = blocks_->Session(&ctx);
  v1::SessionResponse resp;
  ASSERT_TRUE(stream->Write(Write(1, 0, std::string(4096, 'a'), "vm1")));
  ASSERT_TRUE(stream->Read(&resp));
  EXPECT_EQ(resp.code(), 0);
  // The session stays open and idle: the drain ends it at once (it does not
  // wait out --drain-seconds), the server flushes and exits 0.
  EXPECT_EQ(StopServer(SIGTERM), 0);
  EXPECT_THAT(server_.log(), Not(HasSubstr("event=drain_timeout")));
  EXPECT_THAT(server_.log(), HasSubstr("event=stopped flush=ok"));
  EXPECT_FALSE(stream->Read(&resp));
  EXPECT_FALSE(stream->Finish().ok());
  StartServer();
  std::string got;
  ASSERT_TRUE(ReadData("vm1", 0, 4096, &got).ok());
  EXPECT_EQ(got, std::string(4096, 'a'));
}

TEST_F(ServerLimitsTest, CallsAfterTheDrainBeganAreRefusedUnavailable) {
  // A request in flight (its bitmap write held) keeps the drain going while
  // the test calls again; then the request completes and the server exits.
  ASSERT_EQ(StopServer(), 0);
  const std::string fifo = dir_.File("hold.fifo");
  ASSERT_EQ(mkfifo(fifo.c_str(), 0600), 0);
  // Ordered: a held bitmap write keeps a write unanswered only there.
  StartServer({"--debug-hold-bitmap-writes", fifo, "--durability", "ordered"});
  ASSERT_TRUE(Create("vm1", kMiB).ok());
  grpc::ClientContext ctx;
  auto stream = blocks_->Session(&ctx);
  v1::SessionResponse resp;
  ASSERT_TRUE(stream->Write(Write(1, 0, std::string(512, 'a'), "vm1")));
  server_.WaitForLog("event=io_held");
  std::thread stopper([&] { EXPECT_EQ(StopServer(SIGTERM), 0); });
  // The server logs `draining` before it refuses anything; wait for that.
  server_.WaitForLog("event=draining");
  grpc::ClientContext gctx;
  v1::GetVolumeRequest req;
  req.set_name("vm1");
  v1::Volume vol;
  grpc::Status s = volumes_->GetVolume(&gctx, req, &vol);
  EXPECT_EQ(s.error_code(), grpc::StatusCode::UNAVAILABLE);
  EXPECT_THAT(s.error_message(), HasSubstr("shutting down"));
  // Release the held bitmap write: the request is answered, then the
  // stream ends and the drain completes.
  const int fd = open(fifo.c_str(), O_WRONLY | O_CLOEXEC);
  ASSERT_GE(fd, 0);
  ASSERT_EQ(write(fd, "r", 1), 1);
  close(fd);
  ASSERT_TRUE(stream->Read(&resp));
  EXPECT_EQ(resp.id(), 1u);
  EXPECT_EQ(resp.code(), 0);
  EXPECT_FALSE(stream->Read(&resp));
  EXPECT_EQ(stream->Finish().error_code(), grpc::StatusCode::UNAVAILABLE);
  stopper.join();
}

// cowblkd over a data directory on a real, tiny loop-mounted ext4.
class LoopExt4Test : public ServerFixture {
 protected:
  void SetUp() override { MountAndStart(""); }
  // `mkfs_options` go to mkfs.ext4.
  void MountAndStart(const std::string& mkfs_options) {
    image_ = dir_.File("fs.img");
    mnt_ = dir_.File("mnt");
    ASSERT_EQ(RunShell("truncate -s 16M " + image_ + " && mkfs.ext4 -q -F " + mkfs_options + " " +
                       image_ + " && mkdir " + mnt_ + " && mount -o loop " + image_ + " " + mnt_),
              0)
        << "needs root and loop devices (as CI has)";
    mounted_ = true;
    ASSERT_TRUE(server_.Start(mnt_ + "/data")) << server_.log();
    volumes_ = v1::VolumeService::NewStub(server_.Channel());
    blocks_ = v1::BlockService::NewStub(server_.Channel());
  }
  void TearDown() override {
    server_.Stop(SIGKILL);
    if (mounted_) umount2(mnt_.c_str(), MNT_DETACH);
  }

  std::string image_, mnt_;
  bool mounted_ = false;
};

using FullDiskTest = LoopExt4Test;

// ext4 without extents, 1 KiB blocks: files end near 16 GiB, a limit a test
// can reach (with extents and 4 KiB blocks it is 2^44 - 4096, just below the
// documented maximum, which failed INTERNAL "File too large" half-way).
class SmallFileLimitTest : public LoopExt4Test {
 protected:
  void SetUp() override { MountAndStart("-b 1024 -O ^extent,^64bit"); }
};

TEST_F(SmallFileLimitTest, SizesAboveTheFileSystemsLimitAreRefusedUpFrontNamingIt) {
  const std::string before = Snapshot();
  grpc::Status s = Create("big", uint64_t{1} << 44);
  ASSERT_EQ(s.error_code(), grpc::StatusCode::INVALID_ARGUMENT) << s.error_message();
  EXPECT_THAT(s.error_message(), HasSubstr("file system"));
  EXPECT_THAT(s.error_message(), Not(HasSubstr(mnt_)));
  EXPECT_EQ(Snapshot(), before);
  // "size_bytes: N is above the limit of L (...)": L itself fits.
  const std::string text = s.error_message();
  const size_t at = text.find("limit of ");
  ASSERT_NE(at, std::string::npos) << text;
  const uint64_t limit = std::stoull(text.substr(at + 9));
  EXPECT_LT(limit, uint64_t{32} << 30);
  EXPECT_GT(limit, uint64_t{8} << 30);
  EXPECT_EQ(Create("over", limit + 512).error_code(), grpc::StatusCode::INVALID_ARGUMENT);
  v1::Volume vol;
  ASSERT_TRUE(Create("max", limit, "", &vol).ok());
  EXPECT_EQ(vol.size_bytes(), limit);
  const std::string tail = RandomBytes(4096, 11);
  ASSERT_TRUE(WriteData("max", limit - 4096, tail, /*flush=*/true).ok());
  std::string got;
  ASSERT_TRUE(ReadData("max", limit - 4096, 4096, &got).ok());
  EXPECT_TRUE(got == tail);
}

TEST_F(FullDiskTest, EnospcFailsTheWriteAloneAndKeepsEarlierData) {
  ASSERT_TRUE(Create("vm1", 64 * kMiB).ok());
  const std::string first = RandomBytes(kMiB, 1);
  ASSERT_TRUE(WriteData("vm1", 0, first, /*flush=*/true).ok());
  grpc::ClientContext ctx;
  auto stream = blocks_->Session(&ctx);
  v1::SessionResponse resp;
  int exhausted = 0;
  for (uint64_t i = 1; i < 64 && exhausted == 0; ++i) {
    ASSERT_TRUE(stream->Write(Write(i, i * kMiB, RandomBytes(kMiB, 100 + i), "vm1")));
    ASSERT_TRUE(stream->Read(&resp));
    if (resp.code() != 0) {
      EXPECT_EQ(resp.code(), grpc::StatusCode::RESOURCE_EXHAUSTED) << resp.message();
      EXPECT_THAT(resp.message(), HasSubstr("No space left on device"));
      EXPECT_THAT(resp.message(), HasSubstr("volumes/vm1.cow"));
      EXPECT_THAT(resp.message(), Not(HasSubstr(mnt_)));  // relative to the data directory
      ++exhausted;
    }
  }
  EXPECT_EQ(exhausted, 1);
  // The stream still answers: a read of the first megabyte.
  v1::SessionRequest read;
  read.set_id(1000);
  read.set_op(v1::OP_READ);
  read.set_offset(0);
  read.set_length(kMiB);
  ASSERT_TRUE(stream->Write(read));
  ASSERT_TRUE(stream->Read(&resp));
  EXPECT_EQ(resp.code(), 0);
  EXPECT_TRUE(resp.data() == first);
  stream->WritesDone();
  EXPECT_TRUE(stream->Finish().ok());
  ASSERT_EQ(server_.Stop(SIGTERM), 0);
  ASSERT_TRUE(server_.Start(mnt_ + "/data")) << server_.log();
  blocks_ = v1::BlockService::NewStub(server_.Channel());
  std::string got;
  ASSERT_TRUE(ReadData("vm1", 0, kMiB, &got).ok());
  EXPECT_TRUE(got == first);
}

}  // namespace
}  // namespace cowblk::testing
