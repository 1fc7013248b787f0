// Clients that break the rules over the NBD export: requests out of range,
// unaligned or of unknown commands and flags fail with EINVAL or ENOSPC and
// change nothing; a malformed stream ends its own connection only; a
// write's payload may come in small pieces, and one cut short writes
// nothing.

#include <libnbd.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cerrno>
#include <string>

#include "gtest/gtest.h"
#include "tests/integration/nbd_fixture.h"
#include "tests/support/scratch.h"

namespace cowblk::testing {
namespace {

TEST_F(NbdTest, BadRequestsFailWithEinvalOrEnospcAndChangeNothing) {
  nbd_handle* h = Connect("disk0");
  ASSERT_NE(h, nullptr) << nbd_get_error();
  ASSERT_EQ(nbd_set_strict_mode(h, 0), 0);  // let the requests reach the server
  const std::string data = RandomBytes(4096, 4);
  ASSERT_EQ(nbd_pwrite(h, data.data(), data.size(), 0, 0), 0);
  ASSERT_EQ(nbd_flush(h, 0), 0);
  const std::string before = Snapshot();
  char buf[8192];
  auto fails = [&](int rc) { return rc == -1 ? nbd_get_errno() : 0; };
  EXPECT_EQ(fails(nbd_pread(h, buf, 4096, 1, 0)), EINVAL);           // unaligned offset
  EXPECT_EQ(fails(nbd_pread(h, buf, 100, 0, 0)), EINVAL);            // unaligned length
  EXPECT_EQ(fails(nbd_pread(h, buf, 4096, kSize, 0)), EINVAL);       // past the end
  EXPECT_EQ(fails(nbd_pread(h, buf, 8192, kSize - 4096, 0)), EINVAL);  // across the end
  EXPECT_EQ(fails(nbd_pwrite(h, data.data(), 4096, kSize, 0)), ENOSPC);
  EXPECT_EQ(fails(nbd_pwrite(h, data.data(), 4095, 0, 0)), EINVAL);
  EXPECT_EQ(fails(nbd_zero(h, 4096, kSize, 0)), ENOSPC);
  EXPECT_EQ(fails(nbd_trim(h, 512, 100, 0)), EINVAL);
  EXPECT_EQ(fails(nbd_pread(h, buf, 0, 0, 0)), EINVAL);  // nothing to read
  EXPECT_EQ(Snapshot(), before);
  // The server refused them (libnbd's own checks are off), and says so.
  size_t refused = 0;
  const std::string log = server_.log();
  for (size_t at = log.find("transport=nbd"); at != std::string::npos;
       at = log.find("transport=nbd", at + 1)) {
    ++refused;
  }
  EXPECT_EQ(refused, 9u) << log;
  // The connection goes on.
  ASSERT_EQ(nbd_pread(h, buf, 4096, 0, 0), 0) << nbd_get_error();
  EXPECT_EQ(std::string(buf, 4096), data);

  // Unknown commands and flags, sent raw.
  const int fd = RawConnect("disk0");
  ASSERT_GE(fd, 0);
  ASSERT_TRUE(SendAll(fd, Request(9, 0, 11, 0, 4096)));
  EXPECT_EQ(ReplyError(fd, 11), EINVAL);
  ASSERT_TRUE(SendAll(fd, Request(0, 1 << 7, 12, 0, 4096)));  // an unknown flag on a read
  EXPECT_EQ(ReplyError(fd, 12), EINVAL);
  ASSERT_TRUE(SendAll(fd, Request(0, 0, 13, 0, 4096)));
  EXPECT_EQ(ReplyError(fd, 13), 0);
  std::string read(4096, '\0');
  ASSERT_TRUE(RecvAll(fd, read.data(), read.size()));
  EXPECT_EQ(read, data);
  close(fd);
  EXPECT_EQ(Snapshot(), before);
}

TEST_F(NbdTest, AMalformedStreamEndsItsConnectionOnly) {
  const std::string before = Snapshot();
  {  // Bad request magic.
    const int fd = RawConnect("disk0");
    ASSERT_GE(fd, 0);
    ASSERT_TRUE(SendAll(fd, Request(0, 0, 1, 0, 4096, 0xdeadbeef)));
    EXPECT_TRUE(ClosedByServer(fd));
    close(fd);
  }
  {  // A write longer than the largest request: answered EINVAL, then cut.
    const int fd = RawConnect("disk0");
    ASSERT_GE(fd, 0);
    ASSERT_TRUE(SendAll(fd, Request(1, 0, 2, 0, 64 << 20)));
    EXPECT_EQ(ReplyError(fd, 2), EINVAL);
    EXPECT_TRUE(ClosedByServer(fd));
    close(fd);
  }
  {  // Bad option magic during the handshake.
    const int fd = RawSocket();
    ASSERT_GE(fd, 0);
    char greeting[18];
    ASSERT_TRUE(RecvAll(fd, greeting, sizeof greeting));
    ASSERT_TRUE(SendAll(fd, std::string("\0\0\0\3", 4) + std::string(16, 'x')));
    EXPECT_TRUE(ClosedByServer(fd));
    close(fd);
  }
  {  // NBD_OPT_EXPORT_NAME of a volume that does not exist: closed.
    const int fd = RawSocket();
    ASSERT_GE(fd, 0);
    char greeting[18];
    ASSERT_TRUE(RecvAll(fd, greeting, sizeof greeting));
    std::string m("\0\0\0\3", 4);
    AppendOption(&m, 1, "nope");
    ASSERT_TRUE(SendAll(fd, m));
    EXPECT_TRUE(ClosedByServer(fd));
    close(fd);
  }
  EXPECT_EQ(Snapshot(), before);
  nbd_handle* h = Connect("disk0");
  ASSERT_NE(h, nullptr) << nbd_get_error();
  char buf[4096];
  EXPECT_EQ(nbd_pread(h, buf, sizeof buf, 0, 0), 0) << nbd_get_error();
}

// A client that sends a write's payload in small pieces, or stops halfway.
TEST_F(NbdTest, APayloadInSmallPiecesOrCutShort) {
  const int fd = RawConnect("disk0");
  ASSERT_GE(fd, 0);
  const int one = 1;
  setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
  const std::string data = RandomBytes(1 << 20, 60);
  ASSERT_TRUE(SendAll(fd, Request(1, 0, 21, 1 << 20, data.size())));
  for (size_t at = 0; at < data.size(); at += 512) ASSERT_TRUE(SendAll(fd, data.substr(at, 512)));
  EXPECT_EQ(ReplyError(fd, 21), 0);
  std::string got;
  ASSERT_TRUE(ReadData("disk0", 1 << 20, data.size(), &got).ok());
  EXPECT_TRUE(got == data);
  ASSERT_TRUE(Flush("disk0").ok());

  const std::string before = Snapshot();
  ASSERT_TRUE(SendAll(fd, Request(1, 0, 22, 4 << 20, data.size())));
  ASSERT_TRUE(SendAll(fd, data.substr(0, data.size() / 2)));
  close(fd);
  server_.WaitForLog("reason=\"the client closed the connection in a write\"");
  EXPECT_EQ(Snapshot(), before);
  ASSERT_TRUE(ReadData("disk0", 4 << 20, 4096, &got).ok());
  EXPECT_EQ(got, std::string(4096, '\0'));
}

}  // namespace
}  // namespace cowblk::testing
