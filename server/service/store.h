// Store: the data directory as the source of truth. Images live in
// DIR/images/NAME.img, volumes in DIR/volumes/NAME.cow (UML COW files whose
// backing path is the image's absolute path); blank volumes sit over a
// sparse all-zero base in DIR/images/.blank/SIZE.img. There is no other
// state: on start every volume is opened and validated, and a bad one is
// reported and kept out of service, not fatal.
//
// Thread-safety: all methods are thread-safe. Administrative calls are
// serialized by one mutex; the I/O path (VolumeHandle::Submit) takes only
// the handle's shared lock.

#ifndef COWBLK_SERVER_SERVICE_STORE_H_
#define COWBLK_SERVER_SERVICE_STORE_H_

#include <atomic>
#include <map>
#include <set>
#include <memory>
#include <mutex>
#include <shared_mutex>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "server/cow/bitmap.h"
#include "server/engine/engine.h"

namespace cowblk::service {

// Names of volumes and images: [a-z0-9][a-z0-9._-]{0,62}.
bool IsValidName(absl::string_view name);
// InvalidArgument naming `field` unless `name` is valid.
absl::Status ValidateName(absl::string_view field, absl::string_view name);

// Descriptors of a volume's COW file (read-write or read-only) and backing
// file (read-only) of a transport's own (new open file descriptions: no lock
// rides on them, and they stay valid when the volume closes), for sending
// engine::ReadExtents and for VolumeHandle::WriteAndSubmit.
class VolumeFiles {
 public:
  VolumeFiles(int cow, int backing) : cow_(cow), backing_(backing) {}
  ~VolumeFiles();
  VolumeFiles(const VolumeFiles&) = delete;
  VolumeFiles& operator=(const VolumeFiles&) = delete;
  int fd(engine::ReadExtent::Source source) const {
    return source == engine::ReadExtent::Source::kCow ? cow_ : backing_;
  }
  int cow_fd() const { return cow_; }

 private:
  const int cow_;
  const int backing_;
};

// A volume in service. Sessions hold it by shared_ptr; Submit fails once the
// volume was closed (deleted or the server is stopping).
class VolumeHandle {
 public:
  VolumeHandle(std::string name, engine::Engine* engine, engine::Volume* volume,
               std::string epoch = "")
      : name_(std::move(name)),
        engine_(engine),
        volume_(volume),
        size_(volume->size()),
        data_offset_(volume->file().geometry().data_offset),
        write_split_(volume->options().write_split_bytes),
        epoch_(std::move(epoch)) {}

  const std::string& name() const { return name_; }
  // Changes only when acknowledged writes that no flush covered may have
  // been lost since the volume was last served: it was not closed cleanly,
  // and its durability was `deferred` or the machine rebooted since. Sent to
  // Session clients (`cowblk-epoch` initial metadata), whose next flush then
  // fails DATA_LOSS if they had such writes.
  const std::string& epoch() const { return epoch_; }
  uint64_t size() const { return size_; }
  const engine::VolumeStats& stats() const { return volume_->stats(); }
  engine::Engine* engine() const { return engine_; }

  // Queues `req` on the volume's engine (waking it through `batch` when
  // given); req->done runs on the engine thread. Returns false, without
  // touching `req`, when the volume is closed.
  bool Submit(engine::Request* req, engine::SubmitBatch* batch = nullptr);
  // Submits and waits (administrative paths, never the gRPC I/O path).
  absl::Status SubmitAndWait(engine::OpType op, uint64_t offset, uint64_t length,
                             char* data);
  // Stops new requests, waits for in-flight ones, flushes, closes the files.
  absl::Status Close();
  // An inline write: writes the data of the Request::Write `req` into the
  // COW file through `files` on the calling thread, then submits it as a
  // Request::WrittenWrite, so that the engine only does
  // the rest (barrier, bits): no hand-off of the data write to a kernel
  // worker. A failed write is submitted with its errno (it fails, counted,
  // setting no bit; allocated sectors in its range may hold part of the
  // data, as after any failed write); a request the engine would refuse
  // (invalid, or to a volume whose writes stopped after an fdatasync
  // error) is submitted unwritten. Under the handle's shared lock, so
  // nothing is written once Close began: returns false then, without
  // touching `req`.
  bool WriteAndSubmit(const VolumeFiles& files, engine::Request* req,
                      engine::SubmitBatch* batch = nullptr);
  // Opens VolumeFiles for the volume, its COW file read-write when
  // `writable` (for WriteAndSubmit). FailedPrecondition unless the volume
  // uses the page cache (read extents and inline writes need it);
  // Unavailable once closed.
  absl::StatusOr<std::unique_ptr<VolumeFiles>> OpenFiles(bool writable);
  // Runs `fn` on the engine thread with the volume and waits (bitmap reads).
  void RunOnEngine(const std::function<void(engine::Volume&)>& fn);

