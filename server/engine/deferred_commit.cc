// DeferredCommit: `deferred` durability's commit loop (see the header for
// the loop and the invariants it keeps).

#include "server/engine/deferred_commit.h"

#include <algorithm>
#include <cerrno>
#include <cstring>

#include "absl/strings/str_cat.h"
#include "common/file_io.h"
#include "common/sector.h"
#include "server/engine/volume.h"

namespace cowblk::engine {

using internal::BlockWrite;
using internal::Op;
using internal::Task;

DeferredCommit::DeferredCommit(Volume* volume, uint32_t interval_ms)
    : volume_(volume), interval_ms_(interval_ms), shadow_(volume->bitmap_.sectors()) {
  memcpy(shadow_.data(), volume->bitmap_.data(), volume->bitmap_.size_bytes());
  timer_.volume = volume;
  timer_.io.purpose = IoPurpose::kTimer;
  timer_.io.opcode = IoOpcode::kTimeout;
  timer_.io.len = uint64_t{interval_ms} * 1000000;
  cancel_timer_.volume = volume;
  cancel_timer_.io.purpose = IoPurpose::kTimer;
  cancel_timer_.io.opcode = IoOpcode::kTimeoutRemove;
  cancel_timer_.io.offset = reinterpret_cast<uint64_t>(&timer_);  // its user_data
}

void DeferredCommit::DataDone(Op* op) {
  if (!poisoned_.ok()) {  // the data may be written, but no bit exposes it
    volume_->Complete(op, poisoned_);
    return;
  }
  const uint64_t first = op->req->offset / kSectorSize;
  const uint64_t count = op->req->length / kSectorSize;
  if (!volume_->bitmap_.AllSet(first, count)) {
    volume_->SetBits(first, count);
    dirty_.push_back({first, count});
    ++dirty_seq_;
    volume_->stats_.updates_uncommitted.Set(dirty_.size() + captured_.size());
  }
  if (op->fua) {
    AddFlushWaiter(op, dirty_seq_);
    return;
  }
  Pump();
  volume_->Complete(op, absl::OkStatus());
}

void DeferredCommit::Flush(Op* op) { AddFlushWaiter(op, dirty_seq_); }

void DeferredCommit::AddFlushWaiter(Op* op, uint64_t need_seq) {
  flush_waiters_.push_back({op, need_seq});
  Pump();
}

void DeferredCommit::Pump() {
  if (state_ != State::kIdle || !poisoned_.ok()) return;
  if (flush_waiters_.empty()) {
    if (dirty_.empty()) return;
    if (interval_ms_ > 0 && !closing_) {
      // No flush is waiting: let more bits gather, up to the interval.
      if (!timer_armed_) {
        timer_armed_ = true;
        volume_->SubmitTask(&timer_);
      }
      return;
    }
  }
  StartRound();
}

void DeferredCommit::OnTimerDone(const Task* t, int32_t result) {
  if (t == &cancel_timer_) {
    cancelling_timer_ = false;
    return;
  }
  OnTimer(result);
}

void DeferredCommit::OnTimer(int32_t result) {
  timer_armed_ = false;
  if (result == -ECANCELED) {  // BeginClose: it commits without the timer
    Pump();
    return;
  }
  // The interval passed: commit what gathered (unless a round is running:
  // the pump re-arms the timer when it ends).
  if (state_ != State::kIdle || !poisoned_.ok()) return;
  if (!dirty_.empty() || !flush_waiters_.empty()) StartRound();
}

void DeferredCommit::BeginClose() {
  closing_ = true;
  if (timer_armed_ && !cancelling_timer_) {
    cancelling_timer_ = true;
    volume_->SubmitTask(&cancel_timer_);
  }
  Pump();
}

void DeferredCommit::StartRound() {
  captured_.swap(dirty_);
  captured_seq_ = dirty_seq_;
  sync_covers_ = written_seq_;
  in_sync_.swap(flush_waiters_);
  state_ = State::kSyncing;
  volume_->SubmitFdatasync();
}

void DeferredCommit::OnSyncDone(int32_t result) {
  const cow::CowFile& file = *volume_->file_;
  if (result < 0) {
    Poison(ErrnoStatus(-result, absl::StrCat("fdatasync ", file.path(),
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
  const cow::Geometry& g = file.geometry();
  std::set<uint64_t> blocks;
  blocks.swap(retry_blocks_);
  uint64_t touched = 0;
  for (const Range& r : captured_) {
    shadow_.SetRange(r.first, r.count);
    const cow::BitmapBlockRange br =
        cow::BitmapBlocksFor(g.bitmap_offset, g.bitmap_block_size, r.first, r.count);
    for (uint64_t b = br.first_block; b < br.first_block + br.count; ++b) blocks.insert(b);
    touched += br.count;
  }
  if (touched > blocks.size()) volume_->stats_.updates_coalesced.Add(touched - blocks.size());
  if (blocks.empty()) {
    written_seq_ = captured_seq_;
    state_ = State::kIdle;
  } else {
    state_ = State::kWritingBlocks;
    blocks_outstanding_ = static_cast<int>(blocks.size());
    round_error_ = absl::OkStatus();
    round_.resize(blocks.size());
    BlockWrite* bw = round_.data();
    for (uint64_t b : blocks) {
      volume_->PrepareBlockWrite(bw, b, shadow_);
      volume_->IssueBlockWrite(bw++);
    }
  }
  for (Op* op : done) volume_->Complete(op, absl::OkStatus());
  Pump();
}

void DeferredCommit::OnBlockWriteDone(BlockWrite* bw, int32_t result) {
  VolumeStats& stats = volume_->stats_;
  stats.bitmap_writes_pending.Sub();
  if (result < 0) {
    // What the disk holds of this block is some mix of the old bytes and
    // the shadow's: bits of durable data either way. Write it again with
    // the next round; flushes that need it fail meanwhile.
    stats.bitmap_write_errors.Add();
    retry_blocks_.insert(bw->block);
    if (round_error_.ok()) {
      round_error_ = ErrnoStatus(
          -result, absl::StrCat(volume_->file_->path(), ": write bitmap block ", bw->block));
    }
  }
  if (--blocks_outstanding_ > 0) return;
  round_.clear();
  state_ = State::kIdle;
  captured_.clear();
  stats.updates_uncommitted.Set(dirty_.size());
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
  Pump();
  for (Op* op : failed) volume_->Complete(op, error);
}

void DeferredCommit::Poison(const absl::Status& status) {
  poisoned_ = status;
  refuses_writes_.store(true, std::memory_order_release);
  state_ = State::kIdle;
  std::vector<Op*> failed;
  for (const FlushWaiter& w : in_sync_) failed.push_back(w.op);
  for (const FlushWaiter& w : flush_waiters_) failed.push_back(w.op);
  in_sync_.clear();
  flush_waiters_.clear();
  dirty_.clear();
  captured_.clear();
  volume_->stats_.updates_uncommitted.Set(0);
  for (Op* op : failed) volume_->Complete(op, status);
}

}  // namespace cowblk::engine
