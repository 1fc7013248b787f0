// Reads: a request's sectors split into runs of the COW file (bits set) and
// of the backing file, one task per run, or for a LocateRead where those
// runs lie. Invariant 4 (reads stall, they never guess): a read that
// touches a sector with a bitmap update pending or waiting is held until
// the update completes, then split against the bits of that moment;
// together with invariant 1 this is why a read never returns COW bytes
// that were never written.

#include <fcntl.h>

#include "common/clock.h"
#include "common/sector.h"
#include "server/engine/volume.h"

namespace cowblk::engine {

bool Volume::ReadMustStall(const Op* op) const {
  const uint64_t first = op->req->offset / kSectorSize;
  const uint64_t count = op->req->length / kSectorSize;
  for (const Update* u : in_flight_updates_) {
    if (internal::RangesOverlap(first, count, u->first, u->count)) return true;
  }
  for (const Update* u : waiting_) {
    if (internal::RangesOverlap(first, count, u->first, u->count)) return true;
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
  op->tasks.resize(runs.size());
  Task* t = op->tasks.data();
  for (const cow::SectorRun& run : runs) {
    t->volume = this;
    t->op = op;
    t->from_cow = run.allocated;
    const uint64_t pos = run.first * kSectorSize;
    t->io.opcode = IoOpcode::kRead;
    t->io.fd = run.allocated ? data_fd_ : file_->backing_fd();
    t->io.offset = run.allocated ? data_offset_ + pos : pos;
    t->io.buf = op->buf + (pos - offset);
    t->io.len = run.count * kSectorSize;
    SubmitTask(t++);
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

}  // namespace cowblk::engine
