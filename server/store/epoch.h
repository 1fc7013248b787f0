// Volume epochs: a flush never lies after a crash (docs/design.md, "Volume
// epochs"). Each volume has an epoch, recorded in VOLUMES_DIR/NAME.state as
// one 256-byte line `epoch=HEX open=0|1 boot=ID durability=MODE`, written in
// place and synced. The epoch stays when the volume was closed cleanly, or
// left open by an `ordered`/`unordered` server in the same boot (the page
// cache kept every acknowledged write); otherwise it is renewed and logged
// as `volume_epoch_changed`, and clients that had writes no flush covered
// fail their next flush DATA_LOSS.
//
// Thread-safety: calls for different volumes may run at once; calls for one
// volume must be serialized by the caller (the Store's lock).

#ifndef COWBLK_SERVER_STORE_EPOCH_H_
#define COWBLK_SERVER_STORE_EPOCH_H_

#include <atomic>
#include <cstdint>
#include <string>

#include "server/engine/volume.h"

namespace cowblk::store {

class EpochRecords {
 public:
  // Records of volumes in `volumes_dir`, served with `durability`.
  EpochRecords(std::string volumes_dir, engine::Durability durability)
      : volumes_dir_(std::move(volumes_dir)), durability_(durability) {}

  // Reads the volume's record, keeps or renews the epoch, and records the
  // volume as open, durably, before any write can be acknowledged. If that
  // record cannot be written, returns an epoch of this process alone (any
  // restart then counts as a possible loss: a flush may fail needlessly,
  // never succeed wrongly).
  std::string Open(const std::string& name);
  // Records a clean close: the epoch stays for the next start. A failure is
  // logged; the next start then renews the epoch.
  void Close(const std::string& name, const std::string& epoch);
  // The record's path (removed with its volume).
  std::string PathOf(const std::string& name) const;
  // Epochs renewed over an earlier one (each logged volume_epoch_changed:
  // a possible crash loss reported) since this object was made. Any thread.
  uint64_t changes() const { return changes_.load(std::memory_order_relaxed); }

 private:
  absl::Status Save(const std::string& name, const std::string& epoch, bool open);

  const std::string volumes_dir_;
  const engine::Durability durability_;
  std::atomic<uint64_t> changes_{0};
};

}  // namespace cowblk::store

#endif  // COWBLK_SERVER_STORE_EPOCH_H_
