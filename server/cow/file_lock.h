// Whole-file locks that exclude a running User-Mode Linux.
//
// UML takes fcntl(F_SETLK) locks: a write lock on the COW file and a read lock
// on the backing file. We take the same kinds of lock as open file description
// (OFD) locks: the kernel makes OFD and classic POSIX locks conflict, so UML
// and cowblk exclude each other, and unlike POSIX locks an OFD lock belongs to
// the descriptor, so closing some other descriptor of the same file in this
// process does not silently drop it, and two opens of one COW file inside one
// cowblkd exclude each other too. The lock lives until the descriptor closes.

#ifndef COWBLK_SERVER_COW_FILE_LOCK_H_
#define COWBLK_SERVER_COW_FILE_LOCK_H_

#include "absl/strings/string_view.h"

#include "absl/status/status.h"

namespace cowblk::cow {

enum class LockKind { kRead, kWrite };

// Locks the whole file behind `fd` without waiting. Returns Unavailable
// ("<what> is in use: ...", naming the holder's pid when it is a POSIX lock)
// if a conflicting lock is held, or the errno status of another failure.
absl::Status LockWholeFile(int fd, LockKind kind, absl::string_view what);

}  // namespace cowblk::cow

#endif  // COWBLK_SERVER_COW_FILE_LOCK_H_
