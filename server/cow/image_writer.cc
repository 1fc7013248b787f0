#include "server/cow/image_writer.h"

#include <fcntl.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <filesystem>

#include "absl/strings/str_cat.h"
#include "common/file_io.h"

namespace cowblk::cow {
namespace {

constexpr uint64_t kZeroCheck = 4096;  // hole granularity

bool AllZero(const char* p, uint64_t n) {
  return n == 0 || (p[0] == 0 && std::equal(p, p + n - 1, p + 1));
}

}  // namespace

absl::StatusOr<std::unique_ptr<ImageWriter>> ImageWriter::Create(const std::string& path,
                                                                 uint64_t size) {
  const int fd = open(path.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0644);
  if (fd < 0) return ErrnoStatus(errno, absl::StrCat("create ", path));
  return std::make_unique<ImageWriter>(Passkey(), path, fd, size);
}

ImageWriter::~ImageWriter() {
  if (fd_ < 0) return;
  close(fd_);
  unlink(path_.c_str());
}

absl::Status ImageWriter::Write(uint64_t pos, const char* data, uint64_t len) {
  // Only the image's own bytes: the device may end in a partial sector.
  const uint64_t keep = pos < size_ ? std::min(len, size_ - pos) : 0;
  for (uint64_t off = 0; off < keep; off += kZeroCheck) {
    const uint64_t n = std::min(kZeroCheck, keep - off);
    if (AllZero(data + off, n)) continue;
    if (absl::Status s = PWriteFull(fd_, data + off, n, pos + off, path_); !s.ok()) return s;
    bytes_written_ += n;
  }
  return absl::OkStatus();
}

absl::Status ImageWriter::Finish() {
  if (ftruncate(fd_, static_cast<off_t>(size_)) != 0) {
    return ErrnoStatus(errno, absl::StrCat("truncate ", path_));
  }
  if (fsync(fd_) != 0) return ErrnoStatus(errno, absl::StrCat("fsync ", path_));
  const int fd = fd_;
  fd_ = -1;
  if (close(fd) != 0) {
    const int err = errno;
    unlink(path_.c_str());
    return ErrnoStatus(err, absl::StrCat("close ", path_));
  }
  // The new name must survive a crash too.
  const std::filesystem::path parent = std::filesystem::path(path_).parent_path();
  absl::Status s = FsyncDir(parent.empty() ? std::string(".") : parent.string());
  if (!s.ok()) unlink(path_.c_str());
  return s;
}

}  // namespace cowblk::cow
