// HoldFifo: the fifo of cowblkd's --debug-hold-bitmap-writes. cowblkd holds
// each bitmap block write (logging `event=io_held`) until it reads one byte
// from the fifo; Release(n) writes n bytes, so n held writes go out.
//
// Thread-compatible. The fifo is made in the constructor, under a scratch
// directory the owner removes.

#ifndef COWBLK_TESTS_SUPPORT_HOLD_FIFO_H_
#define COWBLK_TESTS_SUPPORT_HOLD_FIFO_H_

#include <cstddef>
#include <string>

namespace cowblk::testing {

class HoldFifo {
 public:
  // Makes the fifo at `path`; made() says whether that worked.
  explicit HoldFifo(std::string path);

  bool made() const { return made_; }
  // The flag's value: {"--debug-hold-bitmap-writes", path()}.
  const std::string& path() const { return path_; }
  // Releases `n` held writes. Blocks until cowblkd has the fifo open for
  // reading (it opens it at startup). Returns false if the write failed.
  bool Release(size_t n);

 private:
  std::string path_;
  bool made_ = false;
};

}  // namespace cowblk::testing

#endif  // COWBLK_TESTS_SUPPORT_HOLD_FIFO_H_
