#include "server/transport/nbd/block_status.h"

#include <unistd.h>

#include <algorithm>
#include <cerrno>

#include "common/nbd_wire.h"
#include "common/sector.h"
#include "server/cow/bitmap.h"
#include "server/engine/volume.h"

namespace cowblk::nbd {
namespace {

constexpr uint32_t kHoleZero = kStateHole | kStateZero;

uint64_t SectorDown(uint64_t b) { return b / kSectorSize * kSectorSize; }
uint64_t SectorUp(uint64_t b) { return SectorDown(b + kSectorSize - 1); }

// Appends [*at, end) in `flags` state, merged with the last extent when it
// has the same state; *at becomes `end`.
void Add(std::vector<Extent>* out, uint64_t* at, uint64_t end, uint32_t flags) {
  if (end <= *at) return;
  const auto length = static_cast<uint32_t>(end - *at);
  *at = end;
  if (!out->empty() && out->back().flags == flags) {
    out->back().length += length;
  } else {
    out->push_back({length, flags});
  }
}

// Splits [begin, end), which the volume reads from its backing file `fd`,
// into the file's data (data: partial sectors too) and its holes and what
// lies past its end (zeros). Where the file system cannot tell
// (lseek's SEEK_DATA refused): data, always a safe answer.
void AddBacking(std::vector<Extent>* out, int fd, uint64_t begin, uint64_t end) {
  uint64_t at = begin;
  while (at < end) {
    const off_t data = lseek(fd, static_cast<off_t>(at), SEEK_DATA);
    if (data < 0) {
      // ENXIO: no data from `at` to the file's end (and beyond it, zeros).
      Add(out, &at, end, errno == ENXIO ? kHoleZero : 0);
      return;
    }
    Add(out, &at, std::min(SectorDown(static_cast<uint64_t>(data)), end), kHoleZero);
    const off_t hole = lseek(fd, static_cast<off_t>(at), SEEK_HOLE);
    Add(out, &at, hole < 0 ? end : std::min(SectorUp(static_cast<uint64_t>(hole)), end), 0);
  }
}

}  // namespace

std::vector<Extent> AllocationExtents(store::VolumeHandle& volume, uint64_t offset,
                                      uint32_t length, bool req_one) {
  std::vector<Extent> out;
  const size_t max_extents = req_one ? 1 : kMaxExtents;
  // On the engine thread: the bitmap is the engine's, and the backing file
  // stays open while it runs.
  volume.RunOnEngine([&](engine::Volume& v) {
    const std::vector<cow::SectorRun> runs = cow::SplitRuns(
        v.file().bitmap(), offset / kSectorSize, length / kSectorSize, max_extents);
    for (const cow::SectorRun& r : runs) {
      if (out.size() > max_extents) break;  // the rest is cut below
      uint64_t at = r.first * kSectorSize;
      const uint64_t end = at + r.count * kSectorSize;
      if (r.allocated) {
        Add(&out, &at, end, 0);
      } else if (v.backing_fd() >= 0) {
        AddBacking(&out, v.backing_fd(), at, end);
      } else {
        Add(&out, &at, end, kHoleZero);
      }
    }
  });
  // Merging kept the order: the first ones answer, however many the
  // backing file's holes made.
  out.resize(std::min(out.size(), max_extents));
  return out;
}

}  // namespace cowblk::nbd
