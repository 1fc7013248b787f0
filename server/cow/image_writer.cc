#include "server/cow/image_writer.h"

#include <fcntl.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <filesystem>

#include "absl/strings/str_cat.h"
#include "common/file_io.h"

namespace cowblk::cow {

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
  auto written = PWriteSkippingZeros(fd_, data, keep, pos, path_);
  if (!written.ok()) return written.status();
  bytes_written_ += *written;
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
