#include "common/file_io.h"

#include <fcntl.h>
#include <linux/fs.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstdio>
#include <cstring>

#include "absl/strings/str_cat.h"

namespace cowblk {

absl::Status ErrnoStatus(int err, absl::string_view context) {
  std::string msg = absl::StrCat(context, ": ", strerror(err));
  switch (err) {
    case ENOENT:
    case ENOTDIR:
      return absl::NotFoundError(msg);
    case ENOSPC:
    case EDQUOT:
      return absl::ResourceExhaustedError(msg);
    case EACCES:
    case EPERM:
    case EROFS:
      // The server's own access to its files: not the caller's permissions.
      return absl::FailedPreconditionError(msg);
    case EIO:
      return absl::DataLossError(msg);
    case EEXIST:
      return absl::AlreadyExistsError(msg);
    case EAGAIN:
      return absl::UnavailableError(msg);
    case EINVAL:
      return absl::InvalidArgumentError(msg);
    default:
      return absl::InternalError(msg);
  }
}

absl::Status PReadFull(int fd, void* buf, size_t len, uint64_t offset,
                       absl::string_view what) {
  auto* p = static_cast<char*>(buf);
  while (len > 0) {
    ssize_t n = pread(fd, p, len, static_cast<off_t>(offset));
    if (n < 0) {
      if (errno == EINTR) continue;
      return ErrnoStatus(errno, absl::StrCat("read ", what, " at ", offset));
    }
    if (n == 0) {  // end of file: the rest is a hole
      memset(p, 0, len);
      return absl::OkStatus();
    }
    p += n;
    len -= static_cast<size_t>(n);
    offset += static_cast<uint64_t>(n);
  }
  return absl::OkStatus();
}

absl::Status PWriteFull(int fd, const void* buf, size_t len, uint64_t offset,
                        absl::string_view what) {
  const auto* p = static_cast<const char*>(buf);
  while (len > 0) {
    ssize_t n = pwrite(fd, p, len, static_cast<off_t>(offset));
    if (n < 0) {
      if (errno == EINTR) continue;
      return ErrnoStatus(errno, absl::StrCat("write ", what, " at ", offset));
    }
    if (n == 0) {
      return ErrnoStatus(ENOSPC, absl::StrCat("write ", what, " at ", offset));
    }
    p += n;
    len -= static_cast<size_t>(n);
    offset += static_cast<uint64_t>(n);
  }
  return absl::OkStatus();
}

absl::StatusOr<uint64_t> PWriteSkippingZeros(int fd, const char* buf, size_t len,
                                             uint64_t offset, absl::string_view what) {
  constexpr uint64_t kBlock = 4096;  // hole granularity
  uint64_t written = 0;
  for (size_t done = 0; done < len;) {
    const size_t n =
        static_cast<size_t>(std::min<uint64_t>(kBlock - (offset + done) % kBlock, len - done));
    const char* p = buf + done;
    if (p[0] != 0 || std::memcmp(p, p + 1, n - 1) != 0) {
      if (absl::Status s = PWriteFull(fd, p, n, offset + done, what); !s.ok()) return s;
      written += n;
    }
    done += n;
  }
  return written;
}

absl::StatusOr<uint64_t> FileSize(int fd, absl::string_view what) {
  struct stat st;
  if (fstat(fd, &st) != 0) return ErrnoStatus(errno, absl::StrCat("stat ", what));
  if (S_ISBLK(st.st_mode)) {
    uint64_t bytes = 0;
    if (ioctl(fd, BLKGETSIZE64, &bytes) != 0) {
      return ErrnoStatus(errno, absl::StrCat("BLKGETSIZE64 ", what));
    }
    return bytes;
  }
  return static_cast<uint64_t>(st.st_size);
}

absl::Status FsyncDir(const std::string& dir) {
  int fd = open(dir.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (fd < 0) return ErrnoStatus(errno, absl::StrCat("open ", dir));
  int rc = fsync(fd);
  int err = errno;
  close(fd);
  return rc == 0 ? absl::OkStatus() : ErrnoStatus(err, absl::StrCat("fsync ", dir));
}

int RenameNoReplace(const std::string& from, const std::string& to) {
  if (renameat2(AT_FDCWD, from.c_str(), AT_FDCWD, to.c_str(), RENAME_NOREPLACE) == 0) return 0;
  if (errno != EINVAL) return errno;
  if (link(from.c_str(), to.c_str()) != 0) return errno;
  unlink(from.c_str());
  return 0;
}

std::string ReadSmallFile(const std::string& path) {
  std::string s;
  int fd = open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) return s;
  char buf[512];
  ssize_t n = read(fd, buf, sizeof buf - 1);
  close(fd);
  if (n > 0) s.assign(buf, static_cast<size_t>(n));
  return s;
}

absl::StatusOr<struct stat> StatRegular(const std::string& path, absl::string_view what) {
  struct stat st;
  if (lstat(path.c_str(), &st) != 0) return ErrnoStatus(errno, absl::StrCat(what, " ", path));
  if (!S_ISREG(st.st_mode)) {
    return absl::FailedPreconditionError(
        absl::StrCat(what, " ", path, " is not a regular file (symlinks are refused)"));
  }
  return st;
}

}  // namespace cowblk
