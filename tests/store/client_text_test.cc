// ForClients(): the data directory's absolute path leaves error texts, and
// nothing else changes (paths that only begin like it stay as they are).

#include "server/store/client_text.h"

#include <filesystem>

#include "gtest/gtest.h"
#include "tests/support/scratch.h"

namespace cowblk::store {
namespace {

TEST(ClientTextTest, PathsBeneathTheDataDirectoryBecomeRelative) {
  SetClientTextDataDir("/srv/cowblk");
  EXPECT_EQ(ForClients("create /srv/cowblk/images/.blank/17592186044416.img: File too large"),
            "create images/.blank/17592186044416.img: File too large");
  EXPECT_EQ(ForClients("/srv/cowblk/volumes/a.cow: backing file /srv/cowblk/images/b.img"),
            "volumes/a.cow: backing file images/b.img");
  EXPECT_EQ(ForClients("list /srv/cowblk: denied"), "list .: denied");
  EXPECT_EQ(ForClients("/srv/cowblk"), ".");
  EXPECT_EQ(ForClients("/srv/cowblk2/x and /srv/cowblk-old"), "/srv/cowblk2/x and /srv/cowblk-old");
  EXPECT_EQ(ForClients("/etc/passwd"), "/etc/passwd");
  const absl::Status s = ForClients(absl::NotFoundError("open /srv/cowblk/volumes/x.cow"));
  EXPECT_EQ(s.code(), absl::StatusCode::kNotFound);
  EXPECT_EQ(s.message(), "open volumes/x.cow");
}

TEST(ClientTextTest, ASymlinkedDataDirectoryIsRemovedInBothSpellings) {
  testing::TempDir dir;
  std::filesystem::create_directory(dir.File("real"));
  std::filesystem::create_directory_symlink(dir.File("real"), dir.File("link"));
  SetClientTextDataDir(dir.File("link"));
  const std::string real = std::filesystem::canonical(dir.File("real")).string();
  EXPECT_EQ(ForClients(dir.File("link") + "/images/a.img and " + real + "/images/a.img"),
            "images/a.img and images/a.img");
}

}  // namespace
}  // namespace cowblk::store
