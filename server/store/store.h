// Store: the data directory as the source of truth. Images live in
// DIR/images/NAME.img, volumes in DIR/volumes/NAME.cow (UML COW files whose
// backing path is the image's absolute path); blank volumes sit over a
// sparse all-zero base in DIR/images/.blank/SIZE.img. There is no other
// state but each volume's epoch record (epoch.h): on start every volume is
// opened and validated, and a bad one is reported and kept out of service,
// not fatal.
//
// Thread-safety: all methods are thread-safe. Administrative calls are
// serialized by one mutex; the I/O path goes through VolumeHandle and never
// takes it.

#ifndef COWBLK_SERVER_STORE_STORE_H_
#define COWBLK_SERVER_STORE_STORE_H_

#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <set>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "server/cow/bitmap.h"
#include "server/engine/engine.h"
#include "server/store/epoch.h"
#include "server/store/image_upload.h"
#include "server/store/volume_handle.h"

namespace cowblk::store {

struct VolumeInfo {
  std::string name;
  uint64_t size_bytes = 0;
  uint64_t allocated_bytes = 0;
  std::string image;  // empty for blank volumes
  bool ready = false;
  std::string error;  // why it is not ready
  std::string epoch;  // while ready (VolumeHandle::epoch)
};

// A page of GetAllocation: the runs from the requested offset on, and
// where the next page starts (0 when `runs` reach the requested end).
struct AllocationPage {
  std::vector<cow::SectorRun> runs;
  uint64_t next_offset = 0;
  // Asked with `zeros`: `runs` in bytes, the unallocated ones split into
  // what the image holds (data) and what reads as zeros (ReadsAsZeros).
  struct Extent {
    uint64_t offset = 0, length = 0;
    bool allocated = false, zero = false;
  };
  std::vector<Extent> extents;
};

// A snapshot (Store::CreateSnapshot): image `name` plus its record.
struct SnapshotInfo {
  std::string name;    // also the name of its image
  std::string source;  // the volume it was taken of
  uint64_t size_bytes = 0;
  int64_t created_unix_nanos = 0;  // just before its moment
  uint32_t volume_count = 0;       // volumes layered over its image
};

// [first, first + count) sectors of a volume that read from its backing
// file `backing_fd` (-1: a blank volume, all zeros) split into the file's
// data (`zero` false: partial sectors too) and its holes and what lies past
// its end (`zero`), appended to `out` in order, adjacent ones of the same
// kind merged; at most `max` extents in `out` (it stops there). Where the
// file system cannot tell (SEEK_DATA refused): data, always a safe answer.
void SplitBackingZeros(int backing_fd, uint64_t first, uint64_t count, size_t max,
                       std::vector<AllocationPage::Extent>* out);
// `runs` of volume `v` (SplitRuns of its bitmap) as extents: allocated
// ones as they are, the others by SplitBackingZeros; at most `max`. On the
// volume's engine thread (the bitmap's runs and the backing file are its).
std::vector<AllocationPage::Extent> ExtentsOf(const engine::Volume& v,
                                              const std::vector<cow::SectorRun>& runs, size_t max);

// The data directory at one moment (Store::Stats).
struct StoreStats {
  // The file system under the data directory (statvfs): its size and the
  // bytes an unprivileged process may still allocate there (f_bavail).
  uint64_t capacity_bytes = 0;
  uint64_t free_bytes = 0;
  uint32_t volume_count = 0;
  // Sums over the volumes: their device sizes, and the bytes that live in
  // their COW files (ready volumes only). COW files grow with first
  // writes, so provisioned - allocated is what the volumes may still take.
  uint64_t provisioned_bytes = 0;
  uint64_t allocated_bytes = 0;
};

struct StoreOptions {
  std::string data_dir;
  engine::VolumeOptions volume_options;
  uint64_t max_volume_size = uint64_t{1} << 44;
};

class Store {
 public:
  // Creates DIR/images and DIR/volumes if needed and opens every volume on
  // an engine of `engines`. Problems with single volumes are logged and kept
  // as VOLUME_STATE_ERROR; only an unusable directory fails.
  static absl::StatusOr<std::unique_ptr<Store>> Open(const StoreOptions& options,
                                                     engine::EngineGroup* engines);
  ~Store();  // closes (drains and flushes) every volume

