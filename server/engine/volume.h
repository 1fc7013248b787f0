// Volume: one COW volume served by an engine. It turns block requests into
// file I/O on the COW and backing files and keeps the engine invariants of
// docs/design.md:
//  - a sector's bit is set in memory only after its data write completed,
//    just before the bitmap block holding it is written from memory;
//  - in `ordered` durability the data new bits expose is made durable
//    (group-committed fdatasync) before that bitmap block is written;
//  - in `deferred` durability a write is acknowledged once its data is
//    written and its bits are set in memory; a background commit loop
//    (fdatasync, then the bitmap blocks written from a shadow bitmap that
//    holds only bits whose data that fdatasync covered) persists the bits,
//    and FLUSH/FUA wait for it;
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

#include <algorithm>
#include <atomic>
#include <cstdint>
#include <deque>
#include <functional>
#include <map>
#include <memory>
#include <set>
#include <string_view>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "server/cow/cow_file.h"
#include "server/engine/batch_end.h"
#include "server/engine/io.h"
#include "server/engine/request.h"
#include "server/engine/volume_stats.h"

namespace cowblk::engine {

enum class Durability {
  kOrdered,    // fdatasync of the data before the bitmap block that exposes it
  kUnordered,  // no barrier: UML's behaviour, safe against process crashes only
  kDeferred,   // ack after the data; bits committed in the background after
               // an fdatasync of their data, as qcow2 defers its L2 tables
};
const char* DurabilityName(Durability d);  // "ordered", "unordered", "deferred"
// Parses a DurabilityName; false for anything else.
bool ParseDurability(std::string_view name, Durability* out);
enum class CacheMode {
  kWriteback,  // COW file through the page cache
  kNone,       // COW file with O_DIRECT (needs a v3 file aligned to >= 512)
};

struct VolumeOptions {
  Durability durability = Durability::kOrdered;
  CacheMode cache = CacheMode::kWriteback;
  // `deferred` durability: how long acknowledged bits may wait before the
  // commit loop writes them when no flush asks for them (0: at once, one
  // round after another). Longer intervals batch more bits per fdatasync;
  // a process crash may lose acknowledged, unflushed writes of that long.
  uint32_t commit_interval_ms = 0;
  // Page cache only: writes go to the kernel as pieces that end at
  // multiples of this many bytes in the COW file (a multiple of 4096; 0:
  // whole). The page cache sizes a folio by the write that creates
  // it, and on kernels whose ext4 uses large folios every later small write
  // into one walks all of its buffer heads: 4 KiB rewrites after 1 MiB
  // writes cost 1.4x more server CPU. Each piece costs a kernel write of
  // its own, so large writes get slower (bench/RESULTS.md).
  uint64_t write_split_bytes = 0;
  // Times each request from Submit to completion into
  // VolumeStats::io_duration: two clock reads per request.
  bool latency_histograms = true;
  // Debugging aid, set by Engine::OpenVolume when EngineOptions asks for it:
  // each bitmap block write is handed to this function instead of the I/O
  // backend; calling `submit` (on the engine thread) issues the write.
  std::function<void(std::function<void()> submit)> hold_bitmap_write = nullptr;
};

// Where a piece of a page-cache write that starts at file offset `at` ends,
// for a write that ends at `end` and is handed to the kernel in pieces
// ending at multiples of `split` (VolumeOptions::write_split_bytes; 0:
// whole).
inline uint64_t WritePieceEnd(uint64_t at, uint64_t end, uint64_t split) {
  return split == 0 ? end : std::min(end, (at / split + 1) * split);
}

class Volume {
 public:
  // Takes over an open, writable CowFile. Fails when the options do not fit
  // the file (O_DIRECT on a layout whose bitmap is not block-aligned).
  // `batch_ends`: where the listeners of completed requests
  // (Request::batch_end) are queued for the engine to call at the end of
  // its batch; null (no engine: tests) calls them right after `done`.
  static absl::StatusOr<std::unique_ptr<Volume>> Create(
      std::unique_ptr<cow::CowFile> file, IoBackend* io,
      const VolumeOptions& options, BatchEnds* batch_ends = nullptr);
  ~Volume();

  // Why Submit would refuse `req` at once (its range fails CheckBlockRange
  // of common/block_range.h, a buffer is missing, or its kind needs the
  // page cache), or OK. Reads only what never changes after Create, so any
  // thread may call it (inline writes check a request before writing its
  // data).
  absl::Status Validate(const Request& req) const;
  // Starts `req`. Bad requests (unaligned, empty, too long, out of range)
  // complete at once with InvalidArgument/OutOfRange and touch nothing.
  // REQUIRES: `req` stays valid until req->done runs.
  void Submit(Request* req);

  // The engine is closing the volume (engine thread): commit without
  // waiting for the commit interval, and cancel its timer.
  void BeginClose();

