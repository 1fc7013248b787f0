// CopySnapshot: a volume's content at one moment written as a new raw
// image while the volume keeps serving: the copy behind CommitVolume (and
// what snapshots of issue #22 build on). docs/design.md, "Point-in-time
// commit", says why it is a copy-on-write view and not a pause of the
// volume.
//
// Thread-safety: thread-safe (one snapshot per volume at a time: see
// VolumeHandle::BeginSnapshot).

#ifndef COWBLK_SERVER_STORE_SNAPSHOT_COPY_H_
#define COWBLK_SERVER_STORE_SNAPSHOT_COPY_H_

#include <functional>
#include <string>

#include "absl/status/statusor.h"
#include "server/cow/cow_commit.h"
#include "server/engine/snapshot.h"
#include "server/store/volume_handle.h"

namespace cowblk::store {

struct SnapshotCopyStats {
  cow::CommitStats image;           // bytes_from_cow: allocated at the moment
  engine::SnapshotStats snapshot;   // what the volume's writers waited
};

// Writes the volume's content at one moment (VolumeHandle::BeginSnapshot:
// every write acknowledged before the call, none submitted after it) to a
// new sparse file `image_path`, made durable with its name; logs
// `volume_snapshot_taken` at the moment. `cancelled` is
// asked before each chunk (1 MiB); once it says true the copy stops with
// Cancelled. On any error `image_path` is removed and nothing else is left
// behind; the volume serves on either way. Never overwrites (AlreadyExists).
absl::StatusOr<SnapshotCopyStats> CopySnapshot(VolumeHandle& volume,
                                               const std::string& image_path,
                                               const std::function<bool()>& cancelled);

// Writes the volume's COW data at one moment (as CopySnapshot) into a new
// COW file `cow_path` over `backing` (the volume's own backing file): a
// clone, whose allocated sectors are the volume's at the moment and whose
// other sectors read from the same backing. Only allocated runs are
// copied; the new file is durable when this returns. On any error
// `cow_path` is removed; the volume serves on either way. Never overwrites
// (AlreadyExists). `bytes_from_cow` in the result's `image` counts what was
// copied.
absl::StatusOr<SnapshotCopyStats> CloneSnapshot(VolumeHandle& volume, const std::string& cow_path,
                                                const std::string& backing,
                                                const std::function<bool()>& cancelled);

}  // namespace cowblk::store

#endif  // COWBLK_SERVER_STORE_SNAPSHOT_COPY_H_
