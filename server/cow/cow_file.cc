#include "server/cow/cow_file.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <filesystem>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "common/file_io.h"
#include "common/sector.h"
#include "server/cow/file_lock.h"

namespace cowblk::cow {
namespace {

// Closes a descriptor on scope exit unless released.
class FdGuard {
 public:
  explicit FdGuard(int fd) : fd_(fd) {}
  ~FdGuard() {
    if (fd_ >= 0) close(fd_);
  }
  int release() {
    int fd = fd_;
    fd_ = -1;
    return fd;
  }

 private:
  int fd_;
};

absl::Status FsyncParentDir(const std::string& path) {
  const std::filesystem::path parent = std::filesystem::path(path).parent_path();
  const std::string dir = parent.empty() ? std::string(".") : parent.string();
  int fd = open(dir.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (fd < 0) return ErrnoStatus(errno, absl::StrCat("open directory ", dir));
  int rc = fsync(fd);
  int err = errno;
  close(fd);
  if (rc != 0) return ErrnoStatus(err, absl::StrCat("fsync directory ", dir));
  return absl::OkStatus();
}

}  // namespace

absl::StatusOr<std::vector<std::string>> CheckBackingIdentity(
    const Header& header, int backing_fd) {
  auto size = FileSize(backing_fd, header.backing_file);
  if (!size.ok()) return size.status();
  struct stat st;
  if (fstat(backing_fd, &st) != 0) {
    return ErrnoStatus(errno, absl::StrCat("stat ", header.backing_file));
  }
  std::vector<std::string> problems;
  if (*size != header.size) {
    problems.push_back(absl::StrFormat(
        "Size mismatch (%u vs %u) of COW header vs backing file %s",
        header.size, *size, header.backing_file));
  }
  const uint32_t mtime = static_cast<uint32_t>(st.st_mtime);
  if (mtime != header.mtime) {
    problems.push_back(absl::StrFormat(
        "mtime mismatch (%u vs %u) of COW header vs backing file %s",
        header.mtime, mtime, header.backing_file));
  }
  return problems;
}

CowFile::~CowFile() {
  if (backing_fd_ >= 0) close(backing_fd_);
  if (cow_fd_ >= 0) close(cow_fd_);
}

namespace {

// Opens `path` without blocking on a FIFO (or a device that waits), and
// refuses anything but a regular file or block device; the descriptor it
// returns is blocking again, as io_uring and the engine expect. Messages
// read "<context>open <what><path>".
absl::StatusOr<int> OpenFile(const std::string& path, int flags, absl::string_view context,
                             absl::string_view what) {
  const int fd = open(path.c_str(), flags | O_NONBLOCK | O_CLOEXEC);
  if (fd < 0) return ErrnoStatus(errno, absl::StrCat(context, "open ", what, path));
  FdGuard guard(fd);
  struct stat st;
  if (fstat(fd, &st) != 0) return ErrnoStatus(errno, absl::StrCat("stat ", path));
  if (!S_ISREG(st.st_mode) && !S_ISBLK(st.st_mode)) {
    return absl::FailedPreconditionError(
        absl::StrCat(context, what, path, " is not a regular file"));
  }
  if (fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) & ~O_NONBLOCK) != 0) {
    return ErrnoStatus(errno, absl::StrCat("fcntl ", path));
  }
  return guard.release();
}

}  // namespace

absl::StatusOr<std::unique_ptr<CowFile>> CowFile::Open(
    const std::string& path, const OpenOptions& options) {
  auto fd = OpenFile(path, options.writable ? O_RDWR : O_RDONLY, "", "");
  if (!fd.ok()) return fd.status();
  return OpenFd(path, *fd, options);
}