 private:
  const std::string name_;
  engine::Engine* const engine_;
  engine::Volume* const volume_;
  const uint64_t size_;
  const uint64_t data_offset_;  // of the COW file's data area
  const uint64_t write_split_;  // VolumeOptions::write_split_bytes
  const std::string epoch_;
  std::shared_mutex mu_;  // shared: submitting (and inline writes); exclusive: closing
  std::atomic<bool> closed_{false};
};

struct VolumeInfo {
  std::string name;
  uint64_t size_bytes = 0;
  uint64_t allocated_bytes = 0;
  std::string image;  // empty for blank volumes
  bool ready = false;
  std::string error;  // why it is not ready
};

struct ImageInfo {
  std::string name;
  uint64_t size_bytes = 0;
  uint32_t volume_count = 0;
};

struct StoreOptions {
  std::string data_dir;
  engine::VolumeOptions volume_options;
  uint64_t max_volume_size = uint64_t{1} << 44;
};

// An image being uploaded: written to a hidden temporary file and published
// under its name only by Finish (never over an existing image).
class ImageUpload {
 public:
  ~ImageUpload();  // removes the temporary file unless finished
  absl::Status Append(absl::string_view data);
  absl::StatusOr<ImageInfo> Finish();

 private:
  friend class Store;
  ImageUpload() = default;
  std::string name_, tmp_path_, final_path_;
  int fd_ = -1;
  uint64_t size_ = 0;
  uint64_t max_size_ = 0;
  bool finished_ = false;
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
  absl::StatusOr<ImageInfo> CommitVolume(const std::string& name, const std::string& image);
  absl::StatusOr<std::vector<cow::SectorRun>> GetAllocation(const std::string& name,
                                                            uint64_t offset, uint64_t length);
  // NotFound unless the volume exists and is ready.
  absl::StatusOr<std::shared_ptr<VolumeHandle>> FindVolume(const std::string& name);
  std::vector<std::shared_ptr<VolumeHandle>> ReadyVolumes();

  absl::StatusOr<std::unique_ptr<ImageUpload>> StartUpload(const std::string& name);
  absl::StatusOr<ImageInfo> GetImage(const std::string& name);
  std::vector<ImageInfo> ListImages(const std::string& after, size_t limit);
  absl::Status DeleteImage(const std::string& name);

  // Closes every volume (used on shutdown); returns the first error.
  absl::Status CloseAll();

 private:
  struct Entry {
    std::shared_ptr<VolumeHandle> handle;  // null when not ready
    std::string backing;                    // absolute path from the header
    std::string backing_real;               // the same, symlinks resolved
    uint64_t size_bytes = 0;
    std::string error;
  };

  Store(const StoreOptions& options, engine::EngineGroup* engines)
      : options_(options), engines_(engines) {}
  std::string ImagePath(const std::string& name) const;
  std::string VolumePath(const std::string& name) const;
  std::string StatePath(const std::string& name) const;  // the epoch file
  // Reads the volume's epoch file, keeps or renews the epoch, and records
  // the volume as open (durably, before any write is acknowledged). If that
  // record cannot be written, an epoch of this process alone.
  std::string OpenEpoch(const std::string& name);
  // Records a clean close: the epoch stays for the next start.
  void CloseEpoch(const std::string& name, const std::string& epoch);
  // Writes the volume's epoch record (with this boot and durability).
  absl::Status SaveEpoch(const std::string& name, const std::string& epoch, bool open);
  std::string ImageNameOf(const std::string& backing) const;
  VolumeInfo InfoOf(const std::string& name, const Entry& e) const;
  absl::StatusOr<ImageInfo> ImageInfoLocked(const std::string& name);
  absl::StatusOr<std::string> BlankBase(uint64_t size_bytes);
  void OpenExisting(const std::string& name);
  absl::Status Serve(const std::string& name, std::unique_ptr<cow::CowFile> file, Entry& e);

  const StoreOptions options_;
  engine::EngineGroup* const engines_;
  std::string images_dir_, volumes_dir_;
  std::mutex mu_;  // guards volumes_ and every create/delete in the directory
  std::map<std::string, Entry> volumes_;
  std::set<std::string> commits_;  // image names being written by a commit
};

}  // namespace cowblk::service

#endif  // COWBLK_SERVER_SERVICE_STORE_H_
