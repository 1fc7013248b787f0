// What the header of a volume that cannot be served still says: its size
// and backing path, read from the COW file's header alone (no bitmap, no
// backing file, no lock), so that a volume in VOLUME_STATE_ERROR is listed
// with its real size and image rather than 0 bytes and none.
//
// Thread-safety: a pure function of the file; any thread.

#ifndef COWBLK_SERVER_STORE_HEADER_FACTS_H_
#define COWBLK_SERVER_STORE_HEADER_FACTS_H_

#include <cstdint>
#include <string>

#include "absl/status/statusor.h"

namespace cowblk::store {

struct HeaderFacts {
  uint64_t size_bytes = 0;  // the device size (sectors * 512)
  std::string backing;      // the backing path as stored
};

// Reads and validates the header of the COW file `path` (a regular file,
// opened without following a symlink and without blocking). Its errors are
// the header's (InvalidArgument) or the file's.
absl::StatusOr<HeaderFacts> ReadHeaderFacts(const std::string& path);

}  // namespace cowblk::store

#endif  // COWBLK_SERVER_STORE_HEADER_FACTS_H_
