// Rewriting what a COW header records about its backing file, without
// touching the bitmap or the data: `qemu-img rebase -u` for UML COW files.
//
// UML (and cowblk) refuse a COW file whose backing file's size or mtime
// differs from what its header recorded. A copy that keeps the content but
// not the times (`cp -r`, rsync without -t), or a move to another path,
// makes every COW file over it unusable; an unsafe rebase re-accepts the
// backing file as it is now. It is the caller's word that the content did
// not change: nothing checks it (a changed backing file shows through every
// sector the COW file does not hold).
//
// Thread-safety: functions on files; the COW file's write lock keeps UML
// and other cowblk processes out while the header is rewritten.

#ifndef COWBLK_SERVER_COW_COW_REBASE_H_
#define COWBLK_SERVER_COW_COW_REBASE_H_

#include <string>

#include "absl/status/statusor.h"
#include "server/cow/cow_header.h"

namespace cowblk::cow {

struct RebaseResult {
  Header before;  // the header as it was
  Header after;   // as it is now on disk
};

// Records `backing` (made absolute as CowFile::Create stores it; empty:
// the path the header already records) as the backing file of the COW file
// at `cow_path`, with its current mtime, in place; the file is synced
// before this returns. Only the header's mtime and path change.
// Errors, each naming the file, and the file is left unchanged:
//   NotFound: the COW or backing file is missing;
//   Unavailable: the COW file is in use (UML or a cowblkd has it open);
//   FailedPrecondition: the backing file's size is not the recorded size
//     (the size fixes the bitmap's and the data's place: no rebase changes
//     it), the backing file is not a regular file or block device, or the
//     header is not v3 (the only layout written; older ones have no room
//     for another path of the same layout);
//   InvalidArgument: a malformed COW file, or a path too long for the
//     header's 4096-byte field.
absl::StatusOr<RebaseResult> RebaseUnsafe(const std::string& cow_path, const std::string& backing);

}  // namespace cowblk::cow

#endif  // COWBLK_SERVER_COW_COW_REBASE_H_
