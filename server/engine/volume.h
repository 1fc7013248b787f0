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
// The implementation, one concept a file: volume.cc (creation, Submit,
// tasks and completion), volume_read.cc (reads and stalls), volume_write.cc
// (a write's data, then its bitmap update), group_commit.cc (the shared
// fdatasync), deferred_commit.h (`deferred` durability's commit loop);
// volume_internal.h holds the records of work in flight and says who owns
// each.
//
// Thread-safety: none. Everything runs on the owning engine thread: Submit,
// and completions delivered through VolumeIoSink. Stats may be read from any
// thread.

#ifndef COWBLK_SERVER_ENGINE_VOLUME_H_
#define COWBLK_SERVER_ENGINE_VOLUME_H_

#include <algorithm>
#include <cstdint>
#include <deque>
#include <list>
#include <map>
#include <memory>
#include <string_view>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "server/cow/cow_file.h"
#include "server/engine/batch_end.h"
#include "server/engine/io.h"
#include "server/engine/request.h"
#include "server/engine/snapshot.h"
#include "server/engine/volume_internal.h"
#include "server/engine/volume_stats.h"

namespace cowblk::engine {

class DeferredCommit;

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
};

// Where a piece of a page-cache write that starts at file offset `at` ends,
// for a write that ends at `end` and is handed to the kernel in pieces
// ending at multiples of `split` (VolumeOptions::write_split_bytes; 0:
// whole).
inline uint64_t WritePieceEnd(uint64_t at, uint64_t end, uint64_t split) {
  return split == 0 ? end : std::min(end, (at / split + 1) * split);
}

class Volume {
  // Only Create constructs a Volume: the constructor is public for
  // std::make_unique, and callable only with this private key.
  struct Passkey {
    explicit Passkey() = default;
  };

 public:
  // Takes over an open, writable CowFile. Fails when the options do not fit
  // the file (O_DIRECT on a layout whose bitmap is not block-aligned).
  // `batch_ends`: where the listeners of completed requests
  // (Request::batch_end) are queued for the engine to call at the end of
  // its batch; null (no engine: tests) calls them right after `done`.
  // Every operation goes to `io`, which must outlive the volume.
  static absl::StatusOr<std::unique_ptr<Volume>> Create(
      std::unique_ptr<cow::CowFile> file, IoBackend* io,
      const VolumeOptions& options, BatchEnds* batch_ends = nullptr);
  Volume(Passkey, std::unique_ptr<cow::CowFile> file, IoBackend* io,
         const VolumeOptions& options, BatchEnds* batch_ends);
  // REQUIRES: requests_in_flight() == 0 (the backend holds no operation of
  // this volume).
  ~Volume();

  Volume(const Volume&) = delete;
  Volume& operator=(const Volume&) = delete;

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
  // waiting for the commit interval, and cancel its timer; end a snapshot
  // (its copier gets FailedPrecondition from then on).
  void BeginClose();

  // A point-in-time snapshot for a copier (snapshot.h says what is held and
  // for how long). `taken` runs on this thread once: OK at the snapshot's
  // moment, or the error that ended it first. One at a time:
  // FailedPrecondition while another is open.
  absl::Status BeginSnapshot(std::function<void(absl::Status)> taken);
  // Marks chunk `*copied` copied (when not null) and claims the next one
  // into `out`: true, or false once every chunk was claimed.
  // FailedPrecondition when no snapshot is open.
  absl::StatusOr<bool> NextSnapshotChunk(const uint64_t* copied, SnapshotChunk* out);
  // Ends the snapshot (the copier finished or gave up) and starts the
  // writes it held; nothing when none is open.
  SnapshotStats EndSnapshot();

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
  bool refuses_writes() const;
  // Requests not completed yet, plus one while `deferred` durability still
  // has bits to write or its timer runs (for draining: a closed volume's
  // bits are written).
  size_t requests_in_flight() const;

