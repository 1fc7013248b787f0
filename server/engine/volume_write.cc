// Writes, trims and write-zeroes: the data stage (written pieces or a
// punched hole), then, in `ordered` and `unordered` durability, the bitmap
// update (`deferred` hands the written data to DeferredCommit instead).
//
// A write's stages (docs/design.md, "Engine"): its data; then, when some bit
// in its range is clear, an Update: in `ordered` mode after a group-
// committed fdatasync (group_commit.cc), it joins the FIFO waiting list;
// Pump starts every waiter that overlaps no block write in flight and no
// block of an earlier waiter, and batches them by block (coalescing); bits
// change in memory at that moment, just before the block is written from
// the in-memory bitmap. Invariants kept here: 1 (bits set as late as
// possible, after the data), 3 (a block never changes while its write is
// in flight; waiters retried FIFO), 5 (acknowledged once the block is
// written, or restored and failed if that write fails), 6 (a rewrite needs
// no bitmap write, only the updates that set its bits) and 8 (trim and
// write-zeroes punch a hole, then set the bits).

#include <unistd.h>

#include <bit>
#include <cerrno>
#include <cstring>
#include <set>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "common/file_io.h"
#include "common/sector.h"
#include "server/engine/deferred_commit.h"
#include "server/engine/volume.h"

namespace cowblk::engine {

using internal::RangesOverlap;

bool Volume::ReadsAsZeros(uint64_t offset, uint64_t length) const {
  const uint64_t count = length / kSectorSize;
  const std::vector<cow::SectorRun> runs =
      cow::SplitRuns(bitmap_, offset / kSectorSize, count, 1);
  if (runs.empty() || runs[0].allocated || runs[0].count != count) return false;
  if (backing_fd() < 0) return true;
  // No data from `offset` to the end of the range (ENXIO: none up to the
  // backing file's end, and past it reads are zeros). The backing file
  // never changes while the volume is open.
  const off_t data = lseek(backing_fd(), static_cast<off_t>(offset), SEEK_DATA);
  if (data < 0) return errno == ENXIO;
  return static_cast<uint64_t>(data) >= offset + length;
}

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
  const auto* zeroes = std::get_if<WriteZeroes>(&op->req->kind);
  const bool no_hole = zeroes != nullptr && zeroes->no_hole;
  if (op->type != OpType::kWrite && !no_hole && ReadsAsZeros(op->req->offset, op->req->length)) {
    // A trim or a write-zeroes over sectors none of which is written, where
    // the backing file has a hole (always, on a blank volume): they read as
    // zeros already. Nothing is punched, no bit set, no bitmap block
    // written: zeroing never-written space allocates nothing. (Bits are set
    // in memory before a write is acknowledged, so a write answered before
    // this request arrived is seen here; one still in flight is concurrent
    // with it, either order being the protocols' answer.)
    Complete(op, absl::OkStatus());
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
  op->tasks.resize(static_cast<size_t>(op->pieces));
  Task* t = op->tasks.data();
  for (uint64_t at = start; at < end; at = piece_end(at)) {
    const uint64_t len = piece_end(at) - at;
    t->volume = this;
    t->op = op;
    t->io.fd = data_fd_;
    t->io.offset = at;
    t->io.len = len;
    if (op->type == OpType::kWrite) {
      t->io.opcode = IoOpcode::kWrite;
      t->io.buf = op->buf + (at - start);
    } else {
      // Reads as zeros once the bits are set; NO_HOLE keeps it allocated.
      t->io.opcode = no_hole ? IoOpcode::kZeroRange : IoOpcode::kPunchHole;
    }
    SubmitTask(t++);
  }
}

void Volume::OnDataDone(Op* op) {
  if (deferred_ != nullptr) {
    deferred_->DataDone(op);
    return;
  }
  const uint64_t first = op->req->offset / kSectorSize;
  const uint64_t count = op->req->length / kSectorSize;
  Update* u = &op->update.emplace();
  u->op = op;
  u->first = first;
  u->count = count;
  if (bitmap_.AllSet(first, count)) {
    // A rewrite: no bitmap write, no barrier. It is readable once the
    // updates that set its bits (if still in flight) are on disk.
    op->stage = Stage::kBitmap;
    for (Update* on : in_flight_updates_) {
      if (RangesOverlap(first, count, on->first, on->count)) AddDependency(u, on);
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
  std::map<uint64_t, BlockWrite> batch;
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
        if (RangesOverlap(u->first, u->count, on->first, on->count)) AddDependency(u, on);
      }
      if (u->outstanding == 0) done_now.push_back(u);
      continue;
    }
    for (uint64_t b = u->first_block; b < u->first_block + u->block_count; ++b) {
      auto [slot, added] = batch.try_emplace(b);
      BlockWrite& bw = slot->second;
      if (added) {
        PrepareBlockWrite(&bw, b, bitmap_);
        bw.before.assign(bitmap_.data() + bw.bitmap_byte,
                         bitmap_.data() + bw.bitmap_byte + bw.length);
      }
      bw.updates.push_back(u);
    }
    u->outstanding = static_cast<int>(u->block_count);
    SetBits(u->first, u->count);  // as late as possible: just before the write
    in_flight_updates_.push_back(u);
  }
  for (auto& [b, bw] : batch) {
    stats_.updates_coalesced.Add(bw.updates.size() - 1);
    IssueBlockWrite(&bw);
  }
  // The writes move into pending_blocks_ as they are (map nodes, none
  // there already: an update whose block is pending waits); issuing them
  // first is safe, a backend completes operations from its poll only.
  pending_blocks_.merge(batch);
  stats_.updates_waiting.Set(waiting_.size());
  for (Update* u : done_now) FinishUpdate(u, absl::OkStatus());
}

void Volume::OnBlockWriteDone(BlockWrite* bw, int32_t result) {
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
  const uint64_t block = bw->block;
  pending_blocks_.erase(block);  // frees bw
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
  op->update.reset();  // frees u
  RetryStalledReads();
  if (status.ok() && op->fua) {
    op->stage = Stage::kFinalSync;
    RequestSync(op);
    return;
  }
  Complete(op, status);
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

void Volume::PrepareBlockWrite(BlockWrite* bw, uint64_t block, cow::Bitmap& source) {
  const cow::Geometry& g = file_->geometry();
  const cow::BitmapWrite w =
      cow::BitmapWriteFor(g.bitmap_offset, g.bitmap_bytes, g.bitmap_block_size, block);
  bw->block = block;
  bw->bitmap_byte = w.bitmap_byte;
  bw->length = w.length;
  bw->task.volume = this;
  bw->task.block = bw;
  bw->task.io.purpose = IoPurpose::kBitmap;
  bw->task.io.opcode = IoOpcode::kWrite;
  bw->task.io.fd = data_fd_;
  bw->task.io.offset = w.file_offset;
  bw->task.io.buf = source.data() + w.bitmap_byte;
  // O_DIRECT writes whole sectors (the padding after the bitmap is free).
  bw->task.io.len = options_.cache == CacheMode::kNone
                        ? (w.length + kSectorSize - 1) / kSectorSize * kSectorSize
                        : w.length;
}

void Volume::IssueBlockWrite(BlockWrite* bw) {
  stats_.bitmap_writes.Add();
  stats_.bitmap_writes_pending.Add();
  SubmitTask(&bw->task);
}

}  // namespace cowblk::engine
