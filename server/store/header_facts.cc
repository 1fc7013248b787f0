#include "server/store/header_facts.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>

#include "absl/strings/str_cat.h"
#include "common/file_io.h"
#include "server/cow/cow_header.h"

namespace cowblk::store {

absl::StatusOr<HeaderFacts> ReadHeaderFacts(const std::string& path) {
  const int fd = open(path.c_str(), O_RDONLY | O_CLOEXEC | O_NOFOLLOW | O_NONBLOCK);
  if (fd < 0) return ErrnoStatus(errno, absl::StrCat("open ", path));
  struct stat st;
  absl::Status s;
  std::string buf;
  if (fstat(fd, &st) != 0) {
    s = ErrnoStatus(errno, absl::StrCat("stat ", path));
  } else if (!S_ISREG(st.st_mode)) {
    s = absl::FailedPreconditionError(absl::StrCat(path, " is not a regular file"));
  } else {
    buf.resize(std::min<uint64_t>(static_cast<uint64_t>(st.st_size), cow::kMaxHeaderSize));
    s = PReadFull(fd, buf.data(), buf.size(), 0, path);
  }
  close(fd);
  if (!s.ok()) return s;
  auto header = cow::ParseHeader(buf.data(), buf.size());
  if (!header.ok()) return header.status();
  auto geometry = cow::ComputeGeometry(*header);
  if (!geometry.ok()) return geometry.status();
  return HeaderFacts{geometry->device_size, header->backing_file};
}

}  // namespace cowblk::store
