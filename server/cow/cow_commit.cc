#include "server/cow/cow_commit.h"

#include <fcntl.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <filesystem>
#include <vector>

#include "absl/strings/str_cat.h"
#include "common/file_io.h"
#include "common/sector.h"

namespace cowblk::cow {
namespace {

constexpr uint64_t kChunk = 1 << 20;
constexpr uint64_t kZeroCheck = 4096;  // hole granularity

bool AllZero(const char* p, uint64_t n) {
  return n == 0 || (p[0] == 0 && std::equal(p, p + n - 1, p + 1));
}

}  // namespace

absl::StatusOr<CommitStats> CommitToImage(const CowFile& cow,
                                          const std::string& image_path) {
  if (cow.backing_fd() < 0) {
    return absl::FailedPreconditionError(
        absl::StrCat(cow.path(), ": commit needs the backing file"));
  }
  int fd = open(image_path.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0644);
  if (fd < 0) return ErrnoStatus(errno, absl::StrCat("create ", image_path));
  auto fail = [&](absl::Status s) -> absl::StatusOr<CommitStats> {
    close(fd);
    unlink(image_path.c_str());
    return s;
  };

  CommitStats stats;
  stats.image_size = cow.header().size;
  stats.bytes_from_cow = cow.bitmap().CountSet() * kSectorSize;
  const uint64_t device_size = cow.geometry().device_size;
  std::vector<char> buf(kChunk);
  for (uint64_t pos = 0; pos < device_size; pos += kChunk) {
    const uint64_t len = std::min(kChunk, device_size - pos);
    if (absl::Status s = cow.Read(pos, buf.data(), len); !s.ok()) return fail(s);
    // Only the image's own bytes: the device may end in a partial sector.
    const uint64_t keep = std::min(len, stats.image_size - pos);
    for (uint64_t off = 0; off < keep; off += kZeroCheck) {
      const uint64_t n = std::min(kZeroCheck, keep - off);
      if (AllZero(buf.data() + off, n)) continue;
      if (absl::Status s = PWriteFull(fd, buf.data() + off, n, pos + off,
                                      image_path);
          !s.ok()) {
        return fail(s);
      }
      stats.bytes_written += n;
    }
  }
  if (ftruncate(fd, static_cast<off_t>(stats.image_size)) != 0) {
    return fail(ErrnoStatus(errno, absl::StrCat("truncate ", image_path)));
  }
  if (fsync(fd) != 0) return fail(ErrnoStatus(errno, absl::StrCat("fsync ", image_path)));
  if (close(fd) != 0) {
    const int err = errno;
    unlink(image_path.c_str());
    return ErrnoStatus(err, absl::StrCat("close ", image_path));
  }
  // The new name must survive a crash too.
  const std::filesystem::path parent = std::filesystem::path(image_path).parent_path();
  const std::string dir = parent.empty() ? std::string(".") : parent.string();
  int dfd = open(dir.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (dfd < 0 || fsync(dfd) != 0) {
    const int err = errno;
    if (dfd >= 0) close(dfd);
    return ErrnoStatus(err, absl::StrCat("fsync directory ", dir));
  }
  close(dfd);
  return stats;
}

}  // namespace cowblk::cow
