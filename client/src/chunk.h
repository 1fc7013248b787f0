// The units of a cowblk::Volume's I/O inside the library. An IoCall is one
// call of the public API; it owns one or more Chunks, each one wire request
// (a whole small call, or one piece of a large read or write).
//
// A chunk's life: kQueued in its volume's queue; then taken by a transport
// (transport.h), which holds it kSent (the volume may abandon it at its
// deadline) or kClaimed (someone is using its buffer and alone may hand it
// back); or kHeld (a flush waiting for retried writes); kDone once its call
// counted it. A chunk answered or failed is done; one whose transport lost
// it goes back to the queue (VolumeCore's retry rules).
//
// Thread-safety: guarded by the VolumeCore's lock, except that whoever
// holds a kClaimed chunk may read its range and buffers (which never change
// after Submit) and write through `dest` without it.

#ifndef COWBLK_CLIENT_SRC_CHUNK_H_
#define COWBLK_CLIENT_SRC_CHUNK_H_

#include <chrono>
#include <cstdint>
#include <list>
#include <memory>
#include <vector>

#include "absl/status/status.h"
#include "cowblk/volume.h"

namespace cowblk::internal {

using Clock = std::chrono::steady_clock;

enum class OpKind { kRead, kWrite, kFlush, kTrim, kWriteZeroes };

struct IoCall;
class Transport;
class Carrier;

struct Chunk {
  enum class State { kQueued, kHeld, kSent, kClaimed, kDone };

  // What the caller asked (set before Submit, never changed).
  IoCall* call = nullptr;
  OpKind kind = OpKind::kRead;
  uint64_t offset = 0;
  uint64_t length = 0;
  char* dest = nullptr;       // kRead: where the answer goes
  const char* src = nullptr;  // kWrite: the caller's bytes
  bool fua = false;

  // The volume's bookkeeping.
  State state = State::kQueued;
  uint64_t seq = 0;         // submission order
  uint64_t covers = 0;      // kFlush: the volume's acknowledged writes when last sent
  int attempts = 0;         // sends so far
  bool retried = false;     // a non-flush chunk counted among the retried ones
  absl::Status last_error;  // why it was last retried
  bool nbd_refused = false;  // answered with an error over NBD: the streams only (nbd_lane.h)

  // While kSent or kClaimed by a transport: which one, on which of its
  // links, under which id (each transport's own; new for every send).
  Transport* transport = nullptr;
  Carrier* link = nullptr;
  uint64_t wire_id = 0;
};

struct IoCall {
  IoCallback done;
  Clock::time_point deadline;
  absl::Status status;   // the first failure of a chunk
  size_t remaining = 0;  // chunks not done
  std::vector<std::unique_ptr<Chunk>> chunks;
  std::list<std::unique_ptr<IoCall>>::iterator self;  // in the volume's calls in progress
};

// Whether the server changes the volume for `kind` (what an epoch change
// may lose once acknowledged).
inline bool Modifies(OpKind kind) {
  return kind == OpKind::kWrite || kind == OpKind::kTrim || kind == OpKind::kWriteZeroes;
}

}  // namespace cowblk::internal

#endif  // COWBLK_CLIENT_SRC_CHUNK_H_
