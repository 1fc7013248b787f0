#include "server/cow/cow_rebase.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <filesystem>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "common/file_io.h"
#include "server/cow/cow_file.h"

namespace cowblk::cow {

absl::StatusOr<RebaseResult> RebaseUnsafe(const std::string& cow_path, const std::string& backing) {
  OpenOptions options;
  options.writable = true;
  options.open_backing = false;
  auto cow = CowFile::Open(cow_path, options);
  if (!cow.ok()) return cow.status();
  RebaseResult result;
  result.before = (*cow)->header();
  if (result.before.layout != Layout::kV3) {
    return absl::FailedPreconditionError(
        absl::StrCat(cow_path, ": a ", LayoutName(result.before.layout),
                     " header; only v3 headers are rewritten"));
  }
  std::error_code ec;
  const std::string path =
      backing.empty() ? result.before.backing_file
                      : std::filesystem::absolute(backing, ec).lexically_normal().string();
  if (ec) return absl::InvalidArgumentError(absl::StrCat("backing file ", backing, ": ", ec.message()));
  // O_NONBLOCK: a FIFO named as the backing file must not hang the call.
  const int fd = open(path.c_str(), O_RDONLY | O_CLOEXEC | O_NONBLOCK);
  if (fd < 0) return ErrnoStatus(errno, absl::StrCat("backing file ", path));
  struct stat st;
  absl::StatusOr<uint64_t> size =
      fstat(fd, &st) != 0 ? ErrnoStatus(errno, absl::StrCat("stat ", path))
      : !S_ISREG(st.st_mode) && !S_ISBLK(st.st_mode)
          ? absl::FailedPreconditionError(
                absl::StrCat("backing file ", path, ": not a regular file or block device"))
          : FileSize(fd, path);
  close(fd);
  if (!size.ok()) return size.status();
  if (*size != result.before.size) {
    return absl::FailedPreconditionError(absl::StrFormat(
        "%s: size mismatch: the header records %u bytes, backing file %s has %u; a rebase "
        "changes the backing file's name and time, never the size",
        cow_path, result.before.size, path, *size));
  }
  result.after = result.before;
  result.after.backing_file = path;
  result.after.mtime = static_cast<uint32_t>(st.st_mtime);
  auto encoded = EncodeV3Header(result.after);
  if (!encoded.ok()) {
    return absl::Status(encoded.status().code(),
                        absl::StrCat(cow_path, ": ", encoded.status().message()));
  }
  const int cow_fd = (*cow)->cow_fd();
  if (absl::Status s = PWriteFull(cow_fd, encoded->data(), encoded->size(), 0, cow_path); !s.ok()) {
    return s;
  }
  if (fdatasync(cow_fd) != 0) return ErrnoStatus(errno, absl::StrCat("fdatasync ", cow_path));
  return result;
}

}  // namespace cowblk::cow
