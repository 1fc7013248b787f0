#include "server/engine/snapshot.h"

#include <algorithm>
#include <cstring>

#include "common/clock.h"
#include "common/sector.h"
#include "server/engine/volume.h"

namespace cowblk::engine {

using internal::Op;

namespace {

uint64_t ChunkCount(uint64_t sectors) {
  return (sectors + kSnapshotChunkSectors - 1) / kSnapshotChunkSectors;
}

}  // namespace

Snapshot::Snapshot(Volume* volume, std::function<void(absl::Status)> taken)
    : volume_(volume),
      taken_(std::move(taken)),
      begin_ns_(MonotonicNs()),
      sectors_(volume->bitmap_.sectors()),
      state_(ChunkCount(sectors_), kPending) {
  MaybeTake();
}

bool Snapshot::Admit(Op* op) {
  if (taken_ != nullptr || Conflicts(op)) {
    held_.push_back({op, MonotonicNs()});
    return false;
  }
  SaveBits(op);
  return true;
}

void Snapshot::OnChangeDone() {
  if (taken_ != nullptr) MaybeTake();
}

void Snapshot::MaybeTake() {
  // Every change in flight is one of ours, held: what was admitted before
  // BeginSnapshot has its data written and its bits set.
  if (volume_->changes_in_flight_ != held_.size()) return;
  stats_.drain_ns = static_cast<uint64_t>(MonotonicNs() - begin_ns_);
  auto taken = std::move(taken_);
  taken_ = nullptr;
  taken(absl::OkStatus());
  Retry();
}

bool Snapshot::SnapshotBit(uint64_t c, uint64_t sector) const {
  auto it = saved_.find(c);
  if (it == saved_.end()) return volume_->bitmap_.Test(sector);
  const uint64_t i = sector - c * kSnapshotChunkSectors;
  return (it->second[i >> 3] >> (i & 7)) & 1;
}

bool Snapshot::Conflicts(const Op* op) {
  const uint64_t first = op->req->offset / kSectorSize;
  const uint64_t end = first + op->req->length / kSectorSize;
  bool conflict = false;
  for (uint64_t c = first / kSnapshotChunkSectors; c * kSnapshotChunkSectors < end; ++c) {
    if (state_[c] == kCopied) continue;
    const uint64_t lo = std::max(first, c * kSnapshotChunkSectors);
    const uint64_t hi = std::min(end, (c + 1) * kSnapshotChunkSectors);
    bool set = false;
    if (saved_.count(c) == 0) {
      set = !volume_->bitmap_.AllClear(lo, hi - lo);
    } else {
      for (uint64_t s = lo; s < hi && !set; ++s) set = SnapshotBit(c, s);
    }
    if (!set) continue;
    conflict = true;
    if (state_[c] == kPending) {
      state_[c] = kAsked;
      asked_.push_back(c);
    }
  }
  return conflict;
}

void Snapshot::SaveBits(const Op* op) {
  const uint64_t first = op->req->offset / kSectorSize;
  const uint64_t end = first + op->req->length / kSectorSize;
  for (uint64_t c = first / kSnapshotChunkSectors; c * kSnapshotChunkSectors < end; ++c) {
    if (state_[c] == kCopied || saved_.count(c) != 0) continue;
    // Untouched since the moment: the live bits are the snapshot's.
    const uint64_t count = std::min(kSnapshotChunkSectors, sectors_ - c * kSnapshotChunkSectors);
    const unsigned char* from = volume_->bitmap_.data() + c * kSnapshotChunkSectors / 8;
    saved_.emplace(c, std::vector<unsigned char>(from, from + (count + 7) / 8));
  }
}

void Snapshot::Start(const Held& h) {
  const uint64_t waited = static_cast<uint64_t>(MonotonicNs() - h.since_ns);
  ++stats_.held_writes;
  stats_.max_hold_ns = std::max(stats_.max_hold_ns, waited);
  volume_->StartWrite(h.op);
}

void Snapshot::Retry() {
  // Collected first: starting a write may complete requests, never admit
  // new ones (those come through the engine's inbox), but keep held_ whole
  // while it happens.
  std::vector<Held> ready;
  std::deque<Held> still;
  for (const Held& h : held_) {
    if (Conflicts(h.op)) {
      still.push_back(h);
    } else {
      SaveBits(h.op);
      ready.push_back(h);
    }
  }
  held_.swap(still);
  for (const Held& h : ready) Start(h);
}

bool Snapshot::Next(const uint64_t* copied, SnapshotChunk* out) {
  if (copied != nullptr && *copied < state_.size() && state_[*copied] == kCopying) {
    state_[*copied] = kCopied;
    saved_.erase(*copied);
    Retry();
  }
  uint64_t c = state_.size();
  while (!asked_.empty() && c == state_.size()) {
    if (state_[asked_.front()] == kAsked) {
      c = asked_.front();
      ++stats_.chunks_early;
    }
    asked_.pop_front();
  }
  if (c == state_.size()) {
    while (cursor_ < state_.size() && state_[cursor_] != kPending) ++cursor_;
    if (cursor_ == state_.size()) return false;
    c = cursor_;
  }
  state_[c] = kCopying;
  out->index = c;
  out->first = c * kSnapshotChunkSectors;
  out->count = std::min(kSnapshotChunkSectors, sectors_ - out->first);
  cow::Bitmap bits(out->count);
  auto it = saved_.find(c);
  const unsigned char* from =
      it != saved_.end() ? it->second.data() : volume_->bitmap_.data() + out->first / 8;
  memcpy(bits.data(), from, (out->count + 7) / 8);
  out->runs = cow::SplitRuns(bits, 0, out->count);
  for (cow::SectorRun& r : out->runs) r.first += out->first;
  return true;
}

SnapshotStats Snapshot::End(absl::Status why) {
  if (taken_ != nullptr) {
    auto taken = std::move(taken_);
    taken_ = nullptr;
    taken(std::move(why));
  }
  std::deque<Held> held;
  held.swap(held_);
  for (const Held& h : held) Start(h);
  return stats_;
}

}  // namespace cowblk::engine