 private:
  friend class VolumeIoSink;    // delivers completions (OnIoComplete)
  friend class DeferredCommit;  // completes ops, sets bits, issues I/O
  friend class Snapshot;        // holds writes, starts them, reads the bits
  using Op = internal::Op;
  using Task = internal::Task;
  using Update = internal::Update;
  using BlockWrite = internal::BlockWrite;
  using Stage = internal::Stage;

  // volume.cc: requests, their tasks and their completion.
  Op* NewOp();                       // from the free list, into ops_
  void SubmitTask(Task* t);          // (again, for the rest of a short transfer)
  void OnIoComplete(Task* t, int32_t result);
  void PieceDone(Op* op, absl::Status status);
  void SubmitFdatasync();            // counts it; at most one in flight
  void Complete(Op* op, absl::Status status);  // ends the op, then calls done

  // volume_read.cc: reads, and the reads that stall.
  void StartRead(Op* op);
  bool ReadMustStall(const Op* op) const;
  void RetryStalledReads();
  void FillExtents(Op* op, const std::vector<cow::SectorRun>& runs);  // LocateRead

  // volume_write.cc: a write's (trim's, write-zeroes') data, then its
  // bitmap update (`ordered`/`unordered`; DeferredCommit in `deferred`).
  void StartWrite(Op* op);
  // Whether [offset, offset + length) reads as zeros with nothing written:
  // no bit set, and a hole of the backing file (or past its end).
  bool ReadsAsZeros(uint64_t offset, uint64_t length) const;
  void OnDataDone(Op* op);
  void EnqueueUpdate(Update* u);
  void Pump();
  void OnBlockWriteDone(BlockWrite* bw, int32_t result);
  void FinishUpdate(Update* u, absl::Status status);
  void AddDependency(Update* u, Update* on);
  // Sets the bits in memory; returns how many were clear.
  uint64_t SetBits(uint64_t first, uint64_t count);
  // Makes `bw` the write of bitmap block `block` from `source` (memory or
  // the shadow); IssueBlockWrite counts and submits it.
  void PrepareBlockWrite(BlockWrite* bw, uint64_t block, cow::Bitmap& source);
  void IssueBlockWrite(BlockWrite* bw);

  // group_commit.cc: `op` continues after an fdatasync issued after this
  // call (a barrier, a FLUSH, a FUA write's final sync).
  void RequestSync(Op* op);
  void OnSyncDone(int32_t result);

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
  size_t changes_in_flight_ = 0;  // writes, trims and write-zeroes among them
  std::list<Op> ops_;       // requests in flight (each Op knows its node)
  std::list<Op> free_ops_;  // recycled, as many as were ever in flight
  Task sync_task_;          // the fdatasync (group commit or deferred round)
  int64_t sync_start_ns_ = 0;  // its submission (latency_histograms), or 0

  // Bitmap updates (`ordered`/`unordered`; docs/design.md, "Engine").
  std::deque<Update*> waiting_;                    // FIFO
  std::vector<Update*> in_flight_updates_;         // bits set, block writes issued
  std::map<uint64_t, BlockWrite> pending_blocks_;  // block -> its write in flight
  std::deque<Op*> stalled_reads_;                  // FIFO

  // Group commit: one fdatasync in flight; ops that need one while it runs
  // share the next.
  bool sync_in_flight_ = false;
  std::vector<Op*> sync_current_;  // waiting for the fdatasync in flight
  std::vector<Op*> sync_next_;     // need one issued after they arrived

  // `deferred` durability only (null otherwise).
  std::unique_ptr<DeferredCommit> deferred_;
  // While a copier reads a snapshot (null otherwise).
  std::unique_ptr<Snapshot> snapshot_;
};

// Routes completions to the volume that submitted the operation.
class VolumeIoSink : public IoSink {
 public:
  void OnIoComplete(uint64_t user_data, int32_t result) override;
};

}  // namespace cowblk::engine

#endif  // COWBLK_SERVER_ENGINE_VOLUME_H_