  // Called by the engine's IoSink for operations this volume submitted.
  void OnIoComplete(void* task, int32_t result);

  uint64_t size() const { return file_->geometry().device_size; }
  const cow::CowFile& file() const { return *file_; }
  const VolumeStats& stats() const { return stats_; }
  const VolumeOptions& options() const { return options_; }
  // The files' descriptors (page cache, never O_DIRECT), for reopening by
  // a transport that sends ReadExtents; valid until the volume closes.
  int cow_fd() const { return file_->cow_fd(); }
  int backing_fd() const { return file_->backing_fd(); }
  // True once an fdatasync failed in `deferred` durability: every write is
  // refused from then on. Any thread (for inline writes, which must not
  // write into such a volume before the engine refuses them).
  bool refuses_writes() const { return refuses_writes_.load(std::memory_order_acquire); }
  // Requests not completed yet, plus one while `deferred` durability still
  // has bits to write (for draining: a closed volume's bits are written).
  size_t requests_in_flight() const {
    return requests_in_flight_ + timer_ops_ +
           (commit_state_ != CommitState::kIdle || !dirty_.empty());
  }

 private:
  friend class VolumeIoSink;
  struct Op;
  struct Update;
  struct BlockWrite;
  struct Task;

  Volume(std::unique_ptr<cow::CowFile> file, IoBackend* io,
         const VolumeOptions& options, BatchEnds* batch_ends);

  // Reads.
  void StartRead(Op* op);
  bool ReadMustStall(const Op* op) const;
  void RetryStalledReads();
  // A LocateRead: fills its extents.
  void FillExtents(Op* op, const std::vector<cow::SectorRun>& runs);
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
  void SubmitFdatasync();
  // Sets the bits in memory; returns how many were clear.
  uint64_t SetBits(uint64_t first, uint64_t count);
  // A write of bitmap block `block` from `source` (memory or the shadow).
  BlockWrite* NewBlockWrite(uint64_t block, cow::Bitmap& source);
  void IssueBlockWrite(BlockWrite* bw);
  void OnSyncDone(int32_t result);

  // Deferred durability (see docs/design.md, "Deferred durability").
  void DeferredDataDone(Op* op);
  void AddFlushWaiter(Op* op, uint64_t need_seq);
  void CommitPump();
  void StartCommitRound();
  void OnCommitTimer(int32_t result);
  void OnCommitSyncDone(int32_t result);
  void OnCommitBlockDone(BlockWrite* bw, int32_t result);
  void Poison(const absl::Status& status);

  void SubmitTask(Task* t);
  void OnTaskDone(Task* t, int32_t result);
  void PieceDone(Op* op, absl::Status status);
  void Complete(Op* op, absl::Status status);

  std::unique_ptr<cow::CowFile> file_;
  IoBackend* io_;
  BatchEnds* const batch_ends_;  // may be null
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

  // Deferred durability. Sequence numbers count bit-setting writes in
  // acknowledgement order; a flush needs every one acknowledged before it
  // to be durable.
  struct Range {
    uint64_t first, count;
  };
  struct FlushWaiter {
    Op* op;
    uint64_t need_seq;
  };
  enum class CommitState { kIdle, kSyncing, kWritingBlocks };
  CommitState commit_state_ = CommitState::kIdle;
  std::unique_ptr<cow::Bitmap> shadow_;  // the bits the disk may hold
  std::vector<Range> dirty_;             // acknowledged, not yet captured
  std::vector<Range> captured_;          // covered by the fdatasync in flight
  uint64_t dirty_seq_ = 0;      // seq of the newest range in dirty_
  uint64_t captured_seq_ = 0;   // seq of the newest range in captured_
  uint64_t written_seq_ = 0;    // ranges up to here are in written blocks
  uint64_t sync_covers_ = 0;    // written_seq_ when the fdatasync started
  uint64_t durable_seq_ = 0;    // ranges up to here are durable
  std::vector<FlushWaiter> flush_waiters_;  // not yet under an fdatasync
  std::vector<FlushWaiter> in_sync_;        // under the fdatasync in flight
  std::set<uint64_t> retry_blocks_;         // block writes that failed
  int blocks_outstanding_ = 0;
  Task* timer_ = nullptr;  // the commit interval's kTimeout in flight
  size_t timer_ops_ = 0;   // kTimeout and kTimeoutRemove ops in flight
  bool closing_ = false;
  absl::Status round_error_;   // a block write of this round failed
  absl::Status poisoned_;      // an fdatasync failed: no more writes
  std::atomic<bool> refuses_writes_{false};  // !poisoned_.ok(), for other threads
};

// Routes completions to the volume that submitted the operation.
class VolumeIoSink : public IoSink {
 public:
  void OnIoComplete(uint64_t user_data, int32_t result) override;
};

}  // namespace cowblk::engine

#endif  // COWBLK_SERVER_ENGINE_VOLUME_H_
