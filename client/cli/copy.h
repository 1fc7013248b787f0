// A sparse-aware copy between a Source and a Sink (a local file, a volume,
// stdout). The source says which ranges hold data and which are known to be
// zeros (file holes, unallocated ranges of a blank volume); data is read in
// pieces, and runs of zero blocks inside it are turned into Sink::Zero()
// too, which a sink may make free (a hole, or nothing on a fresh blank
// volume). So holes stay holes through file -> volume -> file.

#ifndef COWBLK_CLIENT_CLI_COPY_H_
#define COWBLK_CLIENT_CLI_COPY_H_

#include <cstdint>
#include <functional>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"

namespace cowblk::cli {

struct Extent {
  uint64_t offset = 0;
  uint64_t length = 0;
  bool data = true;  // false: reads as zeros
};

class Source {
 public:
  virtual ~Source() = default;
  virtual uint64_t size() const = 0;
  // Extents covering [0, size()) in order.
  virtual absl::StatusOr<std::vector<Extent>> Map() = 0;
  // Reads [offset, offset+length). REQUIRES: within size().
  virtual absl::Status Read(uint64_t offset, char* buf, size_t length) = 0;
};

class Sink {
 public:
  virtual ~Sink() = default;
  // Writes must start and end on multiples of this (the last one may end
  // at the source's size rounded up to it; Copy pads with zeros).
  virtual uint64_t alignment() const { return 1; }
  // Called once, first, with the number of bytes to come.
  virtual absl::Status Begin(uint64_t size) = 0;
  // `buf` may be reused once Write returns.
  virtual absl::Status Write(uint64_t offset, const char* buf, size_t length) = 0;
  // Makes [offset, offset+length) read as zeros.
  virtual absl::Status Zero(uint64_t offset, uint64_t length) = 0;
  // Everything written is complete (and durable where that means anything).
  virtual absl::Status Finish() = 0;
};

// Counted in the source's bytes: data_bytes + zero_bytes == bytes, also
// when the sink's alignment pads the last block (3 bytes into a volume are
// one 512-byte write, and count 3).
struct CopyStats {
  uint64_t bytes = 0;       // the source's size
  uint64_t data_bytes = 0;  // sent to Sink::Write
  uint64_t zero_bytes = 0;  // sent to Sink::Zero
};

// Copies all of `source` to `sink`. `progress` (may be null) sees the bytes
// done so far. Stops with CANCELLED when g_interrupted is set.
absl::StatusOr<CopyStats> Copy(Source& source, Sink& sink,
                               const std::function<void(uint64_t done)>& progress);

// Extents of a regular file from SEEK_DATA/SEEK_HOLE (one data extent where
// the file system cannot tell).
absl::StatusOr<std::vector<Extent>> MapFile(int fd, uint64_t size);

}  // namespace cowblk::cli

#endif  // COWBLK_CLIENT_CLI_COPY_H_
