// Stopping a cowblkd that has an NBD connection open: SIGTERM stops it
// cleanly and what was flushed is there after a restart.

#include <libnbd.h>
#include <signal.h>

#include <string>

#include "gtest/gtest.h"
#include "tests/integration/nbd_fixture.h"
#include "tests/support/scratch.h"

namespace cowblk::testing {
namespace {

TEST_F(NbdTest, SigtermWithAnIdleConnectionStopsCleanlyAndKeepsFlushedWrites) {
  nbd_handle* h = Connect("disk0");
  ASSERT_NE(h, nullptr) << nbd_get_error();
  const std::string a = RandomBytes(65536, 5);
  ASSERT_EQ(nbd_pwrite(h, a.data(), a.size(), 0, 0), 0);
  ASSERT_EQ(nbd_flush(h, 0), 0);
  EXPECT_EQ(StopServer(SIGTERM), 0) << server_.log();
  EXPECT_NE(server_.log().find("event=stopped flush=ok"), std::string::npos) << server_.log();
  char buf[4096];
  EXPECT_EQ(nbd_pread(h, buf, sizeof buf, 0, 0), -1);  // the server is gone
  StartServer({"--nbd-listen", "127.0.0.1:0"});
  nbd_address_ = server_.ServingField("nbd");
  nbd_handle* again = Connect("disk0");
  ASSERT_NE(again, nullptr) << nbd_get_error();
  std::string back(a.size(), '\0');
  ASSERT_EQ(nbd_pread(again, back.data(), back.size(), 0, 0), 0);
  EXPECT_TRUE(back == a);
}

}  // namespace
}  // namespace cowblk::testing
