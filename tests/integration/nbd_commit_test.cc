// CommitVolume while NBD clients write (issue #20, item 8): the export's
// writers write the data into the COW file themselves (inline writes, the
// default), ahead of the engine, and the image is still the volume at one
// moment (pass_writers.h).

#include <libnbd.h>

#include <string>
#include <vector>

#include "gtest/gtest.h"
#include "tests/integration/nbd_fixture.h"
#include "tests/integration/pass_writers.h"

namespace cowblk::testing {
namespace {

class NbdCommitTest : public NbdTest {};

TEST_F(NbdCommitTest, ImageIsTheVolumeAtOneMomentWhileInlineWritersRun) {
  ASSERT_EQ(server_.ServingField("nbd_inline_writes"), "on");
  constexpr uint64_t kVolume = uint64_t{256} << 20;
  constexpr int kWriters = 4;
  ASSERT_TRUE(Create("live", kVolume).ok());
  std::vector<nbd_handle*> handles;
  for (int w = 0; w < kWriters; ++w) {
    handles.push_back(Connect("live"));
    ASSERT_NE(handles.back(), nullptr) << nbd_get_error();
  }
  PassWriters writers(kWriters, /*blocks_each=*/32, kVolume);
  grpc::Status committed;
  const bool ran = writers.Run(
      [&](int w, uint64_t offset, const std::string& data) {
        return nbd_pwrite(handles[static_cast<size_t>(w)], data.data(), data.size(), offset, 0) ==
               0;
      },
      [&] {
        grpc::ClientContext ctx;
        v1::CommitVolumeRequest req;
        req.set_name("live");
        req.set_image("moment");
        v1::Image out;
        committed = volumes_->CommitVolume(&ctx, req, &out);
        return committed.ok();
      });
  ASSERT_TRUE(ran) << committed.error_message() << nbd_get_error();
  EXPECT_EQ(writers.Check(dir_.path() + "/images/moment.img"), "");
}

}  // namespace
}  // namespace cowblk::testing
