// How a write over the NBD export reaches the COW file: inline by the
// connection or by the engine, whole or split (--write-split-kib), through
// the page cache or not (--cache none). Writes of every size land whole
// every way, and the server's log says which way they went.

#include <libnbd.h>

#include <cstdint>
#include <ostream>
#include <string>
#include <vector>

#include "gtest/gtest.h"
#include "tests/integration/nbd_fixture.h"
#include "tests/support/scratch.h"

namespace cowblk::testing {
namespace {

// How a write's data reaches the COW file: written by the connection itself
// (--nbd-inline-writes, the default) or by the engine; whole or in 16 KiB
// pieces (--write-split-kib); through the page cache or with --cache none
// (no inline writes there). The same bytes land every way.
struct WritePath {
  const char* name;
  int split_kib;
  bool inline_writes;
  bool page_cache;
};
void PrintTo(const WritePath& p, std::ostream* os) { *os << p.name; }

class NbdWriteSplitTest : public NbdTest, public ::testing::WithParamInterface<WritePath> {
 protected:
  std::vector<std::string> ServerArgs() const override {
    return {"--nbd-listen", "127.0.0.1:0",
            "--write-split-kib", std::to_string(GetParam().split_kib),
            "--nbd-inline-writes", GetParam().inline_writes ? "on" : "off",
            "--cache", GetParam().page_cache ? "writeback" : "none"};
  }
  bool Inline() const { return GetParam().inline_writes && GetParam().page_cache; }
};

INSTANTIATE_TEST_SUITE_P(Split, NbdWriteSplitTest,
                         ::testing::Values(WritePath{"Whole", 0, true, true},
                                           WritePath{"Pieces16KiB", 16, true, true},
                                           WritePath{"WholeByTheEngine", 0, false, true},
                                           WritePath{"Pieces16KiBByTheEngine", 16, false, true},
                                           WritePath{"CacheNone", 0, true, false}),
                         [](const ::testing::TestParamInfo<WritePath>& p) {
                           return std::string(p.param.name);
                         });

TEST_P(NbdWriteSplitTest, WritesOfEverySizeLandWhole) {
  EXPECT_EQ(server_.ServingField("write_split_kib"), std::to_string(GetParam().split_kib));
  EXPECT_EQ(server_.ServingField("nbd_inline_writes"), Inline() ? "on" : "off");
  nbd_handle* h = Connect("disk0");
  ASSERT_NE(h, nullptr) << nbd_get_error();
  std::string want(kSize, '\0');
  // From 4 KiB to 3 MiB, one by one and then many in flight at once.
  const std::vector<size_t> sizes = {4096, 64 << 10, (256 << 10) + 512, 1 << 20,
                                     (1 << 20) + 4096, 3 << 20};
  uint64_t offset = 512;
  int seed = 50;
  for (size_t len : sizes) {
    const std::string data = RandomBytes(len, ++seed);
    ASSERT_EQ(nbd_pwrite(h, data.data(), len, offset, 0), 0) << nbd_get_error();
    want.replace(offset, len, data);
    offset += len + 512;
  }
  std::vector<std::string> bufs;
  std::vector<int64_t> cookies;
  for (int i = 0; i < 16; ++i) {
    bufs.push_back(RandomBytes(i % 4 == 0 ? 8192 : (64 << 10) * (i % 8 + 1), ++seed));
    const uint64_t at = uint64_t{512 << 10} * i;
    cookies.push_back(nbd_aio_pwrite(h, bufs[i].data(), bufs[i].size(), at,
                                     NBD_NULL_COMPLETION, 0));
    ASSERT_GE(cookies.back(), 0) << nbd_get_error();
  }
  for (int i = 0; i < 16; ++i) {
    int done;
    while ((done = nbd_aio_command_completed(h, cookies[i])) == 0) ASSERT_GE(nbd_poll(h, -1), 0);
    ASSERT_EQ(done, 1) << nbd_get_error();
  }
  for (int i = 0; i < 16; ++i) want.replace(uint64_t{512 << 10} * i, bufs[i].size(), bufs[i]);
  std::string got;
  ASSERT_TRUE(ReadData("disk0", 0, kSize, &got).ok());
  EXPECT_TRUE(got == want);
  // The connection says which way its 22 writes went.
  ASSERT_EQ(nbd_shutdown(h, 0), 0) << nbd_get_error();
  server_.WaitForLog("event=nbd_closed");
  const std::string log = server_.log();
  EXPECT_NE(log.find(std::string("volume=disk0 zero_copy=") + (GetParam().page_cache ? "on" : "off") +
                     " inline_writes=" + (Inline() ? "on" : "off")),
            std::string::npos)
      << log;
  EXPECT_NE(log.find(std::string(" inline_writes=") + (Inline() ? "22" : "0") + " "),
            std::string::npos)
      << log;
  // And after a restart the volume holds them.
  ASSERT_EQ(StopServer(), 0);
  StartServer(ServerArgs());
  ASSERT_TRUE(ReadData("disk0", 0, kSize, &got).ok());
  EXPECT_TRUE(got == want);
}

}  // namespace
}  // namespace cowblk::testing
