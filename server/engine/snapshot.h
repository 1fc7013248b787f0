// Snapshot: a point-in-time view of a Volume that a copier (a commit) reads
// while the volume keeps serving, with writes held only where they would
// change what the copier has still to read (docs/design.md, "Point-in-time
// commit").
//
// Its moment: Volume::BeginSnapshot holds every new write, trim and
// write-zeroes, and once those in flight completed (their data written and
// their bits set in memory) the moment has come: the in-memory bitmap is
// the snapshot's bitmap, and `taken` is called. Everything acknowledged
// before BeginSnapshot is in the snapshot; nothing submitted after it is.
//
// After the moment the volume is copied in chunks of kChunkSectors, which
// the copier claims one at a time (Volume::NextSnapshotChunk) and reads
// itself, from the COW file where the chunk's snapshot bits are set and
// from the backing file where they are clear. A new write is held only if
// it touches a sector whose snapshot bit is set in a chunk not yet copied:
// that data is the snapshot's and lives only in the COW file. Such a
// chunk is copied next (before the rest, in the order writes asked for
// them), so a write waits for about one chunk's copy, not for the whole
// commit. Writes that touch only sectors whose snapshot bit is clear go on
// at once (the copier reads those from the backing file, which never
// changes); before the first of them sets bits in a chunk not yet copied,
// that chunk's bits are saved, so the copier still gets the bits of the
// moment.
//
// Memory: one byte per chunk, plus the saved bits (256 bytes) of chunks
// that writes touched before they were copied.
//
// Thread-safety: none; the volume's engine thread only, like Volume.

#ifndef COWBLK_SERVER_ENGINE_SNAPSHOT_H_
#define COWBLK_SERVER_ENGINE_SNAPSHOT_H_

#include <cstdint>
#include <deque>
#include <functional>
#include <unordered_map>
#include <vector>

#include "absl/status/status.h"
#include "server/cow/bitmap.h"
#include "server/engine/volume_internal.h"

namespace cowblk::engine {

class Volume;

// 1 MiB: a held write waits for the copy of about this much.
inline constexpr uint64_t kSnapshotChunkSectors = 2048;

// One chunk for the copier: sectors [first, first + count), split into runs
// by the snapshot's bits (allocated: read the COW file's data area;
// otherwise: the backing file, zeros past its end).
struct SnapshotChunk {
  uint64_t index = 0;
  uint64_t first = 0;
  uint64_t count = 0;
  std::vector<cow::SectorRun> runs;
};

// What the snapshot cost the volume's writers, for the commit's log line.
struct SnapshotStats {
  uint64_t drain_ns = 0;      // from BeginSnapshot to the moment
  uint64_t held_writes = 0;   // writes that waited at all
  uint64_t max_hold_ns = 0;   // the longest any of them waited
  uint64_t chunks_early = 0;  // chunks copied out of order for a write
};

class Snapshot {
 public:
  // `taken` is called once: OK at the moment, or an error when the snapshot
  // ends before (the volume closes).
  Snapshot(Volume* volume, std::function<void(absl::Status)> taken);
  Snapshot(const Snapshot&) = delete;
  Snapshot& operator=(const Snapshot&) = delete;

  // Called for each write, trim and write-zeroes before its data stage:
  // true to start it now, false when it is held (the snapshot starts it
  // later through Volume::StartWrite).
  bool Admit(internal::Op* op);
  // A write, trim or write-zeroes completed (the moment may have come).
  void OnChangeDone();
  // Marks chunk `copied` (if any) copied, then claims the next chunk to copy;
  // false when every chunk was claimed.
  bool Next(const uint64_t* copied, SnapshotChunk* out);
  // Ends the snapshot: `taken` gets `why` if the moment had not come, and
  // every held write starts.
  SnapshotStats End(absl::Status why);

 private:
  enum State : uint8_t { kPending, kAsked, kCopying, kCopied };
  struct Held {
    internal::Op* op;
    int64_t since_ns;
  };

  void MaybeTake();
  // Whether `op` touches a snapshot sector of a chunk not yet copied; marks
  // those chunks to be copied next.
  bool Conflicts(const internal::Op* op);
  // Saves the bits of the chunks not yet copied that `op` will change.
  void SaveBits(const internal::Op* op);
  // Starts the held writes that no longer conflict.
  void Retry();
  void Start(const Held& h);
  // The snapshot's bit of `sector` in chunk `c`.
  bool SnapshotBit(uint64_t c, uint64_t sector) const;

  Volume* const volume_;
  std::function<void(absl::Status)> taken_;  // null once called
  const int64_t begin_ns_;
  const uint64_t sectors_;
  std::vector<uint8_t> state_;  // per chunk
  std::deque<uint64_t> asked_;  // chunks writes wait for, in order
  uint64_t cursor_ = 0;         // chunks before it are claimed
  std::unordered_map<uint64_t, std::vector<unsigned char>> saved_;  // chunk -> bits
  std::deque<Held> held_;
  SnapshotStats stats_;
};

}  // namespace cowblk::engine

#endif  // COWBLK_SERVER_ENGINE_SNAPSHOT_H_
