// Random 64-bit identifiers in hex, for temporary file names and epochs:
// unique enough that two servers or two runs never pick the same one.

#ifndef COWBLK_SERVER_STORE_RANDOM_ID_H_
#define COWBLK_SERVER_STORE_RANDOM_ID_H_

#include <random>
#include <string>

#include "absl/strings/str_format.h"

namespace cowblk::store {

// 16 hex digits. Thread-safe (one generator per thread).
inline std::string RandomHexId() {
  static thread_local std::mt19937_64 rng(std::random_device{}());
  return absl::StrFormat("%016x", rng());
}

}  // namespace cowblk::store

#endif  // COWBLK_SERVER_STORE_RANDOM_ID_H_