absl::StatusOr<std::unique_ptr<CowFile>> CowFile::OpenFd(
    const std::string& path, int fd, const OpenOptions& options) {
  FdGuard cow_guard(fd);
  if (options.lock) {
    absl::Status s = LockWholeFile(
        fd, options.writable ? LockKind::kWrite : LockKind::kRead, path);
    if (!s.ok()) return s;
  }
  struct stat st;
  if (fstat(fd, &st) != 0) return ErrnoStatus(errno, absl::StrCat("stat ", path));
  if (!S_ISREG(st.st_mode)) {
    return absl::InvalidArgumentError(
        absl::StrCat(path, ": not a regular file"));
  }
  const uint64_t file_size = static_cast<uint64_t>(st.st_size);

  unsigned char raw[kMaxHeaderSize];
  const size_t head_len = file_size < kMaxHeaderSize ? file_size : kMaxHeaderSize;
  if (absl::Status s = PReadFull(fd, raw, head_len, 0, path); !s.ok()) return s;
  auto header = ParseHeader(raw, head_len);
  if (!header.ok()) {
    return absl::InvalidArgumentError(
        absl::StrCat(path, ": ", header.status().message()));
  }
  auto geometry = ComputeGeometry(*header);
  if (!geometry.ok()) {
    return absl::InvalidArgumentError(
        absl::StrCat(path, ": ", geometry.status().message()));
  }
  // Checked before the bitmap is allocated, so a header claiming a huge
  // device over a small file costs nothing.
  if (file_size < geometry->bitmap_offset + geometry->bitmap_bytes) {
    return absl::InvalidArgumentError(absl::StrFormat(
        "%s: truncated: %u bytes, but the bitmap ends at %u", path, file_size,
        geometry->bitmap_offset + geometry->bitmap_bytes));
  }

  auto cow = std::make_unique<CowFile>(Passkey());
  cow->path_ = path;
  cow->header_ = *std::move(header);
  cow->geometry_ = *geometry;
  cow->file_size_ = file_size;
  cow->writable_ = options.writable;
  cow->bitmap_ = Bitmap(geometry->sectors);
  if (absl::Status s = PReadFull(fd, cow->bitmap_.data(), cow->bitmap_.size_bytes(),
                                 geometry->bitmap_offset,
                                 absl::StrCat(path, " bitmap"));
      !s.ok()) {
    return s;
  }

  if (options.open_backing) {
    const std::string& backing = cow->header_.backing_file;
    if (options.check_backing) {
      if (absl::Status s = options.check_backing(backing); !s.ok()) return s;
    }
    auto bfd = OpenFile(backing, O_RDONLY, absl::StrCat(path, ": "), "backing file ");
    if (!bfd.ok()) return bfd.status();
    FdGuard backing_guard(*bfd);
    if (options.lock) {
      absl::Status s = LockWholeFile(*bfd, LockKind::kRead, backing);
      if (!s.ok()) return s;
    }
    auto problems = CheckBackingIdentity(cow->header_, *bfd);
    if (!problems.ok()) return problems.status();
    if (!problems->empty()) {
      return absl::FailedPreconditionError(
          absl::StrCat(path, ": ", problems->front()));
    }
    cow->backing_fd_ = backing_guard.release();
  }
  cow->cow_fd_ = cow_guard.release();
  return cow;
}

absl::StatusOr<std::unique_ptr<CowFile>> CowFile::Create(
    const std::string& path, const CreateOptions& options) {
  if (options.backing_file.empty()) {
    return absl::InvalidArgumentError("a backing file is required");
  }
  std::error_code ec;
  const std::string backing =
      std::filesystem::absolute(options.backing_file, ec).lexically_normal().string();
  if (ec) {
    return absl::InvalidArgumentError(
        absl::StrCat("backing file ", options.backing_file, ": ", ec.message()));
  }
  int bfd = open(backing.c_str(), O_RDONLY | O_CLOEXEC);
  if (bfd < 0) return ErrnoStatus(errno, absl::StrCat("open backing file ", backing));
  FdGuard backing_guard(bfd);
  struct stat st;
  if (fstat(bfd, &st) != 0) return ErrnoStatus(errno, absl::StrCat("stat ", backing));
  auto size = FileSize(bfd, backing);
  if (!size.ok()) return size.status();

  Header h;
  h.backing_file = backing;
  h.mtime = static_cast<uint32_t>(st.st_mtime);
  h.size = *size;
  h.alignment = options.alignment;
  auto encoded = EncodeV3Header(h);
  if (!encoded.ok()) {
    return absl::Status(encoded.status().code(),
                        absl::StrCat("backing file ", backing, ": ",
                                     encoded.status().message()));
  }
  auto geometry = ComputeGeometry(h);
  if (!geometry.ok()) return geometry.status();

  int fd = open(path.c_str(), O_RDWR | O_CREAT | O_EXCL | O_CLOEXEC, 0644);
  if (fd < 0) return ErrnoStatus(errno, absl::StrCat("create ", path));
  auto fail = [&](absl::Status s) {
    close(fd);
    unlink(path.c_str());
    return s;
  };
  if (absl::Status s = LockWholeFile(fd, LockKind::kWrite, path); !s.ok()) {
    return fail(s);
  }
  if (absl::Status s = PWriteFull(fd, encoded->data(), encoded->size(), 0, path);
      !s.ok()) {
    return fail(s);
  }
  const char zero = 0;
  if (absl::Status s = PWriteFull(fd, &zero, 1,
                                  geometry->data_offset + h.size - 1, path);
      !s.ok()) {
    return fail(s);
  }
  if (fsync(fd) != 0) return fail(ErrnoStatus(errno, absl::StrCat("fsync ", path)));
  if (absl::Status s = FsyncParentDir(path); !s.ok()) return fail(s);

  OpenOptions open_options;
  open_options.writable = true;
  auto cow = OpenFd(path, fd, open_options);  // owns fd from here on
  if (!cow.ok()) unlink(path.c_str());
  return cow;
}

