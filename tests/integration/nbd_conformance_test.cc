// doc/proto.md's transmission rules for the commands cowblkd's export
// advertises, on raw sockets, beside nbd_misbehaving_client_test.cc (which
// has unaligned and past-the-end requests, unknown commands, a bad magic,
// a payload cut short): NBD_CMD_DISC answers every request sent before it;
// zero-length writes, trims and zeroing are refused and the connection goes
// on; a flag a command does not take is EINVAL, and a write refused for its
// flags still takes its payload, so the stream stays in step; FUA is taken
// on every command that writes and on flush; a command that is not
// advertised (NBD_CMD_CACHE) is EINVAL. Nothing refused changes the disk.

#include <sys/socket.h>
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

constexpr uint16_t kRead = 0, kWrite = 1, kDisc = 2, kFlush = 3, kTrim = 4, kCache = 5,
                   kWriteZeroes = 6;
constexpr uint16_t kFua = 1, kNoHole = 2, kDf = 4, kReqOne = 8;

TEST_F(NbdTest, DisconnectAnswersEveryRequestSentBeforeIt) {
  const int fd = RawConnect("disk0");
  ASSERT_GE(fd, 0);
  const std::string data = RandomBytes(16 * 65536, 70);
  std::string m;
  for (uint64_t i = 0; i < 16; ++i) {
    m += Request(kWrite, 0, 100 + i, i * 65536, 65536) + data.substr(i * 65536, 65536);
  }
  m += Request(kFlush, 0, 200, 0, 0);
  m += Request(kDisc, 0, 300, 0, 0);
  ASSERT_TRUE(SendAll(fd, m));  // all at once: the disconnect is read with them in flight
  std::vector<bool> answered(17, false);
  for (int i = 0; i < 17; ++i) {
    unsigned char r[16];
    ASSERT_TRUE(RecvAll(fd, r, sizeof r)) << "reply " << i;
    uint64_t cookie = 0;
    for (int b = 8; b < 16; ++b) cookie = cookie << 8 | r[b];
    const int error = r[4] << 24 | r[5] << 16 | r[6] << 8 | r[7];
    EXPECT_EQ(error, 0) << cookie;
    const size_t slot = cookie == 200 ? 16 : static_cast<size_t>(cookie - 100);
    ASSERT_LT(slot, answered.size()) << cookie;
    EXPECT_FALSE(answered[slot]) << cookie;
    answered[slot] = true;
  }
  EXPECT_TRUE(ClosedByServer(fd));  // no reply to the disconnect itself
  close(fd);
  std::string got;
  ASSERT_TRUE(ReadData("disk0", 0, data.size(), &got).ok());
  EXPECT_TRUE(got == data);
}

TEST_F(NbdTest, FlagsACommandDoesNotTakeAndZeroLengthsAreRefusedAndTheStreamStaysInStep) {
  const std::string data = RandomBytes(8192, 71);
  {
    const int fd = RawConnect("disk0");
    ASSERT_GE(fd, 0);
    ASSERT_TRUE(SendAll(fd, Request(kWrite, 0, 1, 0, data.size()) + data));
    ASSERT_EQ(ReplyError(fd, 1), 0);
    ASSERT_TRUE(SendAll(fd, Request(kFlush, 0, 2, 0, 0)));
    ASSERT_EQ(ReplyError(fd, 2), 0);
    close(fd);
  }
  const std::string before = Snapshot();
  const int fd = RawConnect("disk0");
  ASSERT_GE(fd, 0);
  const std::string other = RandomBytes(4096, 72);
  uint64_t cookie = 10;
  const std::vector<std::tuple<uint16_t, uint16_t, uint32_t, bool>> refused = {
      // type, flags, length, with a payload of `length` bytes
      {kWrite, kNoHole, 4096, true},   // NO_HOLE is write-zeroes' only
      {kWrite, kReqOne, 4096, true},   // block status's
      {kWrite, kDf, 4096, true},       // a read's (not advertised)
      {kWrite, 1 << 9, 4096, true},    // unknown
      {kTrim, kNoHole, 4096, false},
      {kFlush, kReqOne, 0, false},
      {kRead, kReqOne, 4096, false},
      {kRead, kDf, 4096, false},       // NBD_FLAG_SEND_DF is not advertised
      {kCache, 0, 4096, false},        // NBD_CMD_CACHE is not advertised
      {kWrite, 0, 0, false},           // zero lengths
      {kTrim, 0, 0, false},
      {kWriteZeroes, 0, 0, false},
  };
  for (const auto& [type, flags, length, payload] : refused) {
    ASSERT_TRUE(SendAll(fd, Request(type, flags, cookie, 0, length) +
                                (payload ? other.substr(0, length) : "")));
    EXPECT_EQ(ReplyError(fd, cookie), EINVAL) << type << " flags " << flags << " len " << length;
    ++cookie;
  }
  // Still in step: a read answers with the bytes written before.
  ASSERT_TRUE(SendAll(fd, Request(kRead, 0, cookie, 0, data.size())));
  ASSERT_EQ(ReplyError(fd, cookie), 0);
  std::string got(data.size(), '\0');
  ASSERT_TRUE(RecvAll(fd, got.data(), got.size()));
  EXPECT_TRUE(got == data);
  EXPECT_EQ(Snapshot(), before);
  // FUA is taken on every command that writes, and on flush.
  const std::vector<std::pair<uint16_t, bool>> fua = {
      {kWrite, true}, {kTrim, false}, {kWriteZeroes, false}, {kFlush, false}};
  for (const auto& [type, payload] : fua) {
    ++cookie;
    const uint32_t length = type == kFlush ? 0 : 4096;
    ASSERT_TRUE(SendAll(fd, Request(type, kFua, cookie, 4096, length) + (payload ? other : "")));
    EXPECT_EQ(ReplyError(fd, cookie), 0) << type;
  }
  close(fd);
  ASSERT_TRUE(ReadData("disk0", 0, 8192, &got).ok());
  EXPECT_TRUE(got == data.substr(0, 4096) + std::string(4096, '\0'));
}

}  // namespace
}  // namespace cowblk::testing
