// Group commit (`ordered`/`unordered` durability): one fdatasync in flight
// per volume, and everything that needs one while it runs shares the next.
// An op needs "an fdatasync issued after it asked", never the one already
// running: that one may have started before the op's data was written.
// Users: a write's barrier (invariant 2: its data is durable before the
// bitmap block that exposes it is written), a FLUSH and a FUA write's final
// sync (invariant 5: a flush needs only an fdatasync issued after it
// arrived, since writes acknowledged before it have their blocks written).

#include "absl/strings/str_cat.h"
#include "common/file_io.h"
#include "server/engine/volume.h"

namespace cowblk::engine {

void Volume::RequestSync(Op* op) {
  if (sync_in_flight_) {
    sync_next_.push_back(op);
    return;
  }
  sync_current_.push_back(op);
  sync_in_flight_ = true;
  SubmitFdatasync();
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
    sync_in_flight_ = true;
    SubmitFdatasync();
  }
  // Sort before Pump: it may complete (and recycle) ops whose bits are set.
  std::vector<Op*> complete;
  bool barrier_passed = false;
  for (Op* op : done) {
    if (op->stage == Stage::kBarrier && status.ok()) {
      op->stage = Stage::kBitmap;
      waiting_.push_back(&*op->update);
      barrier_passed = true;
    } else {
      if (op->stage == Stage::kBarrier) op->update.reset();  // the barrier failed
      complete.push_back(op);
    }
  }
  if (barrier_passed) Pump();
  for (Op* op : complete) Complete(op, status);
}

}  // namespace cowblk::engine
