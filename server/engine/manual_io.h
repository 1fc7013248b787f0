// ManualIo: an IoBackend whose operations wait until a test releases them,
// one by one and in any order. A released operation runs for real, with the
// plain syscall on the real file, unless the test injects a result (an errno
// or a short transfer). Every write and fdatasync that reached the "disk" is
// logged, which is what the crash-state tests replay.
//
// Thread-safety: single-threaded, like the engine that drives it.

#ifndef COWBLK_SERVER_ENGINE_MANUAL_IO_H_
#define COWBLK_SERVER_ENGINE_MANUAL_IO_H_

#include <cstdint>
#include <deque>
#include <functional>
#include <optional>
#include <string>
#include <vector>

#include "server/engine/io.h"

namespace cowblk::engine {

class ManualIo : public IoBackend {
 public:
  explicit ManualIo(IoSink* sink) : sink_(sink) {}

  void Submit(const IoOp& op) override {
    queued_.push_back(op);
    issued_at_.push_back(log_.size());
  }
  size_t in_flight() const override { return queued_.size(); }

  // The operations waiting for release, oldest first.
  const std::deque<IoOp>& queued() const { return queued_; }
  // Index of the oldest queued op matching `pred`, or -1.
  int Find(const std::function<bool(const IoOp&)>& pred) const;
  int FindOpcode(IoOpcode op) const {
    return Find([op](const IoOp& o) { return o.opcode == op; });
  }
  // Runs queued op `index` (or completes it with `forced_result` without
  // touching the file) and delivers the completion. May queue new ops.
  void Release(size_t index, std::optional<int32_t> forced_result = {});
  // Runs a read or write of queued op `index` for only its first `bytes`
  // bytes, as a short transfer by the kernel would.
  void ReleasePartial(size_t index, uint64_t bytes);
  // Releases the oldest op until none is left; returns how many ran.
  size_t ReleaseAll();

  // A write or fdatasync that completed, in completion order.
  struct LoggedOp {
    IoOpcode opcode;
    int fd;
    uint64_t offset;
    std::string data;  // bytes written (empty for fdatasync / punch)
    uint64_t len;
    size_t issued_at;  // log().size() when the op was submitted
  };
  const std::vector<LoggedOp>& log() const { return log_; }
  void ClearLog() { log_.clear(); }

 private:
  IoSink* sink_;
  std::deque<IoOp> queued_;
  std::deque<size_t> issued_at_;  // parallel to queued_
  std::vector<LoggedOp> log_;
};

}  // namespace cowblk::engine

#endif  // COWBLK_SERVER_ENGINE_MANUAL_IO_H_
