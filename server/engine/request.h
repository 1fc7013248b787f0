// A block request as the engine sees it. The transport (gRPC service, tests)
// fills one in and hands it to Engine::Submit; the engine calls `done`
// exactly once, on the engine thread, with the request's single status.

#ifndef COWBLK_SERVER_ENGINE_REQUEST_H_
#define COWBLK_SERVER_ENGINE_REQUEST_H_

#include <cstdint>
#include <functional>
#include <vector>

#include "absl/status/status.h"

namespace cowblk::engine {

enum class OpType { kRead = 0, kWrite, kFlush, kTrim, kWriteZeroes };
inline constexpr int kOpTypeCount = 5;
const char* OpTypeName(OpType op);  // "read", "write", "flush", "trim", "write_zeroes"

// Where a run of a read's data lies: `length` bytes at `offset` of the COW
// file or of the backing file. Bytes past the end of the file read as zeros.
struct ReadExtent {
  enum class Source : uint8_t { kCow, kBacking };
  Source source;
  uint64_t offset;
  uint64_t length;
};

struct Request {
  OpType op = OpType::kRead;
  // Byte range; multiples of 512 within the device (ignored for kFlush).
  uint64_t offset = 0;
  uint64_t length = 0;
  // kRead: filled with the data; kWrite: the data to write. Owned by the
  // caller and untouched after `done` runs. Unused by the other ops.
  char* data = nullptr;
  // kRead with `data` null: instead of copying the data, the engine fills
  // this with where it lies, in order, once the read may be served (after
  // any stall), and starts reading those ranges into the page cache. The
  // caller sends them straight from the files (spliced), through
  // descriptors of its own (Volume::cow_fd()/backing_fd() reopened), which
  // is what a read does after that point: a write concurrent with the read
  // may or may not show. Only for a volume with CacheMode::kWriteback.
  std::vector<ReadExtent>* extents = nullptr;
  // kWrite: the caller has already written the data into the COW file (at
  // the volume's data offset + `offset`, through a descriptor of its own,
  // before Submit), so the engine does the rest of the write: barrier, bits,
  // stalls, answer. `data` is not used. Only for a volume with
  // CacheMode::kWriteback (VolumeHandle::WriteAndSubmit).
  bool data_written = false;
  // With data_written: the errno of the caller's failed write, or 0. The
  // request then fails with it (counted as an I/O error) and sets no bit.
  int data_errno = 0;
  // kWrite/kTrim/kWriteZeroes: durable before `done` (a flush of its own).
  bool fua = false;
  // The submitter gains from a short latency more than from a free core
  // (the NBD export's connection threads): with EngineOptions::poll_us the
  // engine polls for more work after such requests, and only after them.
  bool poll_after = false;
  // Called once with OK or the error that failed the request. Runs on the
  // engine thread: hand heavy work elsewhere. May free the Request.
  std::function<void(absl::Status)> done;
};

}  // namespace cowblk::engine

#endif  // COWBLK_SERVER_ENGINE_REQUEST_H_
