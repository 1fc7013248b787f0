// FragmentBitmap(): a COW file whose first sectors alternate allocated and
// not (1, 0, 1, 0, ...), written straight into its bitmap: the most
// fragmented volume there is, in one write instead of one write per run.
// Header-only: the test links `cowblk_cow`.
#ifndef COWBLK_TESTS_SUPPORT_FRAGMENTED_BITMAP_H_
#define COWBLK_TESTS_SUPPORT_FRAGMENTED_BITMAP_H_

#include <unistd.h>

#include <cstdint>
#include <string>

#include "gtest/gtest.h"
#include "server/cow/cow_file.h"

namespace cowblk::testing {

// Sets the bits of the first `sectors` sectors (a multiple of 8) of the
// COW file at `path` to 1, 0, 1, 0, ...: `sectors` runs of one sector. The
// data of those sectors reads as zeros (the file is sparse). REQUIRES: no
// process has the file open (stop the server first).
inline ::testing::AssertionResult FragmentBitmap(const std::string& path, uint64_t sectors) {
  cow::OpenOptions raw;
  raw.writable = true;
  raw.lock = false;
  raw.open_backing = false;
  auto cow = cow::CowFile::Open(path, raw);
  if (!cow.ok()) return ::testing::AssertionFailure() << cow.status();
  const std::string bits(sectors / 8, '\x55');  // bit 0 (sector 0) first
  const ssize_t n = pwrite((*cow)->cow_fd(), bits.data(), bits.size(),
                           static_cast<off_t>((*cow)->geometry().bitmap_offset));
  if (n != static_cast<ssize_t>(bits.size())) {
    return ::testing::AssertionFailure() << "pwrite " << path << ": " << n;
  }
  return ::testing::AssertionSuccess();
}

}  // namespace cowblk::testing

#endif  // COWBLK_TESTS_SUPPORT_FRAGMENTED_BITMAP_H_