  absl::StatusOr<VolumeInfo> CreateVolume(const std::string& name, const std::string& image,
                                          uint64_t size_bytes);
  absl::StatusOr<VolumeInfo> GetVolume(const std::string& name);
  // In name order, names > `after`, at most `limit`.
  std::vector<VolumeInfo> ListVolumes(const std::string& after, size_t limit);
  absl::Status DeleteVolume(const std::string& name);
  // Writes the volume's content at one moment (snapshot_copy.h) as the new
  // image `image`, while the volume serves on. `cancelled` (may be null) is
  // asked as the copy goes: once true, the commit stops with Cancelled and
  // leaves no image and no temporary file. FailedPrecondition while another
  // commit of the volume runs.
  absl::StatusOr<ImageInfo> CommitVolume(const std::string& name, const std::string& image,
                                         const std::function<bool()>& cancelled = nullptr);
  // Makes volume `name` a copy of volume `source` at one moment, as
  // CommitVolume's moment: a new COW file over the same backing file
  // holding the source's allocated sectors then (only those are copied).
  // The source serves on meanwhile. `cancelled` as CommitVolume's: a
  // cancelled clone leaves nothing. AlreadyExists when `name` exists or is
  // being made; NotFound when `source` is not a ready volume;
  // FailedPrecondition while another commit or clone of `source` runs.
  absl::StatusOr<VolumeInfo> CloneVolume(const std::string& source, const std::string& name,
                                         const std::function<bool()>& cancelled = nullptr);
  // Grows blank volume `name` to `size_bytes` (a multiple of 512), keeping
  // its data: the COW file is rewritten over the blank base of the new
  // size, because the bitmap grows and, past each 16 MiB of device, the
  // data area moves by the alignment (4 KiB). The cost: the volume is
  // closed (in-flight requests fail UNAVAILABLE; clients open it again),
  // its allocated bytes are copied to a temporary COW file that then
  // replaces it (a crash leaves the old file whole), and it is opened
  // again; admin calls and the opening of any volume (FindVolume) wait
  // meanwhile, since the store lock is held. The result is a plain v3 COW file
  // over a plain sparse image, which UML opens as before. The same size:
  // the volume, unchanged. FailedPrecondition: smaller (volumes do not
  // shrink), a volume over an image (it would need a larger image), or one
  // not ready; InvalidArgument: a bad size or above the limit.
  absl::StatusOr<VolumeInfo> ResizeVolume(const std::string& name, uint64_t size_bytes);
  // Records `image` (empty: the image of the file name the header names,
  // or the blank base of its size, under this data directory) as the
  // backing file of a volume that is not ready, with its current mtime
  // (cow::RebaseUnsafe), then opens the volume again; returns it, ready or
  // with its new error. FailedPrecondition when the volume is ready or the
  // image's size is not the volume's; NotFound for no such volume or image.
  absl::StatusOr<VolumeInfo> RebaseVolume(const std::string& name, const std::string& image);
  // At most `max_runs` runs of [offset, offset + length) (length 0: to the
  // end). REQUIRES: max_runs > 0.
  // `zeros`: fill AllocationPage::extents too.
  absl::StatusOr<AllocationPage> GetAllocation(const std::string& name, uint64_t offset,
                                               uint64_t length, size_t max_runs,
                                               bool zeros = false);
  // NotFound unless the volume exists and is ready.
  absl::StatusOr<std::shared_ptr<VolumeHandle>> FindVolume(const std::string& name);
  std::vector<std::shared_ptr<VolumeHandle>> ReadyVolumes();

  // `declared_size`: the size the client says it sends (0: unknown).
  absl::StatusOr<std::unique_ptr<ImageUpload>> StartUpload(const std::string& name,
                                                           uint64_t declared_size = 0);
  absl::StatusOr<ImageInfo> GetImage(const std::string& name);
  std::vector<ImageInfo> ListImages(const std::string& after, size_t limit);
  absl::Status DeleteImage(const std::string& name);

  // The data directory's file system and its volumes now. Fails (with the
  // errno's code) only when statvfs of the directory fails.
  absl::StatusOr<StoreStats> Stats();

