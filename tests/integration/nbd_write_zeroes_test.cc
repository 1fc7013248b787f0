// NBD_CMD_WRITE_ZEROES on cowblkd's export, as doc/proto.md of
// NetworkBlockDevice/nbd has it: without NBD_CMD_FLAG_NO_HOLE the range may
// become a hole (and over never-written sectors of a blank volume nothing
// at all happens: the COW file's bytes and its allocation stay as they
// were, checked on disk); with NO_HOLE it stays allocated; fast zero is
// advertised and served (every zeroing is a hole punched or a range
// zeroed by fallocate, never data written); unknown or misplaced flags are
// EINVAL and change nothing.

#include <libnbd.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstdint>
#include <string>
#include <tuple>
#include <vector>

#include "gtest/gtest.h"
#include "tests/integration/nbd_fixture.h"
#include "tests/support/scratch.h"

namespace cowblk::testing {
namespace {

constexpr uint16_t kCmdRead = 0, kCmdWriteZeroes = 6;
constexpr uint16_t kFlagFua = 1, kFlagNoHole = 2, kFlagDf = 4, kFlagFastZero = 16;

class NbdWriteZeroesTest : public NbdTest {
 protected:
  // Bytes the COW file of `volume` allocates on disk.
  int64_t Allocated(const std::string& volume) const {
    struct stat st{};
    if (stat(dir_.File("volumes/" + volume + ".cow").c_str(), &st) != 0) return -1;
    return static_cast<int64_t>(st.st_blocks) * 512;
  }
  static int Errno(int rc) { return rc == -1 ? nbd_get_errno() : 0; }
  static std::string Read(nbd_handle* h, uint64_t offset, size_t length) {
    std::string out(length, 'x');
    EXPECT_EQ(nbd_pread(h, out.data(), length, offset, 0), 0) << nbd_get_error();
    return out;
  }
};

TEST_F(NbdWriteZeroesTest, ZeroingNeverWrittenSectorsOfABlankVolumeChangesNothingOnDisk) {
  nbd_handle* h = Connect("disk0");
  ASSERT_NE(h, nullptr) << nbd_get_error();
  ASSERT_EQ(nbd_can_zero(h), 1);
  // Something written elsewhere, flushed: its bitmap block exists.
  ASSERT_EQ(nbd_pwrite(h, RandomBytes(4096, 1).data(), 4096, 0, 0), 0) << nbd_get_error();
  ASSERT_EQ(nbd_flush(h, 0), 0);
  const std::string before = Snapshot();
  const int64_t allocated = Allocated("disk0");
  ASSERT_GT(allocated, 0);
  ASSERT_EQ(nbd_zero(h, 1 << 20, 1 << 20, 0), 0) << nbd_get_error();
  ASSERT_EQ(nbd_zero(h, 512, 4096, LIBNBD_CMD_FLAG_FUA), 0) << nbd_get_error();
  ASSERT_EQ(nbd_zero(h, kSize - (4 << 20), 4 << 20, LIBNBD_CMD_FLAG_FAST_ZERO), 0)
      << nbd_get_error();
  ASSERT_EQ(nbd_trim(h, 1 << 20, 2 << 20, 0), 0) << nbd_get_error();
  ASSERT_EQ(nbd_flush(h, 0), 0);
  EXPECT_EQ(Snapshot(), before);  // bitmap and data: the same bytes
  EXPECT_EQ(Allocated("disk0"), allocated);
  EXPECT_TRUE(Read(h, 1 << 20, 1 << 20) == std::string(1 << 20, '\0'));
}

TEST_F(NbdWriteZeroesTest, ZeroingWrittenDataPunchesItAndNoHoleKeepsItAllocated) {
  nbd_handle* h = Connect("disk0");
  ASSERT_NE(h, nullptr) << nbd_get_error();
  const std::string data = RandomBytes(2 << 20, 2);
  ASSERT_EQ(nbd_pwrite(h, data.data(), data.size(), 0, 0), 0) << nbd_get_error();
  ASSERT_EQ(nbd_flush(h, 0), 0);
  const int64_t written = Allocated("disk0");
  // Without NO_HOLE: a hole where the data was (the file gives back at
  // least most of the first MiB), reads zeros.
  ASSERT_EQ(nbd_zero(h, 1 << 20, 0, 0), 0) << nbd_get_error();
  EXPECT_TRUE(Read(h, 0, 1 << 20) == std::string(1 << 20, '\0'));
  const int64_t punched = Allocated("disk0");
  EXPECT_LE(punched, written - (1 << 19)) << written;
  // With NO_HOLE over the rest of the data: zeros, still allocated.
  ASSERT_EQ(nbd_zero(h, 1 << 20, 1 << 20, LIBNBD_CMD_FLAG_NO_HOLE), 0) << nbd_get_error();
  EXPECT_TRUE(Read(h, 1 << 20, 1 << 20) == std::string(1 << 20, '\0'));
  EXPECT_GE(Allocated("disk0"), punched);
  // With NO_HOLE over never-written sectors: they become allocated zeros.
  ASSERT_EQ(nbd_zero(h, 1 << 20, 4 << 20, LIBNBD_CMD_FLAG_NO_HOLE | LIBNBD_CMD_FLAG_FAST_ZERO),
            0)
      << nbd_get_error();
  ASSERT_EQ(nbd_flush(h, 0), 0);
  EXPECT_GE(Allocated("disk0"), punched + (1 << 20) - 65536);
  EXPECT_TRUE(Read(h, 4 << 20, 1 << 20) == std::string(1 << 20, '\0'));
  // Data written after the zeroing reads back (the range's bits are set).
  ASSERT_EQ(nbd_pwrite(h, data.data(), 4096, (4 << 20) + 8192, 0), 0) << nbd_get_error();
  EXPECT_EQ(Read(h, (4 << 20) + 8192, 4096), data.substr(0, 4096));
}

TEST_F(NbdWriteZeroesTest, OverAnImageNeverWrittenSectorsReadZerosAfterZeroing) {
  const std::string image = RandomBytes(4 << 20, 3);
  ASSERT_TRUE(Upload("base", image).ok());
  ASSERT_TRUE(Create("vm", 0, "base").ok());
  nbd_handle* h = Connect("vm");
  ASSERT_NE(h, nullptr) << nbd_get_error();
  ASSERT_EQ(nbd_zero(h, 1 << 20, 1 << 20, 0), 0) << nbd_get_error();
  ASSERT_EQ(nbd_trim(h, 4096, 0, 0), 0) << nbd_get_error();  // (a trim reads as zeros too)
  EXPECT_TRUE(Read(h, 0, 4096) == std::string(4096, '\0'));
  EXPECT_TRUE(Read(h, 4096, (1 << 20) - 4096) == image.substr(4096, (1 << 20) - 4096));
  EXPECT_TRUE(Read(h, 1 << 20, 1 << 20) == std::string(1 << 20, '\0'));
  EXPECT_TRUE(Read(h, 2 << 20, 4096) == image.substr(2 << 20, 4096));
}

TEST_F(NbdWriteZeroesTest, OverTheHolesOfAnImageZeroingChangesNothingOnDisk) {
  // The upload keeps blocks of zeros as holes in the image file.
  const std::string image =
      RandomBytes(1 << 20, 5) + std::string(2 << 20, '\0') + RandomBytes(1 << 20, 6);
  ASSERT_TRUE(Upload("holes", image).ok());
  ASSERT_TRUE(Create("vm", 0, "holes").ok());
  nbd_handle* h = Connect("vm");
  ASSERT_NE(h, nullptr) << nbd_get_error();
  ASSERT_EQ(nbd_flush(h, 0), 0);
  const std::string before = Snapshot();
  const int64_t allocated = Allocated("vm");
  ASSERT_EQ(nbd_zero(h, 2 << 20, 1 << 20, 0), 0) << nbd_get_error();
  ASSERT_EQ(nbd_flush(h, 0), 0);
  EXPECT_EQ(Snapshot(), before);
  EXPECT_EQ(Allocated("vm"), allocated);
  // Across the end of the image's data, it zeroes for real (on disk once
  // flushed: in deferred durability, the default, the bits follow later).
  ASSERT_EQ(nbd_zero(h, 8192, (1 << 20) - 4096, 0), 0) << nbd_get_error();
  ASSERT_EQ(nbd_flush(h, 0), 0);
  EXPECT_NE(Snapshot(), before);
  EXPECT_TRUE(Read(h, 0, 4 << 20) == image.substr(0, (1 << 20) - 4096) +
                                         std::string(4096 + (2 << 20), '\0') +
                                         image.substr(3 << 20));
}

TEST_F(NbdWriteZeroesTest, FastZeroIsAdvertisedAndFlagsItDoesNotTakeAreEinval) {
  nbd_handle* h = Connect("disk0");
  ASSERT_NE(h, nullptr) << nbd_get_error();
  EXPECT_EQ(nbd_can_fast_zero(h), 1);
  const std::string data = RandomBytes(8192, 4);
  ASSERT_EQ(nbd_pwrite(h, data.data(), data.size(), 0, 0), 0) << nbd_get_error();
  ASSERT_EQ(nbd_flush(h, 0), 0);
  const std::string before = Snapshot();
  const int fd = RawConnect("disk0");
  ASSERT_GE(fd, 0);
  uint64_t cookie = 100;
  // Each refused, the connection going on, nothing changed.
  const std::vector<std::tuple<uint16_t, uint16_t, uint64_t, uint32_t, int>> bad = {
           {kCmdWriteZeroes, kFlagDf, 0, 4096, EINVAL},
           {kCmdWriteZeroes, 1 << 5, 0, 4096, EINVAL},     // unknown flag
           {kCmdWriteZeroes, 1 << 15, 0, 4096, EINVAL},    // unknown flag
           {kCmdRead, kFlagFastZero, 0, 4096, EINVAL},     // not a read's flag
           {kCmdRead, kFlagNoHole, 0, 4096, EINVAL},       // not a read's flag
           {kCmdWriteZeroes, 0, 100, 4096, EINVAL},        // unaligned
           {kCmdWriteZeroes, 0, 0, 100, EINVAL},           // unaligned
           {kCmdWriteZeroes, kFlagFastZero, kSize, 512, ENOSPC},  // past the end
           {kCmdWriteZeroes, kFlagNoHole, kSize - 512, 1024, ENOSPC},  // across it
  };
  for (const auto& [type, flags, offset, length, error] : bad) {
    ASSERT_TRUE(SendAll(fd, Request(type, flags, cookie, offset, length)));
    EXPECT_EQ(ReplyError(fd, cookie), error) << type << " " << flags << " " << offset;
    ++cookie;
  }
  EXPECT_EQ(Snapshot(), before);
  // Every flag it takes, raw too: zeros.
  ASSERT_TRUE(SendAll(
      fd, Request(kCmdWriteZeroes, kFlagFua | kFlagNoHole | kFlagFastZero, cookie, 0, 4096)));
  EXPECT_EQ(ReplyError(fd, cookie), 0);
  close(fd);
  EXPECT_EQ(Read(h, 0, 8192), std::string(4096, '\0') + data.substr(4096));
}

}  // namespace
}  // namespace cowblk::testing
