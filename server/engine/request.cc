#include "server/engine/request.h"

namespace cowblk::engine {

const char* OpTypeName(OpType op) {
  static const char* kNames[] = {"read", "write", "flush", "trim", "write_zeroes"};
  return kNames[static_cast<int>(op)];
}

Request Request::Of(OpType op, uint64_t offset, uint64_t length, char* data, bool fua) {
  Request r;
  r.offset = offset;
  r.length = length;
  switch (op) {
    case OpType::kRead:
      r.kind = Read{data};
      break;
    case OpType::kWrite:
      r.kind = Write{data, fua};
      break;
    case OpType::kFlush:
      r.kind = Flush{};
      break;
    case OpType::kTrim:
      r.kind = Trim{fua};
      break;
    case OpType::kWriteZeroes:
      r.kind = WriteZeroes{fua};
      break;
  }
  return r;
}

OpType Request::op() const {
  // The order of Kind's alternatives.
  static constexpr OpType kOps[] = {OpType::kRead,  OpType::kRead, OpType::kWrite,
                                    OpType::kWrite, OpType::kFlush, OpType::kTrim,
                                    OpType::kWriteZeroes};
  static_assert(std::size(kOps) == std::variant_size_v<Kind>);
  return kOps[kind.index()];
}

bool Request::fua() const {
  return std::visit(
      [](const auto& k) {
        if constexpr (requires { k.fua; }) {
          return k.fua;
        } else {
          return false;
        }
      },
      kind);
}

}  // namespace cowblk::engine
