#include "server/engine/manual_io.h"

#include <cerrno>

namespace cowblk::engine {

const char* IoOpcodeName(IoOpcode op) {
  switch (op) {
    case IoOpcode::kRead:
      return "read";
    case IoOpcode::kWrite:
      return "write";
    case IoOpcode::kFdatasync:
      return "fdatasync";
    case IoOpcode::kPunchHole:
      return "punch";
    case IoOpcode::kZeroRange:
      return "zero_range";
    case IoOpcode::kTimeout:
      return "timeout";
    case IoOpcode::kTimeoutRemove:
      return "timeout_remove";
  }
  return "?";
}

int ManualIo::Find(const std::function<bool(const IoOp&)>& pred) const {
  for (size_t i = 0; i < queued_.size(); ++i) {
    if (pred(queued_[i])) return static_cast<int>(i);
  }
  return -1;
}

void ManualIo::Release(size_t index, std::optional<int32_t> forced_result) {
  const IoOp op = queued_.at(index);
  const size_t issued_at = issued_at_.at(index);
  queued_.erase(queued_.begin() + static_cast<std::ptrdiff_t>(index));
  issued_at_.erase(issued_at_.begin() + static_cast<std::ptrdiff_t>(index));
  int32_t res = 0;
  if (forced_result.has_value()) {
    res = *forced_result;
  } else {
    switch (op.opcode) {
      case IoOpcode::kTimeout:  // the test decides when the time is up
        break;
      case IoOpcode::kTimeoutRemove: {
        const int target = Find([&op](const IoOp& o) {
          return o.opcode == IoOpcode::kTimeout && o.user_data == op.offset;
        });
        if (target < 0) {
          res = -ENOENT;
          break;
        }
        const uint64_t timer = queued_[static_cast<size_t>(target)].user_data;
        queued_.erase(queued_.begin() + target);
        issued_at_.erase(issued_at_.begin() + target);
        sink_->OnIoComplete(timer, -ECANCELED);
        break;
      }
      default:
        res = RunSyncIo(op);
    }
  }
  if (res >= 0 && (op.opcode == IoOpcode::kWrite || op.opcode == IoOpcode::kFdatasync ||
                   op.opcode == IoOpcode::kPunchHole ||
                   op.opcode == IoOpcode::kZeroRange)) {
    LoggedOp entry{op.opcode, op.fd, op.offset, {}, op.len, issued_at};
    if (op.opcode == IoOpcode::kWrite) {
      entry.data.assign(static_cast<const char*>(op.buf), static_cast<size_t>(res));
      entry.len = static_cast<uint64_t>(res);
    }
    log_.push_back(std::move(entry));
  }
  sink_->OnIoComplete(op.user_data, res);
}

void ManualIo::ReleasePartial(size_t index, uint64_t bytes) {
  if (bytes < queued_.at(index).len) queued_[index].len = bytes;
  Release(index);
}

size_t ManualIo::ReleaseAll() {
  size_t n = 0;
  while (!queued_.empty()) {
    Release(0);
    ++n;
  }
  return n;
}

}  // namespace cowblk::engine
