#include "server/core/call.h"

namespace cowblk::core {

AlignedBuffer AllocateAligned(uint64_t bytes) {
  constexpr uint64_t kPage = 4096;
  return AlignedBuffer(static_cast<char*>(std::aligned_alloc(kPage, (bytes + kPage - 1) & ~(kPage - 1))));
}

char* Call::PayloadBuffer() {
  if (!buffer_) buffer_ = AllocateAligned(length);
  return buffer_.get();
}

void Call::UseString(std::string s) {
  string_ = std::move(s);
  uses_string_ = true;
}

char* Call::storage() { return uses_string_ ? string_.data() : buffer_.get(); }

const char* Call::data() const { return uses_string_ ? string_.data() : buffer_.get(); }

}  // namespace cowblk::core
