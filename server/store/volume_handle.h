// A volume in service: the store's handle on an engine::Volume, shared by
// every stream, connection and administrative call that uses it. Submit
// fails once the volume was closed (deleted, or the server is stopping), so
// a holder never reaches a volume the engine has let go of.
//
// Thread-safety: all methods are thread-safe. Submitting (and inline
// writes) take the handle's shared lock; Close takes it exclusively, once.

#ifndef COWBLK_SERVER_STORE_VOLUME_HANDLE_H_
#define COWBLK_SERVER_STORE_VOLUME_HANDLE_H_

#include <atomic>
#include <cstdint>
#include <functional>
#include <memory>
#include <shared_mutex>
#include <string>

#include "absl/status/statusor.h"
#include "server/engine/engine.h"
#include "server/store/volume_files.h"

namespace cowblk::store {

class VolumeHandle {
 public:
  // `volume` lives on `engine` until Close.
  VolumeHandle(std::string name, engine::Engine* engine, engine::Volume* volume,
               std::string epoch = "");

  const std::string& name() const { return name_; }
  // Changes only when acknowledged writes that no flush covered may have
  // been lost since the volume was last served (epoch.h). Sent to Session
  // clients (`cowblk-epoch` initial metadata), whose next flush then fails
  // DATA_LOSS if they had such writes.
  const std::string& epoch() const { return epoch_; }
  uint64_t size() const { return size_; }
  const engine::VolumeStats& stats() const { return volume_->stats(); }
  engine::Engine* engine() const { return engine_; }

  // Queues `req` on the volume's engine (woken through `batch` when given);
  // req->done runs on the engine thread. Returns false, without touching
  // `req`, when the volume is closed.
  bool Submit(engine::Request* req, engine::SubmitBatch* batch = nullptr);
  // Submits a plain request of `op` and waits for it (administrative paths,
  // never an I/O path).
  absl::Status SubmitAndWait(engine::OpType op, uint64_t offset, uint64_t length, char* data);
  // Stops new requests, waits for in-flight ones, flushes, closes the files.
  // Returns the flush's status; later calls return OK at once.
  absl::Status Close();
  // An inline write: writes the data of the engine::Write `req` into the COW
  // file through `files` on the calling thread, then submits it as an
  // engine::WrittenWrite, so that the engine only does the rest (barrier,
  // bits): no hand-off of the data write to a kernel worker. A failed write
  // is submitted with its errno (it fails, counted, setting no bit;
  // allocated sectors in its range may hold part of the data, as after any
  // failed write); a request the engine would refuse (invalid, or to a
  // volume whose writes stopped after an fdatasync error) is submitted
  // unwritten. Under the handle's shared lock, so nothing is written once
  // Close began: returns false then, without touching `req`.
  bool WriteAndSubmit(const VolumeFiles& files, engine::Request* req,
                      engine::SubmitBatch* batch = nullptr);
  // Opens VolumeFiles for the volume, its COW file read-write when
  // `writable` (for WriteAndSubmit). FailedPrecondition unless the volume
  // uses the page cache (read extents and inline writes need it);
  // Unavailable once closed.
  absl::StatusOr<std::unique_ptr<VolumeFiles>> OpenFiles(bool writable);
  // Runs `fn` on the engine thread with the volume and waits (bitmap reads).
  void RunOnEngine(const std::function<void(engine::Volume&)>& fn);

  // Point-in-time snapshots (server/engine/snapshot.h) for CopySnapshot
  // (snapshot_copy.h), one at a time per volume. While one is open,
  // WriteAndSubmit leaves the data write to the engine: an inline write
  // reaches the COW file before the engine sees it, so the engine could not
  // keep it out of the snapshot.
  struct SnapshotSource {
    // Read-only; the COW file with O_DIRECT when the volume uses it
    // (--cache=none): read it into 4096-aligned memory.
    std::unique_ptr<VolumeFiles> files;
    uint64_t data_offset = 0;            // of the COW file's data area
    uint64_t image_size = 0;             // the header's size: the image's
  };
  // Opens a snapshot and returns at its moment: every write acknowledged
  // before the call is in it, none submitted after the call. Errors:
  // FailedPrecondition while another snapshot of the volume is open,
  // Unavailable once the volume is closed (also when it closes meanwhile).
  absl::StatusOr<SnapshotSource> BeginSnapshot();
  // Volume::NextSnapshotChunk; Unavailable once the volume is closed (its
  // snapshot ended with it).
  absl::StatusOr<bool> NextSnapshotChunk(const uint64_t* copied, engine::SnapshotChunk* out);
  // Ends the snapshot that BeginSnapshot opened (held writes go on).
  // REQUIRES: BeginSnapshot succeeded.
  engine::SnapshotStats EndSnapshot();

 private:
  const std::string name_;
  engine::Engine* const engine_;
  engine::Volume* const volume_;
  const uint64_t size_;
  const uint64_t data_offset_;  // of the COW file's data area
  const uint64_t write_split_;  // VolumeOptions::write_split_bytes
  const std::string epoch_;
  // Called when an inline write (WriteAndSubmit) ended.
  void LeaveInlineWrite();

  std::shared_mutex mu_;  // shared: submitting (and inline writes); exclusive: closing
  std::atomic<bool> closed_{false};
  // A snapshot is open (or being opened): no inline writes. Set before
  // BeginSnapshot waits for inline_writers_ to reach zero; each inline
  // write counts itself before it looks at the flag (both seq_cst), so
  // every one that did not see the flag is waited for.
  std::atomic<bool> snapshot_open_{false};
  std::atomic<int> inline_writers_{0};
};

}  // namespace cowblk::store

#endif  // COWBLK_SERVER_STORE_VOLUME_HANDLE_H_
