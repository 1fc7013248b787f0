// The status of a request refused for want of memory (an allocation at the
// request edge failed): RESOURCE_EXHAUSTED, marked so that a transport with
// errno-style answers can tell it from a full disk (NBD: ENOMEM, not
// ENOSPC).

#ifndef COWBLK_SERVER_CORE_OUT_OF_MEMORY_H_
#define COWBLK_SERVER_CORE_OUT_OF_MEMORY_H_


#include "absl/status/status.h"
#include "absl/strings/cord.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/string_view.h"

namespace cowblk::core {

inline constexpr char kOutOfMemoryPayload[] = "cowblk/out-of-memory";

// "out of memory for `what`".
inline absl::Status OutOfMemory(absl::string_view what) {
  absl::Status s = absl::ResourceExhaustedError(absl::StrCat("out of memory for ", what));
  s.SetPayload(kOutOfMemoryPayload, absl::Cord());
  return s;
}

inline bool IsOutOfMemory(const absl::Status& s) {
  return s.code() == absl::StatusCode::kResourceExhausted &&
         s.GetPayload(kOutOfMemoryPayload).has_value();
}

}  // namespace cowblk::core

#endif  // COWBLK_SERVER_CORE_OUT_OF_MEMORY_H_
