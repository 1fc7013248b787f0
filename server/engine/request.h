// A block request as the engine sees it. The transport (gRPC service, tests)
// fills one in and hands it to Engine::Submit; the engine calls `done`
// exactly once, on the engine thread, with the request's single status.

#ifndef COWBLK_SERVER_ENGINE_REQUEST_H_
#define COWBLK_SERVER_ENGINE_REQUEST_H_

#include <cstdint>
#include <functional>

#include "absl/status/status.h"

namespace cowblk::engine {

enum class OpType { kRead = 0, kWrite, kFlush, kTrim, kWriteZeroes };
inline constexpr int kOpTypeCount = 5;
const char* OpTypeName(OpType op);  // "read", "write", "flush", "trim", "write_zeroes"

struct Request {
  OpType op = OpType::kRead;
  // Byte range; multiples of 512 within the device (ignored for kFlush).
  uint64_t offset = 0;
  uint64_t length = 0;
  // kRead: filled with the data; kWrite: the data to write. Owned by the
  // caller and untouched after `done` runs. Unused by the other ops.
  char* data = nullptr;
  // kWrite/kTrim/kWriteZeroes: durable before `done` (a flush of its own).
  bool fua = false;
  // Called once with OK or the error that failed the request. Runs on the
  // engine thread: hand heavy work elsewhere. May free the Request.
  std::function<void(absl::Status)> done;
};

}  // namespace cowblk::engine

#endif  // COWBLK_SERVER_ENGINE_REQUEST_H_