absl::Status CowFile::CheckRange(uint64_t offset, uint64_t len) const {
  if (!IsSectorAligned(offset) || !IsSectorAligned(len)) {
    return absl::InvalidArgumentError(absl::StrFormat(
        "offset %u and length %u must be multiples of 512", offset, len));
  }
  if (len == 0) return absl::InvalidArgumentError("length is 0");
  uint64_t end = 0;
  if (!CheckedAdd(offset, len, &end) || end > geometry_.device_size) {
    return absl::OutOfRangeError(
        absl::StrFormat("range [%u, +%u) is beyond the device size %u", offset,
                        len, geometry_.device_size));
  }
  return absl::OkStatus();
}

absl::Status CowFile::Read(uint64_t offset, void* buf, uint64_t len) const {
  if (absl::Status s = CheckRange(offset, len); !s.ok()) return s;
  auto* out = static_cast<char*>(buf);
  for (const SectorRun& run :
       SplitRuns(bitmap_, offset / kSectorSize, len / kSectorSize)) {
    char* dst = out + (run.first * kSectorSize - offset);
    const uint64_t bytes = run.count * kSectorSize;
    const uint64_t pos = run.first * kSectorSize;
    absl::Status s;
    if (run.allocated) {
      s = PReadFull(cow_fd_, dst, bytes, geometry_.data_offset + pos, path_);
    } else if (backing_fd_ >= 0) {
      s = PReadFull(backing_fd_, dst, bytes, pos, header_.backing_file);
    } else {
      s = absl::FailedPreconditionError(absl::StrCat(
          path_, ": opened without its backing file; sector ", run.first,
          " lives there"));
    }
    if (!s.ok()) return s;
  }
  return absl::OkStatus();
}

absl::Status CowFile::Write(uint64_t offset, const void* buf, uint64_t len) {
  if (!writable_) {
    return absl::FailedPreconditionError(absl::StrCat(path_, " is open read-only"));
  }
  if (absl::Status s = CheckRange(offset, len); !s.ok()) return s;
  if (absl::Status s = PWriteFull(cow_fd_, buf, len,
                                  geometry_.data_offset + offset, path_);
      !s.ok()) {
    return s;
  }
  const uint64_t first = offset / kSectorSize;
  const uint64_t count = len / kSectorSize;
  if (bitmap_.AllSet(first, count)) return absl::OkStatus();
  // Data before bitmap, durably: a crash must never expose unwritten data.
  if (absl::Status s = Flush(); !s.ok()) return s;
  // On a failed bitmap write memory goes back to what the disk may hold, so
  // the sectors keep reading from wherever they did before.
  const uint64_t first_byte = first / 8;
  const uint64_t last_byte = (first + count - 1) / 8;
  std::vector<unsigned char> saved(bitmap_.data() + first_byte,
                                   bitmap_.data() + last_byte + 1);
  bitmap_.SetRange(first, count);
  const BitmapBlockRange blocks = BitmapBlocksFor(
      geometry_.bitmap_offset, geometry_.bitmap_block_size, first, count);
  for (uint64_t b = blocks.first_block; b < blocks.first_block + blocks.count; ++b) {
    const BitmapWrite w = BitmapWriteFor(geometry_.bitmap_offset,
                                         geometry_.bitmap_bytes,
                                         geometry_.bitmap_block_size, b);
    absl::Status s = PWriteFull(cow_fd_, bitmap_.data() + w.bitmap_byte, w.length,
                                w.file_offset, absl::StrCat(path_, " bitmap"));
    if (!s.ok()) {
      std::copy(saved.begin(), saved.end(), bitmap_.data() + first_byte);
      return s;
    }
  }
  return absl::OkStatus();
}

absl::Status CowFile::Flush() {
  if (fdatasync(cow_fd_) != 0) {
    return ErrnoStatus(errno, absl::StrCat("fdatasync ", path_));
  }
  return absl::OkStatus();
}

}  // namespace cowblk::cow
