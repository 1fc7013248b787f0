// Volume: creation, Submit (which starts each kind of request), the tasks
// that carry its I/O and their completions, and the end of every request.
// Invariant 7 (a request is one unit) is kept here: a request's tasks are
// counted (Op::pieces), short transfers are continued, the first error
// fails the request, and Complete runs once per request. Reads, writes,
// group commit and deferred commit live in the files volume.h names.

#include "server/engine/volume.h"

#include <fcntl.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "common/block_range.h"
#include "common/clock.h"
#include "common/file_io.h"
#include "common/sector.h"
#include "server/engine/deferred_commit.h"

namespace cowblk::engine {
namespace {

// An op that once needed more tasks than this gives their memory back
// when it is recycled (a read of many short runs is rare).
constexpr size_t kKeptTasks = 64;

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

void internal::Op::Reset() {
  std::vector<Task> keep;
  if (tasks.capacity() <= kKeptTasks) keep.swap(tasks);
  keep.clear();
  *this = Op();
  tasks.swap(keep);
}

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
  auto v = std::make_unique<Volume>(Passkey(), std::move(file), io, options, batch_ends);
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

Volume::Volume(Passkey, std::unique_ptr<cow::CowFile> file, IoBackend* io,
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
    deferred_ = std::make_unique<DeferredCommit>(this, options_.commit_interval_ms);
  }
}

Volume::~Volume() {
  if (direct_fd_ >= 0) close(direct_fd_);
}

bool Volume::refuses_writes() const {
  return deferred_ != nullptr && deferred_->refuses_writes();
}

size_t Volume::requests_in_flight() const {
  return requests_in_flight_ + (deferred_ != nullptr ? deferred_->busy() : 0);
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
  Op* op = NewOp();
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
  if (req->changes_data()) ++changes_in_flight_;
  stats_.in_flight[static_cast<int>(op->type)].Add();
  if (absl::Status s = Validate(*req); !s.ok()) {
    Complete(op, s);
    return;
  }
  if (deferred_ != nullptr && op->type != OpType::kRead) {
    if (!deferred_->poisoned().ok()) {
      Complete(op, deferred_->poisoned());
      return;
    }
    if (op->type == OpType::kFlush) {
      deferred_->Flush(op);
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
    op->bounce.reset(static_cast<char*>(p));
    if (op->type == OpType::kWrite) memcpy(p, op->buf, req->length);
    op->buf = op->bounce.get();
  }
  switch (op->type) {
    case OpType::kRead:
      StartRead(op);
      break;
    case OpType::kWrite:
    case OpType::kTrim:
    case OpType::kWriteZeroes:
      if (snapshot_ == nullptr || snapshot_->Admit(op)) StartWrite(op);
      break;
    case OpType::kFlush:
      op->stage = Stage::kFinalSync;
      RequestSync(op);
      break;
  }
}

void Volume::BeginClose() {
  if (deferred_ != nullptr) deferred_->BeginClose();
  if (snapshot_ != nullptr) {
    auto snapshot = std::move(snapshot_);
    snapshot->End(absl::FailedPreconditionError("the volume closed during its snapshot"));
  }
}

absl::Status Volume::BeginSnapshot(std::function<void(absl::Status)> taken) {
  if (snapshot_ != nullptr) {
    return absl::FailedPreconditionError("another snapshot of the volume is being copied");
  }
  snapshot_ = std::make_unique<Snapshot>(this, std::move(taken));
  return absl::OkStatus();
}

absl::StatusOr<bool> Volume::NextSnapshotChunk(const uint64_t* copied, SnapshotChunk* out) {
  if (snapshot_ == nullptr) {
    return absl::FailedPreconditionError("the volume's snapshot ended");
  }
  return snapshot_->Next(copied, out);
}

SnapshotStats Volume::EndSnapshot() {
  if (snapshot_ == nullptr) return {};
  // Out of snapshot_ first: the writes it starts may complete at once.
  auto snapshot = std::move(snapshot_);
  return snapshot->End(absl::FailedPreconditionError("the snapshot was ended"));
}

Volume::Op* Volume::NewOp() {
  if (free_ops_.empty()) free_ops_.emplace_front();
  ops_.splice(ops_.end(), free_ops_, free_ops_.begin());
  Op* op = &ops_.back();
  op->self = std::prev(ops_.end());
  return op;
}

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

void Volume::SubmitFdatasync() {
  stats_.fsyncs.Add();
  if (options_.latency_histograms) sync_start_ns_ = MonotonicNs();
  sync_task_.volume = this;
  sync_task_.io.purpose = IoPurpose::kSync;
  sync_task_.io.opcode = IoOpcode::kFdatasync;
  sync_task_.io.fd = data_fd_;
  SubmitTask(&sync_task_);
}

void Volume::OnIoComplete(Task* t, int32_t result) {
  if (t->io.opcode == IoOpcode::kZeroRange && result == -EOPNOTSUPP) {
    // A file system without ZERO_RANGE (tmpfs): the range still reads as
    // zeros through a punched hole, unprovisioned.
    t->io.opcode = IoOpcode::kPunchHole;
    SubmitTask(t);
    return;
  }
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
  if (result < 0 && t->io.purpose != IoPurpose::kTimer) stats_.io_errors.Add();
  switch (t->io.purpose) {
    case IoPurpose::kBitmap:
      if (deferred_ != nullptr) {
        deferred_->OnBlockWriteDone(t->block, result);
      } else {
        OnBlockWriteDone(t->block, result);
      }
      return;
    case IoPurpose::kTimer:
      deferred_->OnTimerDone(t, result);
      return;
    case IoPurpose::kSync:
      if (sync_start_ns_ != 0) {
        stats_.fdatasync_duration.Record(static_cast<uint64_t>(MonotonicNs() - sync_start_ns_));
        sync_start_ns_ = 0;
      }
      if (deferred_ != nullptr) {
        deferred_->OnSyncDone(result);
      } else {
        OnSyncDone(result);
      }
      return;
    case IoPurpose::kData:
      break;
  }
  absl::Status status;
  if (result < 0) {
    status = ErrnoStatus(-result, absl::StrFormat("%s %s at %u", IoOpcodeName(opcode),
                                                  file_->path(), t->io.offset));
  } else if (opcode == IoOpcode::kRead) {
    (t->from_cow ? stats_.bytes_read_cow : stats_.bytes_read_backing).Add(t->io.len);
  }
  PieceDone(t->op, status);
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
  const bool change = req->changes_data();
  if (op->bounce != nullptr && status.ok() && op->type == OpType::kRead) {
    memcpy(std::get<Read>(req->kind).into, op->buf, req->length);
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
  if (change) --changes_in_flight_;
  // Back to the free list before `done`, which may submit the next request.
  const auto node = op->self;
  op->Reset();
  free_ops_.splice(free_ops_.begin(), ops_, node);
  // `done` may free the request.
  BatchEndListener* const batch_end = req->batch_end;
  auto done = std::move(req->done);
  done(std::move(status));
  if (change && snapshot_ != nullptr) snapshot_->OnChangeDone();
  if (batch_end == nullptr) return;
  if (batch_ends_ != nullptr) {
    batch_ends_->Add(batch_end);
  } else {
    batch_end->OnBatchEnd();  // no engine around this volume: no batches
  }
}

}  // namespace cowblk::engine
