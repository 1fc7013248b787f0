// Zero-copy reads over the NBD export (--nbd-zero-copy on and off): the
// same bytes either way (COW data, backing data, zeros past the image); a
// volume deleted under a connection is no longer served; a client gone
// mid-reply costs only its connection, and SIGPIPE is ignored.

#include <libnbd.h>
#include <signal.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cerrno>
#include <cstdint>
#include <ios>
#include <string>
#include <utility>
#include <vector>

#include "gtest/gtest.h"
#include "tests/integration/nbd_fixture.h"
#include "tests/support/scratch.h"

namespace cowblk::testing {
namespace {

// Reads of 256 KiB and more go from the files to the socket (spliced through
// a pipe), the rest through memory; both must give the same bytes: COW
// data, backing data, and zeros past the end of an image whose size is not
// a multiple of 512.
class NbdZeroCopyTest : public NbdTest, public ::testing::WithParamInterface<bool> {
 protected:
  std::vector<std::string> ServerArgs() const override {
    const char* on = GetParam() ? "on" : "off";
    return {"--nbd-listen", "127.0.0.1:0", "--nbd-zero-copy", on, "--nbd-inline-writes", on};
  }
};

TEST_P(NbdZeroCopyTest, ReadsGiveCowDataBackingDataAndZerosPastTheImage) {
  const std::string image = RandomBytes((3 << 20) + 100, 21);
  ASSERT_TRUE(Upload("base", image).ok());
  v1::Volume v;
  ASSERT_TRUE(Create("img0", 0, "base", &v).ok());
  const uint64_t size = v.size_bytes();
  ASSERT_EQ(size, (3u << 20) + 512);
  std::string want = image + std::string(size - image.size(), '\0');
  // COW runs: inside one large read, at its edges, and one 4 KiB.
  const std::vector<std::pair<uint64_t, size_t>> writes = {
      {7 * 512, 300 << 10}, {1 << 20, 512}, {(2 << 20) - 4096, 8192}, {size - 2048, 1024}};
  int seed = 30;
  for (const auto& [offset, length] : writes) {
    const std::string data = RandomBytes(length, ++seed);
    ASSERT_TRUE(WriteData("img0", offset, data).ok());
    want.replace(offset, length, data);
  }
  nbd_handle* h = Connect("img0");
  ASSERT_NE(h, nullptr) << nbd_get_error();
  // (offset, length): the whole volume, ranges across the image's end and
  // across COW runs, one just at the zero-copy threshold, small ones.
  const std::vector<std::pair<uint64_t, size_t>> reads = {
      {0, size}, {size - (128 << 10), 128 << 10}, {size - 512, 512},
      {(1 << 20) - (32 << 10), 64 << 10}, {4096, 4096}, {(2 << 20) - 8192, 16384},
      {512, 1 << 20}, {(1 << 20) - (128 << 10), 256 << 10}};
  for (const auto& [offset, length] : reads) {
    std::string got(length, '\x55');
    ASSERT_EQ(nbd_pread(h, got.data(), length, offset, 0), 0) << nbd_get_error();
    EXPECT_TRUE(got == want.substr(offset, length)) << "offset " << offset << " length " << length;
  }
  // Several at once on one connection: replies sent from the files and
  // from memory interleave in the order they complete.
  std::vector<std::string> bufs;
  for (int i = 0; i < 24; ++i) bufs.emplace_back(i % 3 == 0 ? 4096 : (256 << 10) + 512 * i, '\0');
  std::vector<int64_t> cookies;
  for (int i = 0; i < 24; ++i) {
    const uint64_t offset = (uint64_t{131} * 512 * i) % (size - bufs[i].size());
    cookies.push_back(nbd_aio_pread(h, bufs[i].data(), bufs[i].size(), offset,
                                    NBD_NULL_COMPLETION, 0));
    ASSERT_GE(cookies.back(), 0) << nbd_get_error();
  }
  for (int i = 0; i < 24; ++i) {
    while (nbd_aio_command_completed(h, cookies[i]) == 0) ASSERT_GE(nbd_poll(h, -1), 0);
    const uint64_t offset = (uint64_t{131} * 512 * i) % (size - bufs[i].size());
    EXPECT_TRUE(bufs[i] == want.substr(offset, bufs[i].size())) << "request " << i;
  }
  server_.WaitForLog(std::string("volume=img0 zero_copy=") + (GetParam() ? "on" : "off"));
  EXPECT_NE(server_.log().find(std::string("volume=img0 zero_copy=") + (GetParam() ? "on" : "off")),
            std::string::npos)
      << server_.log();
  EXPECT_NE(server_.log().find(GetParam() ? " pipe_kib=256\n" : " pipe_kib=0\n"), std::string::npos)
      << server_.log();
  // The three large reads above and the 16 of 256 KiB and more went from
  // the files; none below the threshold.
  ASSERT_EQ(nbd_shutdown(h, 0), 0) << nbd_get_error();
  server_.WaitForLog("event=nbd_closed");
  EXPECT_NE(server_.log().find(std::string(" zero_copy_reads=") + (GetParam() ? "19" : "0") + " "),
            std::string::npos)
      << server_.log();
}

TEST_P(NbdZeroCopyTest, AVolumeDeletedUnderAConnectionIsNoLongerServedAndItsFilesAreFree) {
  const std::string data = RandomBytes(1 << 20, 40);
  ASSERT_TRUE(WriteData("disk0", 0, data, /*flush=*/true).ok());
  nbd_handle* h = Connect("disk0");
  ASSERT_NE(h, nullptr) << nbd_get_error();
  std::string got(data.size(), '\0');
  ASSERT_EQ(nbd_pread(h, got.data(), got.size(), 0, 0), 0) << nbd_get_error();
  ASSERT_TRUE(got == data);
  {
    grpc::ClientContext ctx;
    v1::DeleteVolumeRequest req;
    req.set_name("disk0");
    v1::DeleteVolumeResponse resp;
    ASSERT_TRUE(volumes_->DeleteVolume(&ctx, req, &resp).ok());
  }
  EXPECT_EQ(nbd_pread(h, got.data(), got.size(), 0, 0), -1);
  EXPECT_EQ(nbd_get_errno(), ESHUTDOWN) << nbd_get_error();
  EXPECT_EQ(nbd_pwrite(h, data.data(), 4096, 0, 0), -1);  // not written (inline or not)
  EXPECT_EQ(nbd_get_errno(), ESHUTDOWN) << nbd_get_error();
  // A new volume of the same name is a new disk: zeros, not the old data.
  ASSERT_TRUE(Create("disk0", kSize).ok());
  nbd_handle* h2 = Connect("disk0");
  ASSERT_NE(h2, nullptr) << nbd_get_error();
  ASSERT_EQ(nbd_pread(h2, got.data(), got.size(), 0, 0), 0) << nbd_get_error();
  EXPECT_TRUE(got == std::string(got.size(), '\0'));
}

INSTANTIATE_TEST_SUITE_P(ZeroCopy, NbdZeroCopyTest, ::testing::Bool(),
                         [](const ::testing::TestParamInfo<bool>& p) {
                           return p.param ? "On" : "Off";
                         });

// A client that resets its connection while large replies are on their way
// costs that connection only: the server's sends fail with EPIPE or
// ECONNRESET, and no SIGPIPE ends the server (the zero-copy sends have no
// MSG_NOSIGNAL). With metrics off: the metrics server's library ignores
// SIGPIPE itself, which hid this. (Zero-copy off sends with MSG_NOSIGNAL:
// that case is there for the connection's own behaviour.)
class NbdNoMetricsTest : public NbdZeroCopyTest {
 protected:
  std::vector<std::string> ServerArgs() const override {
    std::vector<std::string> args = NbdZeroCopyTest::ServerArgs();
    args.insert(args.end(), {"--metrics-listen", ""});
    return args;
  }
};

TEST_P(NbdNoMetricsTest, AClientGoneMidReplyCostsOnlyItsConnection) {
  const std::string data = RandomBytes(1 << 20, 41);
  ASSERT_TRUE(WriteData("disk0", 0, data).ok());
  for (int round = 1; round <= 3; ++round) {
    const int fd = RawConnect("disk0");
    ASSERT_GE(fd, 0);
    // 32 MiB of replies, more than the two sockets' buffers hold: the
    // writer is still sending when the reset comes.
    for (uint64_t cookie = 1; cookie <= 4; ++cookie) {
      ASSERT_TRUE(SendAll(fd, Request(0, 0, cookie, 0, kSize)));
    }
    unsigned char header[16];  // a reply began (copied reads may answer in any order)
    ASSERT_TRUE(RecvAll(fd, header, sizeof header));
    const linger reset{1, 0};
    setsockopt(fd, SOL_SOCKET, SO_LINGER, &reset, sizeof reset);
    close(fd);
    // Logged once the connection's last send failed (or, without the fix,
    // never: the server is gone).
    server_.WaitForLog("event=nbd_closed", static_cast<size_t>(round));
    // Still serving, both ways.
    std::string got;
    ASSERT_TRUE(ReadData("disk0", 0, data.size(), &got).ok()) << "round " << round;
    ASSERT_TRUE(got == data);
  }
  nbd_handle* h = Connect("disk0");
  ASSERT_NE(h, nullptr) << nbd_get_error();
  std::string got(data.size(), '\0');
  ASSERT_EQ(nbd_pread(h, got.data(), got.size(), 0, 0), 0) << nbd_get_error();
  EXPECT_TRUE(got == data);
  // Which thread meets the reset first decides whether a send gets EPIPE
  // (and SIGPIPE) or ECONNRESET (no signal), so the rounds above catch a
  // server without the fix often, not always; this catches it always.
  const std::string sig_ign =
      StatusField("/proc/" + std::to_string(server_.pid()) + "/status", "SigIgn:");
  ASSERT_NE(sig_ign, "");
  const uint64_t ignored = std::stoull(sig_ign, nullptr, 16);
  EXPECT_NE(ignored & (uint64_t{1} << (SIGPIPE - 1)), 0u) << "SigIgn " << std::hex << ignored;
}

INSTANTIATE_TEST_SUITE_P(ZeroCopy, NbdNoMetricsTest, ::testing::Bool(),
                         [](const ::testing::TestParamInfo<bool>& p) {
                           return p.param ? "On" : "Off";
                         });

}  // namespace
}  // namespace cowblk::testing
