// A snapshot's record: images/NAME.snapshot beside the snapshot's image
// images/NAME.img, saying which volume it was taken of and when. A hidden
// snapshot (deleted while volumes use its image) has its record renamed
// images/NAME.snapshot-deleted. Image files end in ".img", so no image
// name makes either file name. docs/design.md, "Snapshots".
//
// Format (text, one "key value" a line):
//   cowblk-snapshot 1
//   source VOLUME
//   created_unix_nanos N
//
// Thread-safety: free functions, no state.

#ifndef COWBLK_SERVER_STORE_SNAPSHOT_RECORD_H_
#define COWBLK_SERVER_STORE_SNAPSHOT_RECORD_H_

#include <cstdint>
#include <string>

#include "absl/status/statusor.h"

namespace cowblk::store {

inline constexpr char kSnapshotRecordExt[] = ".snapshot";
inline constexpr char kHiddenSnapshotRecordExt[] = ".snapshot-deleted";

struct SnapshotRecord {
  std::string source;
  int64_t created_unix_nanos = 0;
};

std::string SnapshotRecordPath(const std::string& images_dir, const std::string& name);
std::string HiddenSnapshotRecordPath(const std::string& images_dir, const std::string& name);
std::string FormatSnapshotRecord(const SnapshotRecord& record);
// InvalidArgument (naming `path`) for anything but the format above.
absl::StatusOr<SnapshotRecord> ReadSnapshotRecord(const std::string& path);
// Writes `content` to `path` durably: a temporary ".commit-..." file (what
// RemoveLeftovers removes after a crash), fsync, rename, fsync of `dir`.
absl::Status WriteSnapshotRecord(const std::string& dir, const std::string& path,
                                 const std::string& content);

}  // namespace cowblk::store

#endif  // COWBLK_SERVER_STORE_SNAPSHOT_RECORD_H_
