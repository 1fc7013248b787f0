// Whole-buffer positional I/O on file descriptors, with errors as
// absl::Status values that keep errno in the message.

#ifndef COWBLK_COMMON_FILE_IO_H_
#define COWBLK_COMMON_FILE_IO_H_

#include <sys/stat.h>
#include <sys/types.h>

#include <cstddef>
#include <cstdint>
#include <string>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"

namespace cowblk {

// Returns a status for `err` (an errno value): the message is
// "<context>: <strerror>". ENOENT maps to NotFound, ENOSPC/EDQUOT to
// ResourceExhausted, EIO to DataLoss, EACCES/EPERM/EROFS to
// FailedPrecondition (the server cannot use its own file: not a matter of the
// caller's rights), EEXIST to AlreadyExists, EAGAIN to Unavailable, EINVAL to
// InvalidArgument, anything else to Internal.
absl::Status ErrnoStatus(int err, absl::string_view context);

// Reads exactly `len` bytes at `offset`, continuing short reads and retrying
// EINTR. Bytes past end of file read as zeros (COW and backing files are
// sparse and may end early). Returns the errno status of a failed pread.
absl::Status PReadFull(int fd, void* buf, size_t len, uint64_t offset,
                       absl::string_view what);

// Writes exactly `len` bytes at `offset`, continuing short writes and retrying
// EINTR. A write that makes no progress is reported as ENOSPC, as the kernel
// would on the next attempt.
absl::Status PWriteFull(int fd, const void* buf, size_t len, uint64_t offset,
                        absl::string_view what);

// PWriteFull of `len` bytes at `offset`, except the 4 KiB blocks (aligned
// to the file's offsets) that are all zeros: they are skipped, so where the
// file was a hole they stay one (a new file's ranges written once: image
// uploads and commits). Returns how many bytes were written.
absl::StatusOr<uint64_t> PWriteSkippingZeros(int fd, const char* buf, size_t len,
                                             uint64_t offset, absl::string_view what);

// Size in bytes of the regular file or block device behind `fd`.
absl::StatusOr<uint64_t> FileSize(int fd, absl::string_view what);

// fsync of a directory, so that names created, renamed or removed in it
// survive a crash.
absl::Status FsyncDir(const std::string& dir);

// Gives the file `from` the name `to` unless `to` exists, atomically, and
// without a moment in which the file has two names (the store refuses
// images with more than one link): renameat2(RENAME_NOREPLACE), or, on a
// file system without it (EINVAL), link(2) then unlink(2) of `from`.
// Returns 0, or the errno value (EEXIST when `to` exists; `from` is then
// left as it was).
int RenameNoReplace(const std::string& from, const std::string& to);

// The first bytes (at most 511) of a small file; empty if it cannot be read.
std::string ReadSmallFile(const std::string& path);

// lstat of `path` when it is a regular file; FailedPrecondition for anything
// else (symlinks included), or the errno status, naming `what` and `path`.
absl::StatusOr<struct stat> StatRegular(const std::string& path, absl::string_view what);

}  // namespace cowblk

#endif  // COWBLK_COMMON_FILE_IO_H_
