// cowblkd's NBD-related flags checked at start-up: --write-split-kib and
// --engine-poll-us values out of range are refused, and --nbd-listen is
// refused with tokens or TLS (NBD would bypass them) and without a host
// (as --listen is: never every interface by accident).

#include <string>

#include "gtest/gtest.h"
#include "tests/support/cowblkd_process.h"
#include "tests/support/scratch.h"

namespace cowblk::testing {
namespace {

TEST(WriteSplitFlag, ValuesThatAreNotWholePagesOrTooLargeAreRefused) {
  for (const char* bad : {"6", "12x", "0x10", "65540", "-4", "abc"}) {
    TempDir dir;
    CowblkdProcess server;
    EXPECT_FALSE(server.Start(dir.path(), {"--write-split-kib", bad})) << bad;
    EXPECT_NE(server.log().find("--write-split-kib"), std::string::npos) << bad << server.log();
  }
  TempDir dir;
  CowblkdProcess server;
  ASSERT_TRUE(server.Start(dir.path(), {"--write-split-kib", "12"})) << server.log();
  EXPECT_NE(server.log().find(" write_split_kib=12 "), std::string::npos) << server.log();
}

TEST(EnginePollFlag, ValuesOutOfRangeAreRefused) {
  for (const char* bad : {"1001", "-1", "abc"}) {
    TempDir dir;
    CowblkdProcess server;
    EXPECT_FALSE(server.Start(dir.path(), {"--engine-poll-us", bad})) << bad;
    EXPECT_NE(server.log().find("--engine-poll-us"), std::string::npos) << bad << server.log();
  }
}

// NBD clients authenticate with certificates only: tokens without mutual
// TLS would leave the export open (nbd_tls_test.cc: the secure export).
TEST(NbdFlags, RefusedWithTokensWithoutMutualTlsBecauseNbdWouldBypassThem) {
  TempDir dir;
  WriteFileBytes(dir.path() + "/tokens", "secret admin\n");
  CowblkdProcess server;
  EXPECT_FALSE(server.Start(dir.path(), {"--nbd-listen", "127.0.0.1:0", "--token-file",
                                         dir.path() + "/tokens"}));
  EXPECT_NE(server.log().find("--nbd-listen"), std::string::npos) << server.log();
  EXPECT_NE(server.log().find("event=bad_flags"), std::string::npos) << server.log();
  EXPECT_NE(server.log().find("needs mutual TLS"), std::string::npos) << server.log();
}

TEST(NbdFlags, AnAddressWithoutAHostIsRefusedAsForTheGrpcAddress) {
  for (const std::string flag : {"--listen", "--nbd-listen"}) {
    TempDir dir;
    CowblkdProcess server;
    ServerConfig config;
    config.args = {flag, ":0"};
    if (flag == "--listen") config.args.insert(config.args.end(), {"--nbd-listen", "127.0.0.1:0"});
    EXPECT_FALSE(server.Start(dir.path(), config)) << flag;
    EXPECT_NE(server.log().find("event=listen_failed"), std::string::npos) << server.log();
  }
  TempDir dir;
  CowblkdProcess server;
  EXPECT_FALSE(server.Start(dir.path(), {"--nbd-listen", ":0"}));
  EXPECT_NE(server.log().find("names no host"), std::string::npos) << server.log();
}

}  // namespace
}  // namespace cowblk::testing
