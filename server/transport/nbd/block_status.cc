#include "server/transport/nbd/block_status.h"

#include <algorithm>

#include "common/nbd_wire.h"
#include "common/sector.h"
#include "server/cow/bitmap.h"
#include "server/engine/volume.h"
#include "server/store/store.h"

namespace cowblk::nbd {

std::vector<Extent> AllocationExtents(store::VolumeHandle& volume, uint64_t offset,
                                      uint32_t length, bool req_one) {
  std::vector<Extent> out;
  const size_t max_extents = req_one ? 1 : kMaxExtents;
  // On the engine thread: the bitmap is the engine's, and the backing file
  // stays open while it runs. GetAllocation's extents (with zeros) as
  // NBD states: the written and the image's data are data, the rest a
  // hole that reads as zeros; adjacent ones of one state merged.
  volume.RunOnEngine([&](engine::Volume& v) {
    const std::vector<cow::SectorRun> runs = cow::SplitRuns(
        v.file().bitmap(), offset / kSectorSize, length / kSectorSize, max_extents);
    for (const store::AllocationPage::Extent& e : store::ExtentsOf(v, runs, 2 * max_extents)) {
      const uint32_t flags = e.zero ? kStateHole | kStateZero : 0;
      if (!out.empty() && out.back().flags == flags) {
        out.back().length += static_cast<uint32_t>(e.length);
      } else if (out.size() < max_extents) {
        out.push_back({static_cast<uint32_t>(e.length), flags});
      } else {
        break;
      }
    }
  });
  return out;
}

}  // namespace cowblk::nbd
