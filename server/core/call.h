// One request in a Pipeline (pipeline.h), from the moment a transport has
// decoded it to the moment the transport is done with its answer. The
// transport fills in the public fields, may give it a payload, and hands it
// to Pipeline::Submit (or Refuse); once answered it reads status() and the
// data, sends them its own way, and calls Pipeline::Finish.
//
// Storage: a read's data and a write's payload live in the call, either in
// a page-aligned buffer of the pipeline's (not zeroed: the engine fills
// every byte of a read) or in a string the transport handed over (a
// protobuf field), whichever the transport chose.
//
// Thread-safety: a call is touched by one thread at a time: the transport's
// receiving thread until Submit, the engine until it is answered, then the
// thread the answer was handed to.

#ifndef COWBLK_SERVER_CORE_CALL_H_
#define COWBLK_SERVER_CORE_CALL_H_

#include <cstdint>
#include <cstdlib>
#include <list>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "server/engine/request.h"

namespace cowblk::core {

class Pipeline;

// Memory from std::aligned_alloc, released with std::free (so that it can
// be handed to an owner that frees it so, a gRPC slice for one).
struct FreeDeleter {
  void operator()(char* p) const { std::free(p); }
};
using AlignedBuffer = std::unique_ptr<char, FreeDeleter>;
// `bytes` rounded up to whole pages, page-aligned, not zeroed; null when
// out of memory. Page-aligned because the page cache copies into it much
// faster than into a heap string, and O_DIRECT needs no bounce buffer.
AlignedBuffer AllocateAligned(uint64_t bytes);

class Call {
 public:
  // ---- The request, as the transport decoded it ----

  // The transport's own id for the request (a Session id, an NBD cookie):
  // echoed in logs, otherwise opaque.
  uint64_t tag = 0;
  // Unset while the transport could not tell the operation (it refuses
  // such a call).
  std::optional<engine::OpType> op;
  uint64_t offset = 0;
  // Reads, trims, write-zeroes: bytes; writes: the payload's size.
  uint64_t length = 0;
  // Writes, trims, write-zeroes: durable before the answer.
  bool fua = false;
  // Write-zeroes: the range stays allocated (NBD_CMD_FLAG_NO_HOLE).
  bool no_hole = false;

  // A page-aligned buffer of `length` bytes for a write's payload (the
  // transport receives into it); null when out of memory.
  char* PayloadBuffer();
  // The read's destination or the write's payload is `s` (a write's
  // `length` is then s.size(); a read resizes it to `length`).
  void UseString(std::string s);

  // ---- The answer ----

  // OK, or why the request failed.
  const absl::Status& status() const { return status_; }
  // Answered OK without copying: the data lies in the volume's files
  // (Pipeline::files()) at extents(), in order.
  bool located() const { return located_; }
  const std::vector<engine::ReadExtent>& extents() const { return extents_; }
  // A read answered OK and not located: its `length` bytes.
  const char* data() const;
  // The aligned buffer that holds a read's data, handed over: the caller
  // frees it with std::free. REQUIRES: data() comes from the buffer (not
  // from UseString).
  char* ReleaseBuffer() { return buffer_.release(); }
  // The string given by UseString (with a read's data), handed back.
  std::string TakeString() { return std::move(string_); }

 private:
  friend class Pipeline;

  // Where a read goes, or a write comes from.
  char* storage();

  absl::Status status_;
  AlignedBuffer buffer_;
  std::string string_;
  bool uses_string_ = false;
  bool located_ = false;
  std::vector<engine::ReadExtent> extents_;
  uint64_t window_bytes_ = 0;  // what it counts against the pipeline's max_bytes
  uint64_t budget_bytes_ = 0;  // what it took from the server's Budget
  engine::Request request_;
  std::list<Call>::iterator self_;  // in Pipeline::calls_
};

}  // namespace cowblk::core

#endif  // COWBLK_SERVER_CORE_CALL_H_
