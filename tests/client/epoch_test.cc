// Volume epochs against a real cowblkd: a server that crashed while writes
// it had acknowledged were not yet flushed may have lost them; the client
// learns that from the volume's new epoch and fails its next flush
// DATA_LOSS, once. A clean restart, or a crash that cannot have lost
// anything, keeps the epoch and every flush succeeds.

#include <signal.h>
#include <sys/stat.h>
#include <unistd.h>

#include <fstream>
#include <functional>
#include <sstream>
#include <string>

#include "gmock/gmock.h"
#include "tests/client/client_fixture.h"

namespace cowblk::testing {
namespace {

constexpr uint64_t kMiB = 1 << 20;
constexpr uint64_t kBlock = 4096;

class EpochTest : public ClientFixture {
 protected:
  void SetUp() override { fixed_port_ = true; }

  void Start(const std::vector<std::string>& args) {
    ServerConfig config;
    config.args = args;
    StartServer(config);
  }

  std::string StatePath(const std::string& volume) const {
    return dir_.path() + "/volumes/" + volume + ".state";
  }
  std::string ReadState(const std::string& volume) const {
    std::ifstream in(StatePath(volume));
    std::stringstream s;
    s << in.rdbuf();
    return s.str();
  }
};

// Bits wait for a commit that a 60 s interval never starts on its own.
const std::vector<std::string> kDeferred = {"--durability", "deferred",
                                            "--commit-interval-ms", "60000"};
// Not the default since issue #23.
const std::vector<std::string> kOrdered = {"--durability", "ordered"};

TEST_F(EpochTest, DeferredCrashWithUnflushedWritesFailsTheNextFlushOnce) {
  Start(kDeferred);
  auto volume = NewVolume("disk0", kMiB);
  ASSERT_NE(volume, nullptr);
  const std::string a = RandomBytes(kBlock, 1);
  ASSERT_TRUE(volume->Write(0, a.data(), a.size()).ok());  // acknowledged, not flushed
  const std::string before = ReadState("disk0");
  EXPECT_NE(before.find(" open=1 "), std::string::npos) << before;
  ASSERT_NO_FATAL_FAILURE(Restart(SIGKILL));
  EXPECT_NE(server_.log().find("event=volume_epoch_changed"), std::string::npos) << server_.log();

  absl::Status flush = volume->Flush();
  EXPECT_EQ(flush.code(), absl::StatusCode::kDataLoss) << flush;
  EXPECT_THAT(std::string(flush.message()), ::testing::HasSubstr("may be lost"));
  EXPECT_EQ(volume->stats().epoch_losses, 1u);
  // The loss was real: the bit never reached the disk, the block reads as
  // the blank base did.
  std::string back(kBlock, 'x');
  ASSERT_TRUE(volume->Read(0, back.data(), back.size()).ok());
  EXPECT_EQ(back, std::string(kBlock, '\0'));
  // Reported once; what is written from here on is flushed as usual.
  EXPECT_TRUE(volume->Flush().ok());
  ASSERT_TRUE(volume->Write(0, a.data(), a.size()).ok());
  EXPECT_TRUE(volume->Flush().ok());
}

TEST_F(EpochTest, DeferredCleanRestartKeepsTheEpochAndTheWrites) {
  Start(kDeferred);
  auto volume = NewVolume("disk0", kMiB);
  ASSERT_NE(volume, nullptr);
  const std::string a = RandomBytes(kBlock, 2);
  ASSERT_TRUE(volume->Write(0, a.data(), a.size()).ok());
  ASSERT_NO_FATAL_FAILURE(Restart(SIGTERM));  // closing commits the bits
  EXPECT_NE(ReadState("disk0").find(" open=1 "), std::string::npos);
  EXPECT_EQ(server_.log().find("event=volume_epoch_changed"), std::string::npos);
  EXPECT_TRUE(volume->Flush().ok());
  std::string back(kBlock, '\0');
  ASSERT_TRUE(volume->Read(0, back.data(), back.size()).ok());
  EXPECT_EQ(back, a);
  EXPECT_EQ(volume->stats().epoch_losses, 0u);
}

TEST_F(EpochTest, DeferredCrashAfterAFlushLosesNothingAndFlushesOk) {
  Start(kDeferred);
  auto volume = NewVolume("disk0", kMiB);
  ASSERT_NE(volume, nullptr);
  const std::string a = RandomBytes(kBlock, 3);
  ASSERT_TRUE(volume->Write(0, a.data(), a.size()).ok());
  ASSERT_TRUE(volume->Flush().ok());
  ASSERT_NO_FATAL_FAILURE(Restart(SIGKILL));
  EXPECT_TRUE(volume->Flush().ok());  // the epoch changed, but nothing was at risk
  std::string back(kBlock, '\0');
  ASSERT_TRUE(volume->Read(0, back.data(), back.size()).ok());
  EXPECT_EQ(back, a);
}

TEST_F(EpochTest, OrderedCrashKeepsTheEpochItsWritesAreInThePageCache) {
  Start(kOrdered);
  auto volume = NewVolume("disk0", kMiB);
  ASSERT_NE(volume, nullptr);
  const std::string a = RandomBytes(kBlock, 4);
  ASSERT_TRUE(volume->Write(0, a.data(), a.size()).ok());
  ASSERT_NO_FATAL_FAILURE(Restart(SIGKILL));
  EXPECT_EQ(server_.log().find("event=volume_epoch_changed"), std::string::npos);
  EXPECT_TRUE(volume->Flush().ok());
  std::string back(kBlock, '\0');
  ASSERT_TRUE(volume->Read(0, back.data(), back.size()).ok());
  EXPECT_EQ(back, a);
}

TEST_F(EpochTest, OrderedVolumeLeftOpenBeforeARebootGetsANewEpoch) {
  Start(kOrdered);
  auto volume = NewVolume("disk0", kMiB);
  ASSERT_NE(volume, nullptr);
  const std::string a = RandomBytes(kBlock, 5);
  ASSERT_TRUE(volume->Write(0, a.data(), a.size()).ok());
  // What a power loss leaves: the volume marked open by an earlier boot.
  ASSERT_NO_FATAL_FAILURE(Restart(SIGKILL, [&] {
    std::string state = ReadState("disk0");
    const size_t boot = state.find(" boot=");
    ASSERT_NE(boot, std::string::npos) << state;
    state.replace(boot + 6, state.find(' ', boot + 1) - boot - 6, "an-earlier-boot");
    std::ofstream(StatePath("disk0"), std::ios::trunc) << state;
  }));
  EXPECT_NE(server_.log().find("not closed before a reboot"), std::string::npos)
      << server_.log();
  EXPECT_EQ(volume->Flush().code(), absl::StatusCode::kDataLoss);
}

TEST_F(EpochTest, AVolumeWhoseRecordCannotBeWrittenFailsSafeEvenAfterACleanRestart) {
  Start({});
  auto volume = NewVolume("disk0", kMiB);
  ASSERT_NE(volume, nullptr);
  // The record cannot be written (a directory in its place): every process
  // serves its own epoch, so even a clean restart counts as a possible loss.
  ASSERT_NO_FATAL_FAILURE(Restart(SIGTERM, [&] {
    ASSERT_EQ(unlink(StatePath("disk0").c_str()), 0);
    ASSERT_EQ(mkdir(StatePath("disk0").c_str(), 0755), 0);
  }));
  EXPECT_NE(server_.log().find("event=volume_epoch_unrecorded"), std::string::npos)
      << server_.log();
  const std::string a = RandomBytes(kBlock, 7);
  ASSERT_TRUE(volume->Write(0, a.data(), a.size()).ok());
  ASSERT_NO_FATAL_FAILURE(Restart(SIGTERM));
  EXPECT_EQ(volume->Flush().code(), absl::StatusCode::kDataLoss);
  std::string back(kBlock, '\0');
  ASSERT_TRUE(volume->Read(0, back.data(), back.size()).ok());
  EXPECT_EQ(back, a);  // nothing was lost in fact: the flush failed needlessly, not wrongly
}

TEST_F(EpochTest, ReadersAndFlushesWithoutWritesNeverSeeALoss) {
  Start(kDeferred);
  auto volume = NewVolume("disk0", kMiB);
  ASSERT_NE(volume, nullptr);
  std::string back(kBlock, '\0');
  ASSERT_TRUE(volume->Read(0, back.data(), back.size()).ok());
  ASSERT_NO_FATAL_FAILURE(Restart(SIGKILL));
  EXPECT_TRUE(volume->Flush().ok());
  EXPECT_EQ(volume->stats().epoch_losses, 0u);
}

}  // namespace
}  // namespace cowblk::testing
