#include "server/store/image_upload.h"

#include <fcntl.h>
#include <unistd.h>

#include <filesystem>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "common/file_io.h"
#include "common/log.h"
#include "server/store/random_id.h"

namespace cowblk::store {

absl::StatusOr<std::unique_ptr<ImageUpload>> ImageUpload::Start(const std::string& images_dir,
                                                                const std::string& name,
                                                                uint64_t max_size,
                                                                uint64_t declared_size) {
  if (declared_size > max_size) {
    return absl::ResourceExhaustedError(absl::StrFormat(
        "image %s: %u bytes, larger than the limit of %u bytes", name, declared_size, max_size));
  }
  std::unique_ptr<ImageUpload> up(new ImageUpload);
  up->name_ = name;
  up->final_path_ = absl::StrCat(images_dir, "/", name, ".img");
  up->max_size_ = max_size;
  up->declared_size_ = declared_size;
  if (access(up->final_path_.c_str(), F_OK) == 0) {
    return absl::AlreadyExistsError(absl::StrCat("image ", name, " exists"));
  }
  up->tmp_path_ = absl::StrCat(images_dir, "/.upload-", name, "-", RandomHexId());
  up->fd_ = open(up->tmp_path_.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0444);
  if (up->fd_ < 0) return ErrnoStatus(errno, absl::StrCat("create ", up->tmp_path_));
  return up;
}

ImageUpload::~ImageUpload() {
  if (fd_ >= 0) close(fd_);
  if (!finished_ && !tmp_path_.empty()) unlink(tmp_path_.c_str());
}

absl::Status ImageUpload::Append(absl::string_view data) {
  if (absl::Status s = CheckLimit(data.size()); !s.ok()) return s;
  auto written = PWriteSkippingZeros(fd_, data.data(), data.size(), size_, tmp_path_);
  if (!written.ok()) return written.status();
  size_ += data.size();
  data_bytes_ += *written;
  return absl::OkStatus();
}

absl::Status ImageUpload::AppendZeros(uint64_t count) {
  if (absl::Status s = CheckLimit(count); !s.ok()) return s;
  size_ += count;
  return absl::OkStatus();
}

absl::Status ImageUpload::CheckLimit(uint64_t count) const {
  if (count > max_size_ - size_) {
    return absl::ResourceExhaustedError(
        absl::StrFormat("image %s: larger than the limit of %u bytes", name_, max_size_));
  }
  return absl::OkStatus();
}

absl::StatusOr<ImageInfo> ImageUpload::Finish() {
  if (size_ == 0) return absl::InvalidArgumentError(absl::StrCat("image ", name_, ": no data"));
  if (declared_size_ != 0 && size_ != declared_size_) {
    return absl::InvalidArgumentError(absl::StrFormat(
        "size_bytes: image %s: %u bytes declared, %u sent", name_, declared_size_, size_));
  }
  // Zeros at the end were never written: the size makes them holes.
  if (ftruncate(fd_, static_cast<off_t>(size_)) != 0) {
    return ErrnoStatus(errno, absl::StrCat("truncate ", tmp_path_));
  }
  if (fsync(fd_) != 0) return ErrnoStatus(errno, absl::StrCat("fsync ", tmp_path_));
  if (const int err = RenameNoReplace(tmp_path_, final_path_); err != 0) {
    if (err == EEXIST) return absl::AlreadyExistsError(absl::StrCat("image ", name_, " exists"));
    return ErrnoStatus(err, absl::StrCat("publish ", final_path_));
  }
  finished_ = true;
  absl::Status s = FsyncDir(std::filesystem::path(final_path_).parent_path().string());
  if (!s.ok()) return s;
  Log(LogLevel::kInfo, "image_uploaded", {{"image", name_}, {"bytes", std::to_string(size_)},
                                          {"data_bytes", std::to_string(data_bytes_)}});
  return ImageInfo{name_, size_, 0};
}

}  // namespace cowblk::store
