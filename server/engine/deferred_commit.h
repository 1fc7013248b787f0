// DeferredCommit: how a volume in `deferred` durability gets its bits to
// the disk (docs/design.md, "Deferred durability").
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
// no bit may ever expose it. A failed block write fails the flushes that
// need it, and the next round writes the block again.
//
// Invariants kept here: no bit reaches the disk before its data is durable
// (blocks are written from the shadow, never from the in-memory bitmap);
// a block never changes while its write is in flight (the shadow changes
// only between rounds); reads never stall (a bit in memory always has
// written data behind it).
//
// Ownership: the Volume owns its DeferredCommit, which owns the operations
// only it issues (the round's block writes, the timer's two tasks); its
// fdatasync is the volume's one sync task (Volume::SubmitFdatasync).
// Thread-safety: the volume's engine thread, except refuses_writes().

#ifndef COWBLK_SERVER_ENGINE_DEFERRED_COMMIT_H_
#define COWBLK_SERVER_ENGINE_DEFERRED_COMMIT_H_

#include <atomic>
#include <cstdint>
#include <memory>
#include <set>
#include <vector>

#include "absl/status/status.h"
#include "server/cow/bitmap.h"
#include "server/engine/volume_internal.h"

namespace cowblk::engine {

class DeferredCommit {
 public:
  // The loop of `volume`, whose bitmap is what its disk holds now.
  // `interval_ms`: VolumeOptions::commit_interval_ms.
  DeferredCommit(Volume* volume, uint32_t interval_ms);

  DeferredCommit(const DeferredCommit&) = delete;
  DeferredCommit& operator=(const DeferredCommit&) = delete;

  // OK, or why the volume refuses writes (an fdatasync failed).
  const absl::Status& poisoned() const { return poisoned_; }
  // !poisoned().ok(). Any thread.
  bool refuses_writes() const { return refuses_writes_.load(std::memory_order_acquire); }
  // What Volume::requests_in_flight() adds: the timer's operations in
  // flight, plus one while bits wait or a round runs.
  size_t busy() const {
    return timer_armed_ + cancelling_timer_ + (state_ != State::kIdle || !dirty_.empty());
  }

  // The data of write `op` (or trim, write-zeroes) is written: sets its bits
  // in memory and completes it (a FUA one once it is durable).
  void DataDone(internal::Op* op);
  // Completes FLUSH `op` once every write acknowledged before it is durable.
  void Flush(internal::Op* op);
  // The volume is closing: commit at once, and cancel the timer.
  void BeginClose();

  // Completions of the loop's operations, routed by Volume::OnIoComplete.
  void OnSyncDone(int32_t result);
  void OnBlockWriteDone(internal::BlockWrite* bw, int32_t result);
  void OnTimerDone(const internal::Task* t, int32_t result);

 private:
  // Sequence numbers count bit-setting writes in acknowledgement order; a
  // flush needs every one acknowledged before it to be durable.
  struct Range {
    uint64_t first, count;
  };
  struct FlushWaiter {
    internal::Op* op;
    uint64_t need_seq;
  };
  enum class State { kIdle, kSyncing, kWritingBlocks };

  void AddFlushWaiter(internal::Op* op, uint64_t need_seq);
  // Starts a round if one is due, or arms the timer.
  void Pump();
  void StartRound();
  void OnTimer(int32_t result);
  void Poison(const absl::Status& status);

  Volume* const volume_;  // owns this
  const uint32_t interval_ms_;
  State state_ = State::kIdle;
  cow::Bitmap shadow_;            // the bits the disk may hold
  std::vector<Range> dirty_;      // acknowledged, not yet captured
  std::vector<Range> captured_;   // covered by the fdatasync in flight
  uint64_t dirty_seq_ = 0;        // seq of the newest range in dirty_
  uint64_t captured_seq_ = 0;     // seq of the newest range in captured_
  uint64_t written_seq_ = 0;      // ranges up to here are in written blocks
  uint64_t sync_covers_ = 0;      // written_seq_ when the fdatasync started
  uint64_t durable_seq_ = 0;      // ranges up to here are durable
  std::vector<FlushWaiter> flush_waiters_;  // not yet under an fdatasync
  std::vector<FlushWaiter> in_sync_;        // under the fdatasync in flight
  std::set<uint64_t> retry_blocks_;         // block writes that failed
  // The round's block writes, sized before the first is issued (so none
  // moves) and cleared when the last completes.
  std::vector<internal::BlockWrite> round_;
  int blocks_outstanding_ = 0;
  internal::Task timer_;         // the commit interval's kTimeout
  internal::Task cancel_timer_;  // its kTimeoutRemove, when the volume closes
  bool timer_armed_ = false;
  bool cancelling_timer_ = false;
  bool closing_ = false;
  absl::Status round_error_;  // a block write of this round failed
  absl::Status poisoned_;     // an fdatasync failed: no more writes
  std::atomic<bool> refuses_writes_{false};  // !poisoned_.ok(), for other threads
};

}  // namespace cowblk::engine

#endif  // COWBLK_SERVER_ENGINE_DEFERRED_COMMIT_H_
