// The largest file the data directory's file system can hold, found by
// trying: ext4 with 4 KiB blocks stops just below 16 TiB (2^44 - 4096
// bytes), with 1 KiB blocks at 4 TiB, and the kernel says so only as EFBIG
// when a file grows past it. The store refuses sizes above it up front
// instead of failing a create half-way.

#ifndef COWBLK_SERVER_STORE_FILE_SIZE_LIMIT_H_
#define COWBLK_SERVER_STORE_FILE_SIZE_LIMIT_H_

#include <cstdint>
#include <string>
#include <vector>

#include "absl/status/statusor.h"

namespace cowblk::store {

// Prefix of the probe's temporary file, which start-up removes if a crash
// left it (a name users cannot create: it starts with '.').
inline constexpr char kProbePrefix[] = ".probe-";

// The largest length a file in `dir` can be truncated to, found by a
// binary search of ftruncate(2) on a temporary sparse file (about 60
// calls; no blocks are written). Returns the errno status when the file
// cannot be created.
absl::StatusOr<uint64_t> ProbeMaxFileSize(const std::string& dir);

// The largest volume (a multiple of 512 bytes) whose COW file, header and
// bitmap included, fits in a file of `max_file_size` bytes.
uint64_t MaxVolumeSizeForFile(uint64_t max_file_size);

// The largest volume whose COW file and blank base fit in every one of
// `dirs` (UINT64_MAX when none could be probed). A directory where the
// probe cannot create its file (a read-only images volume, which gets no
// new files anyway) is logged (`volume_size_unprobed`) and skipped.
uint64_t MaxVolumeSizeIn(const std::vector<std::string>& dirs);

}  // namespace cowblk::store

#endif  // COWBLK_SERVER_STORE_FILE_SIZE_LIMIT_H_
