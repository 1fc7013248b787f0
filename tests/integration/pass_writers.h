// PassWriters: writers that go over their blocks of a volume pass after
// pass while a commit runs, and the check that the commit's image is the
// volume at one moment (issue #20, item 8). Transport-neutral: a test
// gives the write (gRPC, NBD) and the commit.
//
// Each writer has its own blocks of 4 KiB, spread over the whole volume,
// and writes one at a time (each acknowledged before the next starts); the
// data of every sector names its writer, pass, block and sector, so a
// sector from any other write is told apart. A global clock numbers the
// events: each write's start and acknowledgement, the commit's call and
// return. The image fits if there is a moment T within the commit call
// such that every block shows the last pass that started before T, where
// the pass after it was acknowledged only after T. A copy that reads the
// volume while writes change it shows later passes in the parts it reads
// later, and no single T fits them.
//
// Thread-safety: one thread calls Run and then Check; the writes run on
// threads of their own.

#ifndef COWBLK_TESTS_INTEGRATION_PASS_WRITERS_H_
#define COWBLK_TESTS_INTEGRATION_PASS_WRITERS_H_

#include <cstdint>
#include <functional>
#include <limits>
#include <string>
#include <vector>

namespace cowblk::testing {

class PassWriters {
 public:
  // Writes `data` at `offset` for writer `writer`; false if it failed.
  using WriteFn = std::function<bool(int writer, uint64_t offset, const std::string& data)>;

  static constexpr uint64_t kBlock = 4096;

  PassWriters(int writers, int blocks_each, uint64_t volume_size)
      : writers_(writers), blocks_each_(blocks_each), volume_size_(volume_size) {}

  // Where block `k` of writer `w` lies.
  uint64_t OffsetOf(int w, int k) const;
  // What writer `w` writes into block `k` in pass `p` (from 1).
  static std::string BlockPattern(int w, int p, int k);

  // Starts the writers; once each finished two passes, calls `commit`
  // (and notes on the clock when it was called and when it returned);
  // each writer stops after the first pass it started after that. Returns
  // what `commit` returned; false also when a write failed.
  bool Run(const WriteFn& write, const std::function<bool()>& commit);

  // The image at `image_path` against the writes Run saw: "" if it is the
  // volume at one moment within the commit call, else what does not fit.
  std::string Check(const std::string& image_path) const;

 private:
  static constexpr uint64_t kNever = std::numeric_limits<uint64_t>::max();
  struct Times {
    uint64_t start = kNever;
    uint64_t ack = kNever;
  };

  const int writers_;
  const int blocks_each_;
  const uint64_t volume_size_;
  // times_[w][p - 1][k]: pass p of block k of writer w.
  std::vector<std::vector<std::vector<Times>>> times_;
  uint64_t commit_start_ = 0;
  uint64_t commit_end_ = 0;
};

}  // namespace cowblk::testing

#endif  // COWBLK_TESTS_INTEGRATION_PASS_WRITERS_H_
