// CommitVolume against a real cowblkd while the volume is in use: the image
// is the volume at one moment (issue #20, item 8), and a commit whose
// caller gave up leaves nothing behind.

#include <fcntl.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <cstdio>
#include <filesystem>
#include <limits>
#include <thread>
#include <vector>

#include "gmock/gmock.h"
#include "tests/support/server_fixture.h"

namespace cowblk::testing {
namespace {

constexpr uint64_t kMiB = 1 << 20;
constexpr uint64_t kBlock = 4096;  // one write: 8 sectors

// What sector `s` of block `k` holds after writer `w` wrote it in pass `p`:
// every field again in every sector, so a sector from another write, pass
// or place is told apart, and a block mixing two writes too.
std::string SectorPattern(int w, int p, int k, int s) {
  char head[64];
  const int n = snprintf(head, sizeof head, "w=%d p=%d k=%d s=%d|", w, p, k, s);
  std::string out;
  while (out.size() < 512) out.append(head, static_cast<size_t>(n));
  out.resize(512);
  return out;
}

std::string BlockPattern(int w, int p, int k) {
  std::string out;
  for (int s = 0; s < 8; ++s) out += SectorPattern(w, p, k, s);
  return out;
}

class ServerCommitTest : public ServerFixture {
 protected:
  grpc::Status Commit(const std::string& volume, const std::string& image,
                      std::chrono::milliseconds deadline = std::chrono::milliseconds(0)) {
    grpc::ClientContext ctx;
    if (deadline.count() > 0) ctx.set_deadline(std::chrono::system_clock::now() + deadline);
    v1::CommitVolumeRequest req;
    req.set_name(volume);
    req.set_image(image);
    v1::Image out;
    return volumes_->CommitVolume(&ctx, req, &out);
  }

  std::string ImagesDir() const { return dir_.path() + "/images"; }

