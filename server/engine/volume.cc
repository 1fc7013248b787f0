#include "server/engine/volume.h"

#include <fcntl.h>
#include <unistd.h>

#include <algorithm>
#include <cstring>
#include <set>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "common/block_range.h"
#include "common/clock.h"
#include "common/file_io.h"
#include "common/sector.h"

namespace cowblk::engine {
namespace {

bool Overlaps(uint64_t a, uint64_t an, uint64_t b, uint64_t bn) {
  return a < b + bn && b < a + an;
}

}  // namespace

const char* DurabilityName(Durability d) {
  switch (d) {
    case Durability::kOrdered:
      return "ordered";
    case Durability::kUnordered:
      return "unordered";
    case Durability::kDeferred:
      return "deferred";
  }
  return "?";
}

bool ParseDurability(std::string_view name, Durability* out) {
  for (Durability d : {Durability::kOrdered, Durability::kUnordered, Durability::kDeferred}) {
    if (name == DurabilityName(d)) {
      *out = d;
      return true;
    }
  }
  return false;
}

// What an op waits for after its data stage.
enum class Stage { kData, kBarrier, kBitmap, kFinalSync };

struct Volume::Op {
  Request* req = nullptr;
  Stage stage = Stage::kData;
  int pieces = 0;  // data tasks not yet done
  absl::Status status;
  OpType type = OpType::kRead;  // req->op()
  bool fua = false;             // req->fua()
  char* buf = nullptr;  // the data of a Read or Write (or its bounce buffer)
  bool bounced = false;
  uint64_t stall_start_ns = 0;
  uint64_t start_ns = 0;  // for io_duration; 0 when not timed
  Update* update = nullptr;
};

// One request's change of bits. `outstanding` counts the block writes (or,
// for a rewrite that set no bits, the in-flight updates) it waits for.
struct Volume::Update {
  Op* op = nullptr;
  uint64_t first = 0, count = 0;               // sectors
  uint64_t first_block = 0, block_count = 0;   // bitmap blocks
  int outstanding = 0;
  bool waited = false;
  absl::Status status;
  std::vector<Update*> dependents;
};

struct Volume::Task {
  enum Kind { kData, kBlock, kSync, kTimer, kTimerRemove } kind = kData;
  Volume* volume = nullptr;
  Op* op = nullptr;
  BlockWrite* block = nullptr;
  bool from_cow = false;
  uint64_t done_bytes = 0;
  IoOp io;
};

struct Volume::BlockWrite {
  uint64_t block = 0;
  std::vector<Update*> updates;
  std::vector<unsigned char> before;  // ordered/unordered: bitmap bytes before this batch
  uint64_t bitmap_byte = 0;           // the block's first byte in the bitmap
  uint64_t length = 0;                // and its length
  Task task;
};

void VolumeIoSink::OnIoComplete(uint64_t user_data, int32_t result) {
  auto* task = reinterpret_cast<Volume::Task*>(user_data);
  task->volume->OnIoComplete(task, result);
}

absl::StatusOr<std::unique_ptr<Volume>> Volume::Create(
    std::unique_ptr<cow::CowFile> file, IoBackend* io,
    const VolumeOptions& options, BatchEnds* batch_ends) {
  if (!file->writable()) {
    return absl::FailedPreconditionError(
        absl::StrCat(file->path(), ": the engine needs a writable COW file"));
  }
  if (file->backing_fd() < 0) {
    return absl::FailedPreconditionError(
        absl::StrCat(file->path(), ": the engine needs the backing file"));
  }
  if (options.write_split_bytes % 4096 != 0) {
    return absl::InvalidArgumentError(absl::StrCat(
        "write split of ", options.write_split_bytes, " bytes: not a multiple of 4096"));
  }
  std::unique_ptr<Volume> v(new Volume(std::move(file), io, options, batch_ends));
  if (options.cache == CacheMode::kNone) {
    const cow::Geometry& g = v->file_->geometry();
    if (g.bitmap_offset % kSectorSize != 0 || g.data_offset % 4096 != 0) {
      return absl::InvalidArgumentError(absl::StrCat(
          v->file_->path(), ": --cache=none needs a v3 file with 4096-aligned data"));
    }
    v->direct_fd_ = open(v->file_->path().c_str(), O_RDWR | O_DIRECT | O_CLOEXEC);
    if (v->direct_fd_ < 0) {
      return ErrnoStatus(errno, absl::StrCat("open ", v->file_->path(), " O_DIRECT"));
    }
    v->data_fd_ = v->direct_fd_;
  }
  return v;
}

Volume::Volume(std::unique_ptr<cow::CowFile> file, IoBackend* io,
               const VolumeOptions& options, BatchEnds* batch_ends)
    : file_(std::move(file)),
      io_(io),
      batch_ends_(batch_ends),
      options_(options),
      data_fd_(file_->cow_fd()),
      data_offset_(file_->geometry().data_offset),
      bitmap_(file_->mutable_bitmap()) {
  stats_.allocated_sectors.Set(bitmap_.CountSet());
  if (options_.durability == Durability::kDeferred) {
    shadow_ = std::make_unique<cow::Bitmap>(bitmap_.sectors());
    memcpy(shadow_->data(), bitmap_.data(), bitmap_.size_bytes());
  }
}

Volume::~Volume() {
  if (direct_fd_ >= 0) close(direct_fd_);
}

absl::Status Volume::Validate(const Request& req) const {
  const bool page_cache = options_.cache == CacheMode::kWriteback;
  absl::Status missing = std::visit(
      [&](const auto& k) -> absl::Status {
        using K = std::decay_t<decltype(k)>;
        if constexpr (std::is_same_v<K, Read>) {
          if (k.into == nullptr) return absl::InvalidArgumentError("read: no data buffer");
        } else if constexpr (std::is_same_v<K, Write>) {
          if (k.from == nullptr) return absl::InvalidArgumentError("write: no data buffer");
        } else if constexpr (std::is_same_v<K, LocateRead>) {
          if (k.extents == nullptr) return absl::InvalidArgumentError("read: no extent list");
          if (!page_cache) return absl::FailedPreconditionError("read extents need --cache writeback");
        } else if constexpr (std::is_same_v<K, WrittenWrite>) {
          if (!page_cache) {
            return absl::FailedPreconditionError("written data needs --cache writeback");
          }
        }
        return absl::OkStatus();
      },
      req.kind);
  if (!missing.ok()) return missing;
  switch (req.op()) {
    case OpType::kFlush:
      return absl::OkStatus();
    case OpType::kRead:
    case OpType::kWrite:
      return CheckBlockRange(req.offset, req.length, size(), kTransferRules);
    case OpType::kTrim:
    case OpType::kWriteZeroes:
      return CheckBlockRange(req.offset, req.length, size(), kExtentRules);
  }
  return absl::OkStatus();
}

void Volume::Submit(Request* req) {
  Op* op = new Op;
  op->req = req;
  op->type = req->op();
  op->fua = req->fua();
  if (const auto* read = std::get_if<Read>(&req->kind)) {
    op->buf = read->into;
  } else if (const auto* write = std::get_if<Write>(&req->kind)) {
    // The I/O layer takes one pointer type for both directions; a write
    // only reads from it.
    op->buf = const_cast<char*>(write->from);
  }
  if (options_.latency_histograms) op->start_ns = MonotonicNs();
  ++requests_in_flight_;
  stats_.in_flight[static_cast<int>(op->type)].Add();
  if (absl::Status s = Validate(*req); !s.ok()) {
    Complete(op, s);
    return;
  }
  if (options_.durability == Durability::kDeferred && op->type != OpType::kRead) {
    if (!poisoned_.ok()) {
      Complete(op, poisoned_);
      return;
    }
    if (op->type == OpType::kFlush) {
      AddFlushWaiter(op, dirty_seq_);
      return;
    }
  }
  // O_DIRECT needs sector-aligned memory; callers' buffers rarely are.
  if (op->buf != nullptr && options_.cache == CacheMode::kNone &&
      reinterpret_cast<uintptr_t>(op->buf) % kSectorSize != 0) {
    void* p = nullptr;
    if (posix_memalign(&p, 4096, req->length) != 0) {
      Complete(op, absl::ResourceExhaustedError("no memory for a bounce buffer"));
      return;
    }
    if (op->type == OpType::kWrite) memcpy(p, op->buf, req->length);
    op->buf = static_cast<char*>(p);
    op->bounced = true;
  }
  switch (op->type) {
    case OpType::kRead:
      StartRead(op);
      break;
    case OpType::kWrite:
    case OpType::kTrim:
    case OpType::kWriteZeroes:
      StartWrite(op);
      break;
    case OpType::kFlush:
      op->stage = Stage::kFinalSync;
      RequestSync(op);
      break;
  }
}

// ---- Reads -------------------------------------------------------------

bool Volume::ReadMustStall(const Op* op) const {
  const uint64_t first = op->req->offset / kSectorSize;
  const uint64_t count = op->req->length / kSectorSize;
  for (const Update* u : in_flight_updates_) {
    if (Overlaps(first, count, u->first, u->count)) return true;
  }
  for (const Update* u : waiting_) {
    if (Overlaps(first, count, u->first, u->count)) return true;
  }
  return false;
}

void Volume::StartRead(Op* op) {
  if (ReadMustStall(op)) {
    if (op->stall_start_ns == 0) {
      op->stall_start_ns = MonotonicNs();
      stats_.read_stalls.Add();
      stats_.reads_stalled.Add();
    }
    stalled_reads_.push_back(op);
    return;
  }
  const uint64_t offset = op->req->offset;
  auto runs = cow::SplitRuns(bitmap_, offset / kSectorSize, op->req->length / kSectorSize);
  if (std::holds_alternative<LocateRead>(op->req->kind)) {
    FillExtents(op, runs);
    return;
  }
  op->pieces = static_cast<int>(runs.size());
  for (const cow::SectorRun& run : runs) {
    Task* t = new Task;
    t->kind = Task::kData;
    t->volume = this;
    t->op = op;
    t->from_cow = run.allocated;
    const uint64_t pos = run.first * kSectorSize;
    t->io.opcode = IoOpcode::kRead;
    t->io.fd = run.allocated ? data_fd_ : file_->backing_fd();
    t->io.offset = run.allocated ? data_offset_ + pos : pos;
    t->io.buf = op->buf + (pos - offset);
    t->io.len = run.count * kSectorSize;
    SubmitTask(t);
  }
}

void Volume::FillExtents(Op* op, const std::vector<cow::SectorRun>& runs) {
  std::vector<ReadExtent>& out = *std::get<LocateRead>(op->req->kind).extents;
  out.clear();
  out.reserve(runs.size());
  for (const cow::SectorRun& run : runs) {
    const uint64_t pos = run.first * kSectorSize;
    const uint64_t len = run.count * kSectorSize;
    ReadExtent e;
    e.source = run.allocated ? ReadExtent::Source::kCow : ReadExtent::Source::kBacking;
    e.offset = run.allocated ? data_offset_ + pos : pos;
    e.length = len;
    // Readahead now, so that sends from a cold page cache do not read one
    // range after another (it only starts the I/O).
    posix_fadvise(run.allocated ? data_fd_ : file_->backing_fd(), static_cast<off_t>(e.offset),
                  static_cast<off_t>(len), POSIX_FADV_WILLNEED);
    (run.allocated ? stats_.bytes_read_cow : stats_.bytes_read_backing).Add(len);
    out.push_back(e);
  }
  Complete(op, absl::OkStatus());
}

void Volume::RetryStalledReads() {
  for (size_t i = 0; i < stalled_reads_.size();) {
    Op* op = stalled_reads_[i];
    if (ReadMustStall(op)) {
      ++i;
      continue;
    }
    stalled_reads_.erase(stalled_reads_.begin() + static_cast<std::ptrdiff_t>(i));
    stats_.reads_stalled.Sub();
    const uint64_t stalled_ns = MonotonicNs() - op->stall_start_ns;
    stats_.read_stall_ns.Add(stalled_ns);
    stats_.read_stall.Record(stalled_ns);
    StartRead(op);
  }
}

// ---- Writes ------------------------------------------------------------

void Volume::StartWrite(Op* op) {
  if (const auto* written = std::get_if<WrittenWrite>(&op->req->kind)) {
    op->pieces = 0;
    if (written->write_errno != 0) {
      stats_.io_errors.Add();
      Complete(op, ErrnoStatus(written->write_errno,
                               absl::StrFormat("write %s at %u", file_->path(),
                                               data_offset_ + op->req->offset)));
      return;
    }
    OnDataDone(op);
    return;
  }
  const uint64_t start = data_offset_ + op->req->offset;
  const uint64_t end = start + op->req->length;
  // Pieces end at multiples of the split in the file, so the folios they
  // create are aligned; all are submitted before the first can complete
  // (completions come from Poll), and the data is done when all are.
  const uint64_t split = op->type == OpType::kWrite && options_.cache == CacheMode::kWriteback
                             ? options_.write_split_bytes
                             : 0;
  auto piece_end = [&](uint64_t at) { return WritePieceEnd(at, end, split); };
  op->pieces = 0;
  for (uint64_t at = start; at < end; at = piece_end(at)) ++op->pieces;
  for (uint64_t at = start; at < end; at = piece_end(at)) {
    const uint64_t len = piece_end(at) - at;
    Task* t = new Task;
    t->kind = Task::kData;
    t->volume = this;
    t->op = op;
    t->io.fd = data_fd_;
    t->io.offset = at;
    t->io.len = len;
    if (op->type == OpType::kWrite) {
      t->io.opcode = IoOpcode::kWrite;
      t->io.buf = op->buf + (at - start);
    } else {
      t->io.opcode = IoOpcode::kPunchHole;  // reads as zeros once the bits are set
    }
    SubmitTask(t);
  }
}

void Volume::OnDataDone(Op* op) {
  if (options_.durability == Durability::kDeferred) {
    DeferredDataDone(op);
    return;
  }
  const uint64_t first = op->req->offset / kSectorSize;
  const uint64_t count = op->req->length / kSectorSize;
  Update* u = new Update;
  u->op = op;
  u->first = first;
  u->count = count;
  op->update = u;
  if (bitmap_.AllSet(first, count)) {
    // A rewrite: no bitmap write, no barrier. It is readable once the
    // updates that set its bits (if still in flight) are on disk.
    op->stage = Stage::kBitmap;
    for (Update* on : in_flight_updates_) {
      if (Overlaps(first, count, on->first, on->count)) AddDependency(u, on);
    }
    if (u->outstanding == 0) FinishUpdate(u, absl::OkStatus());
    return;
  }
  const cow::Geometry& g = file_->geometry();
  const cow::BitmapBlockRange blocks =
      cow::BitmapBlocksFor(g.bitmap_offset, g.bitmap_block_size, first, count);
  u->first_block = blocks.first_block;
  u->block_count = blocks.count;
  if (options_.durability == Durability::kOrdered) {
    op->stage = Stage::kBarrier;
    RequestSync(op);
  } else {
    op->stage = Stage::kBitmap;
    EnqueueUpdate(u);
  }
}

void Volume::EnqueueUpdate(Update* u) {
  waiting_.push_back(u);
  Pump();
}

void Volume::AddDependency(Update* u, Update* on) {
  on->dependents.push_back(u);
  ++u->outstanding;
}

// Starts every waiting update that overlaps no bitmap write in flight and no
// earlier waiter, batching those that share a block into one write.
void Volume::Pump() {
  std::map<uint64_t, BlockWrite*> batch;
  std::set<uint64_t> blocked;  // blocks of earlier updates still waiting
  std::vector<Update*> done_now;
  for (auto it = waiting_.begin(); it != waiting_.end();) {
    Update* u = *it;
    bool conflict = false;
    for (uint64_t b = u->first_block; b < u->first_block + u->block_count; ++b) {
      if (pending_blocks_.count(b) != 0 || blocked.count(b) != 0) conflict = true;
    }
    if (conflict) {
      for (uint64_t b = u->first_block; b < u->first_block + u->block_count; ++b) {
        blocked.insert(b);
      }
      if (!u->waited) {
        u->waited = true;
        stats_.updates_waited.Add();
      }
      ++it;
      continue;
    }
    it = waiting_.erase(it);
    if (bitmap_.AllSet(u->first, u->count)) {
      // Another update set these bits meanwhile: depend on it instead.
      for (Update* on : in_flight_updates_) {
        if (Overlaps(u->first, u->count, on->first, on->count)) AddDependency(u, on);
      }
      if (u->outstanding == 0) done_now.push_back(u);
      continue;
    }
    for (uint64_t b = u->first_block; b < u->first_block + u->block_count; ++b) {
      BlockWrite*& bw = batch[b];
      if (bw == nullptr) {
        bw = NewBlockWrite(b, bitmap_);
        bw->before.assign(bitmap_.data() + bw->bitmap_byte,
                          bitmap_.data() + bw->bitmap_byte + bw->length);
      }
      bw->updates.push_back(u);
    }
    u->outstanding = static_cast<int>(u->block_count);
    SetBits(u->first, u->count);  // as late as possible: just before the write
    in_flight_updates_.push_back(u);
  }
  for (auto& [b, bw] : batch) {
    pending_blocks_[b] = bw;
    stats_.updates_coalesced.Add(bw->updates.size() - 1);
    IssueBlockWrite(bw);
  }
  stats_.updates_waiting.Set(waiting_.size());
  for (Update* u : done_now) FinishUpdate(u, absl::OkStatus());
}

void Volume::OnBlockWriteDone(BlockWrite* bw, int32_t result) {
  pending_blocks_.erase(bw->block);
  stats_.bitmap_writes_pending.Sub();
  absl::Status status;
  if (result < 0) {
    status = ErrnoStatus(-result, absl::StrCat(file_->path(), ": write bitmap block ",
                                               bw->block));
    stats_.bitmap_write_errors.Add();
    // Memory goes back to what the disk held before, so nothing reads from
    // the COW file through a bit that may not be on disk.
    uint64_t cleared = 0;
    for (size_t i = 0; i < bw->before.size(); ++i) {
      cleared += std::popcount(static_cast<unsigned>(bitmap_.data()[bw->bitmap_byte + i] &
                                                     ~bw->before[i]));
    }
    memcpy(bitmap_.data() + bw->bitmap_byte, bw->before.data(), bw->before.size());
    stats_.allocated_sectors.Sub(cleared);
  }
  std::vector<Update*> finished;
  for (Update* u : bw->updates) {
    if (!status.ok() && u->status.ok()) u->status = status;
    if (--u->outstanding == 0) finished.push_back(u);
  }
  delete bw;
  for (Update* u : finished) FinishUpdate(u, u->status);
  Pump();
}

void Volume::FinishUpdate(Update* u, absl::Status status) {
  auto it = std::find(in_flight_updates_.begin(), in_flight_updates_.end(), u);
  if (it != in_flight_updates_.end()) in_flight_updates_.erase(it);
  for (Update* d : u->dependents) {
    if (!status.ok() && d->status.ok()) d->status = status;
    if (--d->outstanding == 0) FinishUpdate(d, d->status);
  }
  Op* op = u->op;
  op->update = nullptr;
  delete u;
  RetryStalledReads();
  if (status.ok() && op->fua) {
    op->stage = Stage::kFinalSync;
    RequestSync(op);
    return;
  }
  Complete(op, status);
}

// ---- Group commit ------------------------------------------------------

void Volume::RequestSync(Op* op) {
  if (sync_in_flight_) {
    sync_next_.push_back(op);
    return;
  }
  sync_current_.push_back(op);
  StartSync();
}

void Volume::StartSync() {
  sync_in_flight_ = true;
  SubmitFdatasync();
}

void Volume::SubmitFdatasync() {
  stats_.fsyncs.Add();
  Task* t = new Task;
  t->kind = Task::kSync;
  t->volume = this;
  t->io.opcode = IoOpcode::kFdatasync;
  t->io.fd = data_fd_;
  SubmitTask(t);
}

uint64_t Volume::SetBits(uint64_t first, uint64_t count) {
  uint64_t newly = 0;
  for (uint64_t s = first; s < first + count;) {
    const uint64_t n = bitmap_.RunLength(s, first + count - s);
    if (!bitmap_.Test(s)) newly += n;
    s += n;
  }
  bitmap_.SetRange(first, count);
  stats_.allocated_sectors.Add(newly);
  return newly;
}

Volume::BlockWrite* Volume::NewBlockWrite(uint64_t block, cow::Bitmap& source) {
  const cow::Geometry& g = file_->geometry();
  const cow::BitmapWrite w =
      cow::BitmapWriteFor(g.bitmap_offset, g.bitmap_bytes, g.bitmap_block_size, block);
  auto* bw = new BlockWrite;
  bw->block = block;
  bw->bitmap_byte = w.bitmap_byte;
  bw->length = w.length;
  bw->task.kind = Task::kBlock;
  bw->task.volume = this;
  bw->task.block = bw;
  bw->task.io.opcode = IoOpcode::kWrite;
  bw->task.io.fd = data_fd_;
  bw->task.io.offset = w.file_offset;
  bw->task.io.buf = source.data() + w.bitmap_byte;
  // O_DIRECT writes whole sectors (the padding after the bitmap is free).
  bw->task.io.len = options_.cache == CacheMode::kNone
                        ? (w.length + kSectorSize - 1) / kSectorSize * kSectorSize
                        : w.length;
  return bw;
}

void Volume::IssueBlockWrite(BlockWrite* bw) {
  stats_.bitmap_writes.Add();
  stats_.bitmap_writes_pending.Add();
  if (options_.hold_bitmap_write) {
    options_.hold_bitmap_write([this, t = &bw->task] { SubmitTask(t); });
  } else {
    SubmitTask(&bw->task);
  }
}

void Volume::OnSyncDone(int32_t result) {
  absl::Status status =
      result < 0 ? ErrnoStatus(-result, absl::StrCat("fdatasync ", file_->path()))
                 : absl::OkStatus();
  std::vector<Op*> done;
  done.swap(sync_current_);
  sync_in_flight_ = false;
  if (!sync_next_.empty()) {
    sync_current_.swap(sync_next_);
    StartSync();
  }
  // Sort before Pump: it may complete (and free) ops whose bits are set.
  std::vector<Op*> complete;
  bool barrier_passed = false;
  for (Op* op : done) {
    if (op->stage == Stage::kBarrier && status.ok()) {
      op->stage = Stage::kBitmap;
      waiting_.push_back(op->update);
      barrier_passed = true;
    } else {
      if (op->stage == Stage::kBarrier) {  // the barrier failed
        delete op->update;
        op->update = nullptr;
      }
      complete.push_back(op);
    }
  }
  if (barrier_passed) Pump();
  for (Op* op : complete) Complete(op, status);
}

// ---- Deferred durability -----------------------------------------------
//
// A write's bits are set in memory as soon as its data is written, and the
// write is acknowledged: it is readable. The bits reach the disk through one
// commit loop per volume, one step in flight at a time:
//   1. capture the acknowledged ranges and issue an fdatasync: it covers
//      their data (and every bitmap block written before it);
//   2. when it completes, set the captured bits in the shadow bitmap (the
//      bits the disk may hold: only ever bits whose data is durable) and
//      write the bitmap blocks they touch from the shadow, which nothing
//      changes while those writes are in flight;
//   3. when they complete, go again if more ranges or flushes wait.
// A flush (or a FUA write) waits until every range acknowledged before it
// was written in step 2 and an fdatasync issued after that completed.
// An fdatasync error stops all writes: the data it covered may be lost, so
// no bit may ever expose it (see docs/design.md, "Deferred durability").

void Volume::DeferredDataDone(Op* op) {
  if (!poisoned_.ok()) {  // the data may be written, but no bit exposes it
    Complete(op, poisoned_);
    return;
  }
  const uint64_t first = op->req->offset / kSectorSize;
  const uint64_t count = op->req->length / kSectorSize;
  if (!bitmap_.AllSet(first, count)) {
    SetBits(first, count);
    dirty_.push_back({first, count});
    ++dirty_seq_;
    stats_.updates_uncommitted.Set(dirty_.size() + captured_.size());
  }
  if (op->fua) {
    AddFlushWaiter(op, dirty_seq_);
    return;
  }
  CommitPump();
  Complete(op, absl::OkStatus());
}

void Volume::AddFlushWaiter(Op* op, uint64_t need_seq) {
  flush_waiters_.push_back({op, need_seq});
  CommitPump();
}

void Volume::CommitPump() {
  if (commit_state_ != CommitState::kIdle || !poisoned_.ok()) return;
  if (flush_waiters_.empty()) {
    if (dirty_.empty()) return;
    if (options_.commit_interval_ms > 0 && !closing_) {
      // No flush is waiting: let more bits gather, up to the interval.
      if (timer_ == nullptr) {
        timer_ = new Task;
        timer_->kind = Task::kTimer;
        timer_->volume = this;
        timer_->io.opcode = IoOpcode::kTimeout;
        timer_->io.len = uint64_t{options_.commit_interval_ms} * 1000000;
        ++timer_ops_;
        SubmitTask(timer_);
      }
      return;
    }
  }
  StartCommitRound();
}

void Volume::OnCommitTimer(int32_t result) {
  timer_ = nullptr;
  --timer_ops_;
  if (result == -ECANCELED) {  // BeginClose: it commits without the timer
    CommitPump();
    return;
  }
  // The interval passed: commit what gathered (unless a round is running:
  // the pump re-arms the timer when it ends).
  if (commit_state_ != CommitState::kIdle || !poisoned_.ok()) return;
  if (!dirty_.empty() || !flush_waiters_.empty()) StartCommitRound();
}

void Volume::BeginClose() {
  closing_ = true;
  if (timer_ != nullptr) {
    Task* t = new Task;
    t->kind = Task::kTimerRemove;
    t->volume = this;
    t->io.opcode = IoOpcode::kTimeoutRemove;
    t->io.offset = reinterpret_cast<uint64_t>(timer_);
    ++timer_ops_;
    SubmitTask(t);
  }
  CommitPump();
}

void Volume::StartCommitRound() {
  captured_.swap(dirty_);
  captured_seq_ = dirty_seq_;
  sync_covers_ = written_seq_;
  in_sync_.swap(flush_waiters_);
  commit_state_ = CommitState::kSyncing;
  SubmitFdatasync();
}

void Volume::OnCommitSyncDone(int32_t result) {
  if (result < 0) {
    Poison(ErrnoStatus(-result, absl::StrCat("fdatasync ", file_->path(),
                                             " (the volume takes no more writes until "
                                             "it is opened again)")));
    return;
  }
  durable_seq_ = std::max(durable_seq_, sync_covers_);
  std::vector<Op*> done;
  for (const FlushWaiter& w : in_sync_) {
    if (w.need_seq <= durable_seq_) {
      done.push_back(w.op);
    } else {
      flush_waiters_.push_back(w);  // its bits are not written yet: next round
    }
  }
  in_sync_.clear();
  // The captured data is durable now: its bits may reach the disk.
  const cow::Geometry& g = file_->geometry();
  std::set<uint64_t> blocks;
  blocks.swap(retry_blocks_);
  uint64_t touched = 0;
  for (const Range& r : captured_) {
    shadow_->SetRange(r.first, r.count);
    const cow::BitmapBlockRange br =
        cow::BitmapBlocksFor(g.bitmap_offset, g.bitmap_block_size, r.first, r.count);
    for (uint64_t b = br.first_block; b < br.first_block + br.count; ++b) blocks.insert(b);
    touched += br.count;
  }
  if (touched > blocks.size()) stats_.updates_coalesced.Add(touched - blocks.size());
  if (blocks.empty()) {
    written_seq_ = captured_seq_;
    commit_state_ = CommitState::kIdle;
  } else {
    commit_state_ = CommitState::kWritingBlocks;
    blocks_outstanding_ = static_cast<int>(blocks.size());
    round_error_ = absl::OkStatus();
    for (uint64_t b : blocks) IssueBlockWrite(NewBlockWrite(b, *shadow_));
  }
  for (Op* op : done) Complete(op, absl::OkStatus());
  CommitPump();
}

void Volume::OnCommitBlockDone(BlockWrite* bw, int32_t result) {
  stats_.bitmap_writes_pending.Sub();
  if (result < 0) {
    // What the disk holds of this block is some mix of the old bytes and
    // the shadow's: bits of durable data either way. Write it again with
    // the next round; flushes that need it fail meanwhile.
    stats_.bitmap_write_errors.Add();
    retry_blocks_.insert(bw->block);
    if (round_error_.ok()) {
      round_error_ = ErrnoStatus(-result, absl::StrCat(file_->path(), ": write bitmap block ",
                                                       bw->block));
    }
  }
  delete bw;
  if (--blocks_outstanding_ > 0) return;
  commit_state_ = CommitState::kIdle;
  captured_.clear();
  stats_.updates_uncommitted.Set(dirty_.size());
  std::vector<Op*> failed;
  const absl::Status error = round_error_;
  if (error.ok()) {
    written_seq_ = captured_seq_;
  } else {
    std::erase_if(flush_waiters_, [&](const FlushWaiter& w) {
      if (w.need_seq <= written_seq_) return false;
      failed.push_back(w.op);
      return true;
    });
  }
  CommitPump();
  for (Op* op : failed) Complete(op, error);
}

void Volume::Poison(const absl::Status& status) {
  poisoned_ = status;
  refuses_writes_.store(true, std::memory_order_release);
  commit_state_ = CommitState::kIdle;
  std::vector<Op*> failed;
  for (const FlushWaiter& w : in_sync_) failed.push_back(w.op);
  for (const FlushWaiter& w : flush_waiters_) failed.push_back(w.op);
  in_sync_.clear();
  flush_waiters_.clear();
  dirty_.clear();
  captured_.clear();
  stats_.updates_uncommitted.Set(0);
  for (Op* op : failed) Complete(op, status);
}

// ---- Tasks -------------------------------------------------------------

void Volume::SubmitTask(Task* t) {
  t->io.user_data = reinterpret_cast<uint64_t>(t);
  IoOp op = t->io;
  op.buf = static_cast<char*>(t->io.buf) + t->done_bytes;
  op.offset = t->io.offset + t->done_bytes;
  if (op.opcode == IoOpcode::kRead || op.opcode == IoOpcode::kWrite) {
    op.len = t->io.len - t->done_bytes;
  }
  io_->Submit(op);
}

void Volume::OnIoComplete(void* task, int32_t result) {
  Task* t = static_cast<Task*>(task);
  const IoOpcode opcode = t->io.opcode;
  // Continue short transfers; a read that hits end of file reads zeros.
  if ((opcode == IoOpcode::kRead || opcode == IoOpcode::kWrite) && result >= 0) {
    const uint64_t want = t->io.len - t->done_bytes;
    if (static_cast<uint64_t>(result) < want) {
      if (result == 0 && opcode == IoOpcode::kRead) {
        memset(static_cast<char*>(t->io.buf) + t->done_bytes, 0, want);
      } else if (result == 0) {
        result = -ENOSPC;  // a write that makes no progress cannot continue
      } else {
        t->done_bytes += static_cast<uint64_t>(result);
        SubmitTask(t);
        return;
      }
    }
  }
  if (result < 0 && t->kind != Task::kTimer && t->kind != Task::kTimerRemove) {
    stats_.io_errors.Add();
  }
  switch (t->kind) {
    case Task::kBlock:  // the task lives in the BlockWrite
      if (options_.durability == Durability::kDeferred) {
        OnCommitBlockDone(t->block, result);
      } else {
        OnBlockWriteDone(t->block, result);
      }
      return;
    case Task::kTimer:
      delete t;
      OnCommitTimer(result);
      return;
    case Task::kTimerRemove:
      delete t;
      --timer_ops_;
      return;
    case Task::kSync:
      delete t;
      if (options_.durability == Durability::kDeferred) {
        OnCommitSyncDone(result);
      } else {
        OnSyncDone(result);
      }
      return;
    case Task::kData:
      break;
  }
  Op* op = t->op;
  absl::Status status;
  if (result < 0) {
    status = ErrnoStatus(-result, absl::StrFormat("%s %s at %u", IoOpcodeName(opcode),
                                                  file_->path(), t->io.offset));
  } else if (opcode == IoOpcode::kRead) {
    (t->from_cow ? stats_.bytes_read_cow : stats_.bytes_read_backing).Add(t->io.len);
  }
  delete t;
  PieceDone(op, status);
}

void Volume::PieceDone(Op* op, absl::Status status) {
  if (!status.ok() && op->status.ok()) op->status = status;
  if (--op->pieces > 0) return;
  if (op->type == OpType::kRead || !op->status.ok()) {
    Complete(op, op->status);
    return;
  }
  OnDataDone(op);
}

void Volume::Complete(Op* op, absl::Status status) {
  Request* req = op->req;
  const int type = static_cast<int>(op->type);
  if (op->bounced) {
    if (status.ok() && op->type == OpType::kRead) {
      memcpy(std::get<Read>(req->kind).into, op->buf, req->length);
    }
    free(op->buf);
  }
  stats_.in_flight[type].Sub();
  if (op->start_ns != 0) stats_.io_duration[type].Record(MonotonicNs() - op->start_ns);
  stats_.ops[type].Add();
  if (status.ok()) {
    stats_.bytes[type].Add(req->length);
  } else {
    stats_.ops_failed[type].Add();
  }
  --requests_in_flight_;
  delete op;
  // `done` may free the request.
  BatchEndListener* const batch_end = req->batch_end;
  auto done = std::move(req->done);
  done(std::move(status));
  if (batch_end == nullptr) return;
  if (batch_ends_ != nullptr) {
    batch_ends_->Add(batch_end);
  } else {
    batch_end->OnBatchEnd();  // no engine around this volume: no batches
  }
}

}  // namespace cowblk::engine
