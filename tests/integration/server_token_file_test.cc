// The token file's syntax as cowblkd reads it at start: fields are separated
// by spaces only, and a control character anywhere (a tab, a CR from an
// editor) stops the start with the line that holds it.

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

}  // namespace
}  // namespace cowblk::testing
