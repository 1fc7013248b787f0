#include "server/cow/file_lock.h"

#include <fcntl.h>

#include <cerrno>

#include "absl/strings/str_cat.h"
#include "common/file_io.h"

namespace cowblk::cow {

absl::Status LockWholeFile(int fd, LockKind kind, absl::string_view what) {
  struct flock fl = {};
  fl.l_type = kind == LockKind::kWrite ? F_WRLCK : F_RDLCK;
  fl.l_whence = SEEK_SET;
  fl.l_start = 0;
  fl.l_len = 0;  // whole file, as UML does
  if (fcntl(fd, F_OFD_SETLK, &fl) == 0) return absl::OkStatus();
  const int err = errno;
  if (err != EAGAIN && err != EACCES) {
    return ErrnoStatus(err, absl::StrCat("lock ", what));
  }
  std::string holder = "another open file description holds a lock";
  struct flock probe = {};
  probe.l_type = fl.l_type;
  probe.l_whence = SEEK_SET;
  if (fcntl(fd, F_OFD_GETLK, &probe) == 0 && probe.l_type != F_UNLCK) {
    const char* held = probe.l_type == F_WRLCK ? "write" : "read";
    holder = probe.l_pid > 0
                 ? absl::StrCat("process ", probe.l_pid, " holds a ", held,
                                " lock (a running UML or another cowblk?)")
                 : absl::StrCat("another open of it holds a ", held, " lock");
  }
  return absl::UnavailableError(absl::StrCat(what, " is in use: ", holder));
}

}  // namespace cowblk::cow