  // Names in images/ (hidden ones included), the blank bases' folder left out.
  std::vector<std::string> ImageFiles() const {
    std::vector<std::string> names;
    for (const auto& e : std::filesystem::directory_iterator(ImagesDir())) {
      if (e.path().filename() != ".blank") names.push_back(e.path().filename().string());
    }
    return names;
  }
};

// Writers go over their blocks pass after pass (each write acknowledged
// before the next starts) while a commit runs. With a global clock of
// events, the image must be the volume at one moment T within the
// commit call: for every block, the pass it shows started before T, and
// the next pass of that block (if any) was acknowledged after T. A copy
// that reads the volume while writes change it shows later passes in the
// chunks it reads later, and no single T fits them.
TEST_F(ServerCommitTest, ImageIsTheVolumeAtOneMomentWhileWritersRun) {
  constexpr uint64_t kVolume = 256 * kMiB;
  constexpr int kWriters = 4;
  constexpr int kBlocksEach = 32;
  constexpr uint64_t kStride = kVolume / (kWriters * kBlocksEach);  // spread over every chunk
  ASSERT_TRUE(Create("live", kVolume).ok());
  auto offset_of = [&](int w, int k) {
    return static_cast<uint64_t>(k * kWriters + w) * kStride + (w % 2) * kBlock;
  };

  std::atomic<uint64_t> clock{1};
  constexpr uint64_t kNever = std::numeric_limits<uint64_t>::max();
  struct Times {
    uint64_t start = kNever;
    uint64_t ack = kNever;
  };
  // times[w][p][k]: pass p (from 1) of block k of writer w.
  std::vector<std::vector<std::vector<Times>>> times(kWriters);
  std::atomic<int> writers_past_pass_two{0};
  std::atomic<bool> commit_returned{false};
  std::atomic<int> failures{0};
  std::vector<std::thread> writers;
  for (int w = 0; w < kWriters; ++w) {
    writers.emplace_back([&, w] {
      // Until the commit returned and one more write after that.
      for (int p = 1;; ++p) {
        times[w].emplace_back(kBlocksEach);
        const bool last = commit_returned.load();
        for (int k = 0; k < kBlocksEach; ++k) {
          Times& t = times[w][p - 1][k];
          t.start = clock.fetch_add(1);
          if (!WriteData("live", offset_of(w, k), BlockPattern(w, p, k)).ok()) {
            ++failures;
            return;
          }
          t.ack = clock.fetch_add(1);
        }
        if (p == 2) {
          ++writers_past_pass_two;
          writers_past_pass_two.notify_all();
        }
        if (last && p > 2) return;
      }
    });
  }
  for (int n = writers_past_pass_two.load(); n < kWriters; n = writers_past_pass_two.load()) {
    writers_past_pass_two.wait(n);
  }
  const uint64_t commit_start = clock.fetch_add(1);
  const grpc::Status committed = Commit("live", "moment");
  const uint64_t commit_end = clock.fetch_add(1);
  commit_returned = true;
  for (auto& t : writers) t.join();
  ASSERT_TRUE(committed.ok()) << committed.error_message();
  ASSERT_EQ(failures.load(), 0);

  const int fd = open((ImagesDir() + "/moment.img").c_str(), O_RDONLY | O_CLOEXEC);
  ASSERT_GE(fd, 0);
  // T must lie in (lo, hi).
  uint64_t lo = commit_start, hi = commit_end;
  std::string lo_why = "the commit started", hi_why = "the commit returned";
  std::string block(kBlock, '\0');
  int torn = 0;
  for (int w = 0; w < kWriters; ++w) {
    for (int k = 0; k < kBlocksEach; ++k) {
      ASSERT_EQ(pread(fd, block.data(), kBlock, static_cast<off_t>(offset_of(w, k))),
                static_cast<ssize_t>(kBlock));
      int p = 0;  // never written
      if (block != std::string(kBlock, '\0')) {
        p = -1;
        for (int q = 1; q <= static_cast<int>(times[w].size()); ++q) {
          if (block == BlockPattern(w, q, k)) p = q;
        }
      }
      if (p < 0) {
        ++torn;
        ADD_FAILURE() << "writer " << w << " block " << k
                      << ": the image holds no single write: " << block.substr(0, 80);
        continue;
      }
      const std::string where = "writer " + std::to_string(w) + " block " + std::to_string(k);
      if (p > 0 && times[w][p - 1][k].start > lo) {
        lo = times[w][p - 1][k].start;
        lo_why = where + " shows pass " + std::to_string(p) + ", started at " + std::to_string(lo);
      }
      if (p < static_cast<int>(times[w].size()) && times[w][p][k].ack < hi) {
        hi = times[w][p][k].ack;
        hi_why = where + " lacks pass " + std::to_string(p + 1) + ", acknowledged at " +
                 std::to_string(hi);
      }
    }
  }
  close(fd);
  EXPECT_EQ(torn, 0);
  EXPECT_LT(lo, hi) << "no single moment fits the image: " << lo_why << ", but " << hi_why
                    << " (commit from " << commit_start << " to " << commit_end << ")";
}

// A commit whose deadline passes while it copies stops there: no image, no
// temporary file, and the volume serves on.
TEST_F(ServerCommitTest, CommitPastItsDeadlineLeavesNothingAndTheVolumeServesOn) {
  constexpr uint64_t kVolume = uint64_t{4} << 30;  // a copy of seconds
  ASSERT_TRUE(Create("big", kVolume).ok());
  const std::string before = BlockPattern(0, 1, 0);
  ASSERT_TRUE(WriteData("big", 3 * kMiB, before).ok());

  const grpc::Status s = Commit("big", "late", std::chrono::milliseconds(200));
  EXPECT_EQ(s.error_code(), grpc::StatusCode::DEADLINE_EXCEEDED) << s.error_message();
  // The server's own end of the commit: either line.
  server_.WaitForLog("event=volume_commit");
  EXPECT_THAT(server_.log(), ::testing::Not(::testing::HasSubstr("event=volume_committed")));
  EXPECT_THAT(ImageFiles(), ::testing::IsEmpty());

  const std::string after = BlockPattern(0, 2, 0);
  ASSERT_TRUE(WriteData("big", 3 * kMiB, after).ok());
  std::string got;
  ASSERT_TRUE(ReadData("big", 3 * kMiB, after.size(), &got).ok());
  EXPECT_TRUE(got == after);
}

}  // namespace
}  // namespace cowblk::testing
