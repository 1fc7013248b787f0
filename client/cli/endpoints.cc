#include "client/cli/endpoints.h"

#include <fcntl.h>
#include <linux/fs.h>
#include <sys/ioctl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>

#include "absl/strings/str_cat.h"
#include "client/cli/output.h"

namespace cowblk::cli {
namespace {

constexpr size_t kMaxPendingWrites = 4;

absl::Status Errno(const std::string& what) {
  const int err = errno;
  const std::string msg = absl::StrCat(what, ": ", std::strerror(err));
  switch (err) {
    case ENOENT:
      return absl::NotFoundError(msg);
    case EACCES:
    case EPERM:
      return absl::PermissionDeniedError(msg);
    case ENOSPC:
      return absl::ResourceExhaustedError(msg);
    default:
      return absl::InternalError(msg);
  }
}

}  // namespace

// ---- FileSource --------------------------------------------------------

absl::StatusOr<std::unique_ptr<FileSource>> FileSource::Open(const std::string& path) {
  const int fd = open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) return Errno(path);
  struct stat st;
  if (fstat(fd, &st) != 0) {
    absl::Status s = Errno(path);
    close(fd);
    return s;
  }
  uint64_t size = static_cast<uint64_t>(st.st_size);
  if (S_ISBLK(st.st_mode) && ioctl(fd, BLKGETSIZE64, &size) != 0) {
    absl::Status s = Errno(path);
    close(fd);
    return s;
  }
  if (!S_ISREG(st.st_mode) && !S_ISBLK(st.st_mode)) {
    close(fd);
    return absl::InvalidArgumentError(absl::StrCat(path, ": not a regular file or block device"));
  }
  return std::unique_ptr<FileSource>(new FileSource(path, fd, size, S_ISREG(st.st_mode)));
}

FileSource::~FileSource() { close(fd_); }

absl::StatusOr<std::vector<Extent>> FileSource::Map() {
  if (!regular_) return std::vector<Extent>{{0, size_, true}};
  return MapFile(fd_, size_);
}

absl::Status FileSource::Read(uint64_t offset, char* buf, size_t length) {
  size_t done = 0;
  while (done < length) {
    const ssize_t n = pread(fd_, buf + done, length - done, static_cast<off_t>(offset + done));
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) return Errno(path_);
    if (n == 0) {  // the file shrank under us: the rest reads as zeros
      std::memset(buf + done, 0, length - done);
      break;
    }
    done += static_cast<size_t>(n);
  }
  return absl::OkStatus();
}

// ---- FileSink ----------------------------------------------------------

absl::StatusOr<std::unique_ptr<FileSink>> FileSink::Open(const std::string& path) {
  if (path == "-")
    return std::unique_ptr<FileSink>(new FileSink("stdout", STDOUT_FILENO, false, true));
  struct stat st;
  const bool exists = stat(path.c_str(), &st) == 0;
  const bool device = exists && S_ISBLK(st.st_mode);
  const int flags = O_WRONLY | O_CLOEXEC | (device ? 0 : O_CREAT | O_TRUNC);
  const int fd = open(path.c_str(), flags, 0644);
  if (fd < 0) return Errno(path);
  if (fstat(fd, &st) != 0) {
    absl::Status s = Errno(path);
    close(fd);
    return s;
  }
  const bool regular = S_ISREG(st.st_mode);
  // A character device or a FIFO (/dev/null, a pipe) takes bytes in order.
  return std::unique_ptr<FileSink>(new FileSink(path, fd, regular, !regular && !device));
}

FileSink::~FileSink() {
  if (fd_ != STDOUT_FILENO) close(fd_);
}

absl::Status FileSink::Begin(uint64_t size) {
  if (regular_ && ftruncate(fd_, static_cast<off_t>(size)) != 0) {
    return Errno(path_);
  }
  return absl::OkStatus();
}

absl::Status FileSink::WriteAll(uint64_t offset, const char* buf, size_t length) {
  size_t done = 0;
  while (done < length) {
    const ssize_t n =
        stream_ ? write(fd_, buf + done, length - done)
                : pwrite(fd_, buf + done, length - done, static_cast<off_t>(offset + done));
    if (n < 0 && errno == EINTR) continue;
    if (n < 0 && errno == EPIPE && fd_ == STDOUT_FILENO) return StdoutClosed();
    if (n < 0) return Errno(path_);
    done += static_cast<size_t>(n);
  }
  return absl::OkStatus();
}

absl::Status FileSink::Write(uint64_t offset, const char* buf, size_t length) {
  return WriteAll(offset, buf, length);
}

