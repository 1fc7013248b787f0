// The token file's syntax as cowblkd reads it at start: fields are separated
// by spaces only, and a control character anywhere (a tab, a CR from an
// editor) stops the start with the line that holds it.

#include <grpcpp/grpcpp.h>

#include "cowblk/v1/volume.grpc.pb.h"
#include "gmock/gmock.h"
#include "tests/support/cowblkd_process.h"
#include "tests/support/scratch.h"

namespace cowblk::testing {
namespace {

using ::testing::HasSubstr;

TEST(TokenFileTest, ControlCharactersAreRefusedWithTheirLineNumber) {
  for (const auto& [bad, code] : {std::pair<std::string, std::string>{"\t", "0x09"},
                                  {"\r", "0x0d"},
                                  {"\x1b", "0x1b"}}) {
    TempDir dir;
    WriteFileBytes(dir.File("tokens"), "# tokens\nadmin-secret admin\nreader" + bad +
                                           "read:team-a-*\n");
    CowblkdProcess server;
    EXPECT_FALSE(server.Start(dir.File("data"), {"--token-file", dir.File("tokens")})) << code;
    EXPECT_THAT(server.log(), HasSubstr("event=bad_token_file"));
    EXPECT_THAT(server.log(), HasSubstr("tokens:3: control character " + code + " at column 7"));
  }
  // The same file with a space is served.
  TempDir dir;
  WriteFileBytes(dir.File("tokens"), "# tokens\nadmin-secret admin\nreader read:team-a-*\n");
  CowblkdProcess server;
  EXPECT_TRUE(server.Start(dir.File("data"), {"--token-file", dir.File("tokens")})) << server.log();
}

// `x509:CN=NAME SCOPES` lines give scopes to NBD client certificates
// (docs/cowblkd.md, "NBD export security"): a malformed one stops the
// start with its line, and a well-formed one is no bearer token.
TEST(TokenFileTest, X509LinesAreCheckedAndAreNoTokens) {
  for (const std::string bad : {"x509:client rw:*", "x509:CN= rw:*", "x509:CN=a b rw:*"}) {
    TempDir dir;
    WriteFileBytes(dir.File("tokens"), "admin-secret admin\n" + bad + "\n");
    CowblkdProcess server;
    EXPECT_FALSE(server.Start(dir.File("data"), {"--token-file", dir.File("tokens")})) << bad;
    EXPECT_THAT(server.log(), HasSubstr("event=bad_token_file")) << bad;
    EXPECT_THAT(server.log(), HasSubstr("tokens:2: want")) << bad;
  }
  TempDir dir;
  WriteFileBytes(dir.File("tokens"), "admin-secret admin\nx509:CN=client admin\n");
  CowblkdProcess server;
  ASSERT_TRUE(server.Start(dir.File("data"), {"--token-file", dir.File("tokens")}))
      << server.log();
  auto volumes = cowblk::v1::VolumeService::NewStub(server.Channel());
  for (const std::string& token : {std::string("x509:CN=client"), std::string("admin-secret")}) {
    grpc::ClientContext ctx;
    ctx.AddMetadata("authorization", "Bearer " + token);
    cowblk::v1::ListVolumesResponse resp;
    const grpc::Status s = volumes->ListVolumes(&ctx, cowblk::v1::ListVolumesRequest(), &resp);
    EXPECT_EQ(s.error_code(), token == "admin-secret" ? grpc::StatusCode::OK
                                                      : grpc::StatusCode::UNAUTHENTICATED)
        << token << ": " << s.error_message();
  }
}

}  // namespace
}  // namespace cowblk::testing
