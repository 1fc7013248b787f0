// A block request as the engine sees it. A caller (the server's request
// pipeline, tests, benchmarks) fills one in and hands it to Engine::Submit;
// the engine calls `done` exactly once, on the engine thread, with the
// request's single status.
//
// What a request asks for is its kind, one of the types of Request::Kind:
// each kind carries exactly the fields it uses, so there is no mode to
// describe in prose. Two kinds exist for callers that move data themselves
// (the pipeline asks for them as capabilities of a transport):
//  - LocateRead: instead of copying, the engine says where the data lies
//    (ReadExtents) once the read may be served, and the caller sends it
//    from the files (zero-copy);
//  - WrittenWrite: the caller has already written the data into the COW
//    file, and the engine does the rest of a write (barrier, bits, answer).

#ifndef COWBLK_SERVER_ENGINE_REQUEST_H_
#define COWBLK_SERVER_ENGINE_REQUEST_H_

#include <cstdint>
#include <functional>
#include <variant>
#include <vector>

#include "absl/status/status.h"
#include "server/engine/batch_end.h"

namespace cowblk::engine {

// What a request does, for statistics, metrics labels and logs.
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

// ---- The kinds of request (Request::kind) ----

// Reads `length` bytes into `into` (owned by the caller, untouched after
// `done` runs).
struct Read {
  char* into = nullptr;
};
// A read that copies nothing: once it may be served (after any stall),
// fills `extents` with where the data lies, in order, and starts reading
// those ranges into the page cache. The caller sends them straight from
// the files, through descriptors of its own, which is what a read does
// after that point: a write concurrent with the read may or may not show.
// Only for a volume with CacheMode::kWriteback.
struct LocateRead {
  std::vector<ReadExtent>* extents = nullptr;
};
// Writes `length` bytes from `from` (owned by the caller, untouched after
// `done` runs).
struct Write {
  const char* from = nullptr;
  bool fua = false;  // durable before `done`
};
// The caller has already written the data into the COW file (at the
// volume's data offset + `offset`, through a descriptor of its own,
// before Submit), or failed to with `write_errno` (the request then fails
// with it, counted as an I/O error, and sets no bit). Only for a volume
// with CacheMode::kWriteback.
struct WrittenWrite {
  int write_errno = 0;
  bool fua = false;
};
// Makes every write acknowledged before it durable. `offset` and `length`
// are ignored.
struct Flush {};
// Punch a hole and set the bits: the range reads as zeros afterwards.
struct Trim {
  bool fua = false;
};
// Without `no_hole`, as Trim; with it (NBD_CMD_FLAG_NO_HOLE), the range is
// zeroed and stays allocated (fallocate ZERO_RANGE; a hole where the file
// system has no ZERO_RANGE), then the bits are set.
struct WriteZeroes {
  bool fua = false;
  bool no_hole = false;
};

struct Request {
  using Kind = std::variant<Read, LocateRead, Write, WrittenWrite, Flush, Trim, WriteZeroes>;

  // A plain request of `op` over `data` (reads into it, writes from it;
  // unused by the other ops). For callers that pick the op at run time.
  static Request Of(OpType op, uint64_t offset, uint64_t length, char* data, bool fua = false);

  Kind kind;
  // Byte range; multiples of 512 within the volume (ignored by Flush).
  uint64_t offset = 0;
  uint64_t length = 0;
  // Called once with OK or the error that failed the request. Runs on the
  // engine thread: hand heavy work elsewhere. May free the Request.
  std::function<void(absl::Status)> done;
  // Optional: told at the end of the batch of completions in which `done`
  // ran (batch_end.h).
  BatchEndListener* batch_end = nullptr;

  OpType op() const;
  // Writes of any kind, trims and write-zeroes that must be durable before
  // `done`.
  bool fua() const;
  // True for the kinds that change data (and so may set bits).
  bool changes_data() const { return op() != OpType::kRead && op() != OpType::kFlush; }
};

}  // namespace cowblk::engine

#endif  // COWBLK_SERVER_ENGINE_REQUEST_H_
