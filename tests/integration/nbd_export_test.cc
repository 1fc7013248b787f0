// The NBD handshake: every volume is an export, with its size and what it
// can do (flush, FUA, trim, zero, multi-conn, block sizes) and listed by
// NBD_OPT_LIST; an unknown or malformed export name, or a volume in error,
// is refused and the server goes on.

#include <endian.h>
#include <libnbd.h>
#include <unistd.h>

#include <algorithm>
#include <cstring>
#include <string>
#include <vector>

#include "gtest/gtest.h"
#include "tests/integration/nbd_fixture.h"
#include "tests/support/scratch.h"

namespace cowblk::testing {
namespace {

TEST_F(NbdTest, ExportsEveryVolumeWithItsSizeAndWhatItCanDo) {
  ASSERT_TRUE(Create("disk1", 1 << 20).ok());
  nbd_handle* h = Connect("disk0");
  ASSERT_NE(h, nullptr) << nbd_get_error();
  EXPECT_EQ(nbd_get_size(h), static_cast<int64_t>(kSize));
  EXPECT_EQ(nbd_is_read_only(h), 0);
  EXPECT_EQ(nbd_can_flush(h), 1);
  EXPECT_EQ(nbd_can_fua(h), 1);
  EXPECT_EQ(nbd_can_trim(h), 1);
  EXPECT_EQ(nbd_can_zero(h), 1);
  EXPECT_EQ(nbd_can_multi_conn(h), 1);
  EXPECT_EQ(nbd_get_block_size(h, LIBNBD_SIZE_MINIMUM), 512);
  EXPECT_EQ(nbd_get_block_size(h, LIBNBD_SIZE_MAXIMUM), 32 << 20);

  // NBD_OPT_LIST names every volume.
  nbd_handle* l = nbd_create();
  handles_.push_back(l);
  ASSERT_EQ(nbd_set_opt_mode(l, true), 0);
  ASSERT_EQ(nbd_connect_uri(l, Uri("").c_str()), 0) << nbd_get_error();
  std::vector<std::string> names;
  nbd_list_callback cb = {
      [](void* user, const char* name, const char*) {
        static_cast<std::vector<std::string>*>(user)->push_back(name);
        return 0;
      },
      &names, nullptr};
  ASSERT_EQ(nbd_opt_list(l, cb), 2) << nbd_get_error();
  std::sort(names.begin(), names.end());
  EXPECT_EQ(names, (std::vector<std::string>{"disk0", "disk1"}));
  nbd_opt_abort(l);
}

TEST_F(NbdTest, AnUnknownExportIsRefusedAndTheServerGoesOn) {
  std::string error;
  EXPECT_EQ(Connect("nope", &error), nullptr);
  EXPECT_NE(error.find("nope"), std::string::npos) << error;
  EXPECT_EQ(Connect("Bad/Name", &error), nullptr);
  EXPECT_NE(Connect("disk0"), nullptr) << nbd_get_error();
}

TEST_F(NbdTest, AVolumeInErrorIsRefusedNamingFilesRelativeToTheDataDirectory) {
  ASSERT_TRUE(Upload("base", RandomBytes(1 << 20, 1)).ok());
  ASSERT_TRUE(Create("changed", 0, "base").ok());
  ASSERT_EQ(StopServer(), 0);
  WriteFileBytes(dir_.File("images/base.img"), RandomBytes(2 << 20, 2));  // size mismatch
  StartServer(ServerArgs());
  nbd_address_ = server_.ServingField("nbd");
  // NBD_OPT_GO by hand: libnbd does not show the reply's text.
  const int fd = RawSocket();
  ASSERT_GE(fd, 0);
  char greeting[18];
  ASSERT_TRUE(RecvAll(fd, greeting, sizeof greeting));
  const uint32_t flags = htobe32(3);  // fixed newstyle, no zeroes
  std::string m(reinterpret_cast<const char*>(&flags), 4);
  const std::string name = "changed";
  const uint32_t name_len = htobe32(static_cast<uint32_t>(name.size()));
  AppendOption(&m, 7, std::string(reinterpret_cast<const char*>(&name_len), 4) + name +
                          std::string(2, '\0'));
  ASSERT_TRUE(SendAll(fd, m));
  char header[20];  // magic, option, reply type, length
  ASSERT_TRUE(RecvAll(fd, header, sizeof header));
  uint32_t type, length;
  memcpy(&type, header + 12, 4);
  memcpy(&length, header + 16, 4);
  EXPECT_EQ(be32toh(type), (1u << 31) + 6);  // NBD_REP_ERR_UNKNOWN
  std::string error(be32toh(length), '\0');
  ASSERT_TRUE(RecvAll(fd, error.data(), error.size()));
  close(fd);
  EXPECT_NE(error.find("images/base.img"), std::string::npos) << error;
  EXPECT_EQ(error.find(dir_.path()), std::string::npos) << error;
}

}  // namespace
}  // namespace cowblk::testing