absl::Status FileSink::Zero(uint64_t offset, uint64_t length) {
  if (regular_) return absl::OkStatus();  // truncated to size: already a hole
  static const std::string kZeros(1 << 20, '\0');
  while (length > 0) {
    const size_t n = static_cast<size_t>(std::min<uint64_t>(length, kZeros.size()));
    if (absl::Status s = WriteAll(offset, kZeros.data(), n); !s.ok()) return s;
    offset += n;
    length -= n;
  }
  return absl::OkStatus();
}

absl::Status FileSink::Finish() { return absl::OkStatus(); }

// ---- VolumeSource ------------------------------------------------------

absl::StatusOr<std::vector<Extent>> VolumeSource::Map() {
  if (!volume_->info().image.empty()) return std::vector<Extent>{{0, size_, true}};
  auto ranges = volume_->GetAllocation();
  if (!ranges.ok()) return ranges.status();
  std::vector<Extent> out;
  for (const AllocationRange& r : *ranges) {
    if (r.offset >= size_) break;
    out.push_back({r.offset, std::min(r.length, size_ - r.offset), r.allocated});
  }
  return out;
}

absl::Status VolumeSource::Read(uint64_t offset, char* buf, size_t length) {
  const uint64_t sector = volume_->sector_size();
  if (length % sector == 0) return volume_->Read(offset, buf, length);
  // The last sector of an image whose size is not a multiple of 512.
  std::string tmp((length + sector - 1) / sector * sector, '\0');
  if (absl::Status s = volume_->Read(offset, tmp.data(), tmp.size()); !s.ok()) return s;
  std::memcpy(buf, tmp.data(), length);
  return absl::OkStatus();
}

// ---- VolumeSink --------------------------------------------------------

VolumeSink::~VolumeSink() { Drain(0).IgnoreError(); }

absl::Status VolumeSink::Begin(uint64_t size) {
  if (size > volume_->size()) {
    return absl::OutOfRangeError(absl::StrCat("the source is ", size, " bytes, the volume ",
                                              volume_->name(), " only ", volume_->size()));
  }
  if (volume_->info().image.empty()) {
    auto ranges = volume_->GetAllocation();
    if (!ranges.ok()) return ranges.status();
    allocation_ = *std::move(ranges);
  }
  return absl::OkStatus();
}

bool VolumeSink::Unallocated(uint64_t offset, uint64_t length) const {
  for (const AllocationRange& r : allocation_) {
    if (r.offset + r.length <= offset) continue;
    if (r.offset >= offset + length) break;
    if (r.allocated) return false;
  }
  return !allocation_.empty();
}

absl::Status VolumeSink::Write(uint64_t offset, const char* buf, size_t length) {
  if (absl::Status s = Drain(kMaxPendingWrites - 1); !s.ok()) return s;
  Pending p;
  p.data.assign(buf, length);
  p.done = volume_->WriteAsync(offset, p.data.data(), p.data.size());
  pending_.push_back(std::move(p));
  return absl::OkStatus();
}

absl::Status VolumeSink::Zero(uint64_t offset, uint64_t length) {
  // A blank volume's unallocated sectors read as zeros already.
  if (Unallocated(offset, length)) return absl::OkStatus();
  if (absl::Status s = Drain(kMaxPendingWrites - 1); !s.ok()) return s;
  pending_.push_back({"", volume_->WriteZeroesAsync(offset, length)});
  return absl::OkStatus();
}

absl::Status VolumeSink::Finish() {
  if (absl::Status s = Drain(0); !s.ok()) return s;
  return volume_->Flush();
}

absl::Status VolumeSink::Drain(size_t keep) {
  absl::Status first;
  while (pending_.size() > keep) {
    absl::Status s = pending_.front().done.get();
    if (first.ok()) first = s;
    pending_.pop_front();
  }
  return first;
}

// ---- ImageSink ---------------------------------------------------------

absl::Status ImageSink::Begin(uint64_t size) {
  auto upload = client_->StartImageUpload(name_, size);
  if (!upload.ok()) return upload.status();
  upload_ = *std::move(upload);
  return absl::OkStatus();
}

absl::Status ImageSink::InOrder(uint64_t offset) const {
  if (offset == upload_->sent()) return absl::OkStatus();
  return absl::InternalError(
      absl::StrCat("image upload out of order: at ", offset, ", ", upload_->sent(), " sent"));
}

absl::Status ImageSink::Write(uint64_t offset, const char* buf, size_t length) {
  if (absl::Status s = InOrder(offset); !s.ok()) return s;
  return upload_->Write(buf, length);
}

absl::Status ImageSink::Zero(uint64_t offset, uint64_t length) {
  if (absl::Status s = InOrder(offset); !s.ok()) return s;
  return upload_->Zero(length);
}

absl::Status ImageSink::Finish() {
  auto image = upload_->Finish();
  if (!image.ok()) return image.status();
  image_ = *std::move(image);
  return absl::OkStatus();
}

}  // namespace cowblk::cli
