// The records a Volume keeps for work in flight. Not part of the engine's
// interface: volume.h includes this header only because Volume holds some
// of them by value; nothing outside Volume's own files (volume*.cc,
// group_commit.cc) and deferred_commit.* names them.
//
// Who owns what (nothing here is allocated or freed by hand):
//  - Op: one request from Volume::Submit to Volume::Complete. Volume::ops_
//    owns the live ones and Volume::free_ops_ the recycled ones (a free
//    list: once a volume has seen its depth, a request allocates nothing).
//  - Task: one I/O operation. A request's data operations live in its
//    Op::tasks, a bitmap block write's in its BlockWrite; the fdatasync and
//    the commit timer's operations are members of Volume and DeferredCommit
//    (each has at most one in flight).
//  - Update: a request's bitmap update, inside its Op (Op::update) from the
//    end of the data stage until the update finished.
//  - BlockWrite: in `ordered`/`unordered` durability Volume::pending_blocks_
//    owns each from its issue to its completion; in `deferred` durability
//    the commit round does (DeferredCommit::round_).
// Every other pointer to these records (waiting lists, stalled reads,
// dependents, io.user_data) is a reference that the order of events keeps
// valid: a record outlives every operation and list that names it.
//
// Thread-safety: the owning engine thread only, like Volume.

#ifndef COWBLK_SERVER_ENGINE_VOLUME_INTERNAL_H_
#define COWBLK_SERVER_ENGINE_VOLUME_INTERNAL_H_

#include <cstdint>
#include <cstdlib>
#include <list>
#include <memory>
#include <optional>
#include <vector>

#include "absl/status/status.h"
#include "server/engine/io.h"
#include "server/engine/request.h"

namespace cowblk::engine {

class Volume;

namespace internal {

struct BlockWrite;
struct Op;

// Whether sector ranges [a, a + an) and [b, b + bn) share a sector.
inline bool RangesOverlap(uint64_t a, uint64_t an, uint64_t b, uint64_t bn) {
  return a < b + bn && b < a + an;
}

// One I/O operation. Its completion is routed by io.user_data (the Task's
// address) to `volume`, and by io.purpose to the stage that waits for it.
struct Task {
  Volume* volume = nullptr;
  Op* op = nullptr;             // IoPurpose::kData: the request it serves
  BlockWrite* block = nullptr;  // IoPurpose::kBitmap: the write it is
  bool from_cow = false;        // a read's run: COW file, not backing
  uint64_t done_bytes = 0;      // a short transfer continues from here
  IoOp io;                      // the whole operation, as first submitted
};

// One request's change of bits (`ordered`/`unordered` durability).
// `outstanding` counts the block writes (or, for a rewrite that set no
// bits, the in-flight updates) it waits for.
struct Update {
  Op* op = nullptr;
  uint64_t first = 0, count = 0;              // sectors
  uint64_t first_block = 0, block_count = 0;  // bitmap blocks
  int outstanding = 0;
  bool waited = false;  // counted in VolumeStats::updates_waited
  absl::Status status;
  std::vector<Update*> dependents;  // rewrites that wait for this update
};

// What an op waits for after its data stage.
enum class Stage { kData, kBarrier, kBitmap, kFinalSync };

// Frees what posix_memalign allocated.
struct FreeDeleter {
  void operator()(void* p) const { free(p); }
};

// One request in flight.
struct Op {
  Request* req = nullptr;
  Stage stage = Stage::kData;
  int pieces = 0;  // data tasks not yet done
  absl::Status status;
  OpType type = OpType::kRead;  // req->op()
  bool fua = false;             // req->fua()
  char* buf = nullptr;  // the data of a Read or Write (or its bounce buffer)
  // O_DIRECT: an aligned copy of a caller's unaligned buffer (`buf` points
  // to it), copied back to a Read's buffer when it completes.
  std::unique_ptr<char[], FreeDeleter> bounce;
  uint64_t stall_start_ns = 0;
  uint64_t start_ns = 0;  // for io_duration; 0 when not timed
  // Sized once, before the first is submitted, so none ever moves while in
  // flight (a backend completes operations from its poll, never inside
  // Submit).
  std::vector<Task> tasks;
  std::optional<Update> update;
  std::list<Op>::iterator self;  // its node in Volume::ops_

  // Makes this a fresh Op for the free list. Keeps the tasks' memory
  // unless a request with many runs grew it.
  void Reset();
};

// One write of bitmap block `block`, from the in-memory bitmap (`ordered`,
// `unordered`) or the shadow (`deferred`).
struct BlockWrite {
  uint64_t block = 0;
  std::vector<Update*> updates;       // the updates it carries (not deferred)
  std::vector<unsigned char> before;  // ordered/unordered: bitmap bytes before this batch
  uint64_t bitmap_byte = 0;           // the block's first byte in the bitmap
  uint64_t length = 0;                // and its length
  Task task;
};

}  // namespace internal
}  // namespace cowblk::engine

#endif  // COWBLK_SERVER_ENGINE_VOLUME_INTERNAL_H_
