// The NBD handshake: every volume is an export, with its size and what it
// can do (flush, FUA, trim, zero, multi-conn, block sizes) and listed by
// NBD_OPT_LIST; an unknown or malformed export name is refused and the
// server goes on.

#include <libnbd.h>

#include <algorithm>
#include <string>
#include <vector>

#include "gtest/gtest.h"
#include "tests/integration/nbd_fixture.h"

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

}  // namespace
}  // namespace cowblk::testing
