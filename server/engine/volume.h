// Volume: one COW volume served by an engine. It turns block requests into
// file I/O on the COW and backing files and keeps the engine invariants of
// docs/design.md:
//  - a sector's bit is set in memory only after its data write completed,
//    just before the bitmap block holding it is written from memory;
//  - in `ordered` durability the data new bits expose is made durable
//    (group-committed fdatasync) before that bitmap block is written;
//  - a bitmap block is never rewritten while a write of it is in flight:
//    updates that overlap one wait, FIFO, and waiters on one block are
//    coalesced into one write;
//  - reads that touch a sector with a bitmap update pending or waiting stall
//    until it completes;
//  - rewrites of allocated sectors need no bitmap write and no barrier;
//  - each request completes once, with one status.
//
// Thread-safety: none. Everything runs on the owning engine thread: Submit,
// and completions delivered through VolumeIoSink. Stats may be read from any
// thread.

#ifndef COWBLK_SERVER_ENGINE_VOLUME_H_
#define COWBLK_SERVER_ENGINE_VOLUME_H_

#include <cstdint>
#include <deque>
#include <functional>
#include <map>
#include <memory>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "server/cow/cow_file.h"
#include "server/engine/io.h"
#include "server/engine/request.h"
#include "server/engine/volume_stats.h"

namespace cowblk::engine {

enum class Durability {
  kOrdered,    // fdatasync of the data before the bitmap block that exposes it
  kUnordered,  // no barrier: UML's behaviour, safe against process crashes only
};
enum class CacheMode {
  kWriteback,  // COW file through the page cache
  kNone,       // COW file with O_DIRECT (needs a v3 file aligned to >= 512)
};

struct VolumeOptions {
  Durability durability = Durability::kOrdered;
  CacheMode cache = CacheMode::kWriteback;
  // Times each request from Submit to completion into
  // VolumeStats::io_duration: two clock reads per request.
  bool latency_histograms = true;
  // Debugging aid, set by Engine::OpenVolume when EngineOptions asks for it:
  // each bitmap block write is handed to this function instead of the I/O
  // backend; calling `submit` (on the engine thread) issues the write.
  std::function<void(std::function<void()> submit)> hold_bitmap_write = nullptr;
};

class Volume {
 public:
  // Takes over an open, writable CowFile. Fails when the options do not fit
  // the file (O_DIRECT on a layout whose bitmap is not block-aligned).
  static absl::StatusOr<std::unique_ptr<Volume>> Create(
      std::unique_ptr<cow::CowFile> file, IoBackend* io,
      const VolumeOptions& options);
  ~Volume();

  // Starts `req`. Bad requests (unaligned, empty, too long, out of range)
  // complete at once with InvalidArgument/OutOfRange and touch nothing.
  // REQUIRES: `req` stays valid until req->done runs.
  void Submit(Request* req);

  // Called by the engine's IoSink for operations this volume submitted.
  void OnIoComplete(void* task, int32_t result);

  uint64_t size() const { return file_->geometry().device_size; }
  const cow::CowFile& file() const { return *file_; }
  const VolumeStats& stats() const { return stats_; }
  const VolumeOptions& options() const { return options_; }
  // Requests not completed yet (for draining).
  size_t requests_in_flight() const { return requests_in_flight_; }

 private:
  friend class VolumeIoSink;
  struct Op;
  struct Update;
  struct BlockWrite;
  struct Task;

  Volume(std::unique_ptr<cow::CowFile> file, IoBackend* io,
         const VolumeOptions& options);
  absl::Status Validate(const Request& req) const;

  // Reads.
  void StartRead(Op* op);
  bool ReadMustStall(const Op* op) const;
  void RetryStalledReads();
  // Writes, trims, write-zeroes: data first, then the bitmap update.
  void StartWrite(Op* op);
  void OnDataDone(Op* op);
  void EnqueueUpdate(Update* u);
  void Pump();
  void OnBlockWriteDone(BlockWrite* bw, int32_t result);
  void FinishUpdate(Update* u, absl::Status status);
  void AddDependency(Update* u, Update* on);
  // Group commit: `fn` runs after an fdatasync issued after this call.
  void RequestSync(Op* op);
  void StartSync();
  void OnSyncDone(int32_t result);

  void SubmitTask(Task* t);
  void OnTaskDone(Task* t, int32_t result);
  void PieceDone(Op* op, absl::Status status);
  void Complete(Op* op, absl::Status status);

  std::unique_ptr<cow::CowFile> file_;
  IoBackend* io_;
  VolumeOptions options_;
  int data_fd_;  // COW file descriptor used for I/O (O_DIRECT for kNone)
  int direct_fd_ = -1;
  uint64_t data_offset_;
  cow::Bitmap& bitmap_;  // the in-memory bitmap (file_'s)
  VolumeStats stats_;
  size_t requests_in_flight_ = 0;

  // Bitmap update state (see docs/design.md, "engine").
  std::deque<Update*> waiting_;                 // FIFO
  std::vector<Update*> in_flight_updates_;      // bits set, block writes issued
  std::map<uint64_t, BlockWrite*> pending_blocks_;  // block -> write in flight
  std::deque<Op*> stalled_reads_;               // FIFO
  // Group commit.
  bool sync_in_flight_ = false;
  std::vector<Op*> sync_current_;  // waiting for the fdatasync in flight
  std::vector<Op*> sync_next_;     // need one issued after they arrived
};

// Routes completions to the volume that submitted the operation.
class VolumeIoSink : public IoSink {
 public:
  void OnIoComplete(uint64_t user_data, int32_t result) override;
};

}  // namespace cowblk::engine

#endif  // COWBLK_SERVER_ENGINE_VOLUME_H_