  // Snapshots (docs/design.md, "Snapshots"): image `name` of volume
  // `volume` at one moment, as CommitVolume writes it, with a record
  // images/NAME.snapshot (source volume, creation time) made durable
  // before the image is published. Snapshots and images share one name
  // space: AlreadyExists when image `name` exists. A cancelled snapshot
  // leaves nothing.
  absl::StatusOr<SnapshotInfo> CreateSnapshot(const std::string& volume, const std::string& name,
                                              const std::function<bool()>& cancelled = nullptr);
  absl::StatusOr<SnapshotInfo> GetSnapshot(const std::string& name);
  // In name order, names > `after`, at most `limit`; only those of volume
  // `source` unless it is empty.
  std::vector<SnapshotInfo> ListSnapshots(const std::string& source, const std::string& after,
                                          size_t limit);
  // Removes the snapshot's image and record. While volumes are layered over
  // its image, the snapshot is hidden instead (its record renamed
  // NAME.snapshot-deleted: no longer listed, its name still taken) and the
  // image is removed when the last of them is deleted (or at the next
  // start). NotFound: no such (visible) snapshot.
  absl::Status DeleteSnapshot(const std::string& name);

  // Closes every volume (used on shutdown); returns the first error.
  absl::Status CloseAll();

  // The largest blank volume and image: StoreOptions::max_volume_size, or
  // less where the data directory's file system holds no file as large as
  // such a volume's COW file (probed at Open: ext4 with 4 KiB blocks stops
  // 4 KiB short of 16 TiB). Larger sizes are refused before anything is made.
  uint64_t max_volume_size() const;

  // Volumes whose epoch was renewed over an earlier one since Open
  // (EpochRecords::changes): possible crash losses reported. Any thread.
  uint64_t epoch_changes() const { return epochs_.changes(); }

 private:
  struct Entry {
    std::shared_ptr<VolumeHandle> handle;  // null when not ready
    std::string backing;                    // absolute path from the header
    std::string backing_real;               // the same, symlinks resolved
    uint64_t size_bytes = 0;
    std::string error;
  };

  Store(const StoreOptions& options, engine::EngineGroup* engines, std::string images_dir,
        std::string volumes_dir)
      : options_(options),
        engines_(engines),
        images_dir_(std::move(images_dir)),
        volumes_dir_(std::move(volumes_dir)),
        epochs_(volumes_dir_, options.volume_options.durability) {}
  std::string ImagePath(const std::string& name) const;
  std::string VolumePath(const std::string& name) const;
  std::string ImageNameOf(const std::string& backing) const;
  // The canonical path of `backing` when it is a regular file beneath
  // images/ with one link; FailedPrecondition otherwise. Opens nothing.
  absl::StatusOr<std::string> ConfineBacking(const std::string& backing) const;
  std::string LimitReason() const;
  VolumeInfo InfoOf(const std::string& name, const Entry& e) const;
  absl::StatusOr<ImageInfo> ImageInfoLocked(const std::string& name);
  absl::StatusOr<std::string> BlankBase(uint64_t size_bytes);
  void OpenExisting(const std::string& name);
  absl::Status Serve(const std::string& name, std::unique_ptr<cow::CowFile> file, Entry& e);
  // CommitVolume's body; `record` (may be null) is written as
  // images/IMAGE.snapshot before the image is published.
  absl::StatusOr<ImageInfo> Commit(const std::string& name, const std::string& image,
                                   const std::function<bool()>& cancelled,
                                   const std::string* record);
  uint32_t UsersLocked(const std::string& image_path) const;
  absl::StatusOr<SnapshotInfo> SnapshotInfoLocked(const std::string& name);
  // Removes records without an image, and hidden snapshots' images no
  // volume uses any more (with their records).
  void ReapSnapshotsLocked();

  const StoreOptions options_;
  engine::EngineGroup* const engines_;
  const std::string images_dir_, volumes_dir_;
  EpochRecords epochs_;
  std::mutex mu_;  // guards volumes_ and every create/delete in the directory
  std::map<std::string, Entry> volumes_;
  std::set<std::string> commits_;  // image names being written by a commit
  std::set<std::string> clones_;   // volume names being written by a clone
  uint64_t fs_max_volume_size_ = UINT64_MAX;  // set by Open
};

}  // namespace cowblk::store

#endif  // COWBLK_SERVER_STORE_STORE_H_
