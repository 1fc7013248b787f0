// The one check of a block request's byte range, shared by everyone who
// checks one: libcowblk before it sends, the server's request pipeline
// before the engine, and the engine itself (its last line of defence for
// callers inside the server). Header-only: libcowblk links nothing of
// `common` but its headers.
//
// Every failure names the field, as the API promises: INVALID_ARGUMENT for
// an offset or length that is not a multiple of 512, an empty range where
// one is not allowed, or a transfer above the per-request limit;
// OUT_OF_RANGE for a range that ends past the volume's size (overflow
// included).

#ifndef COWBLK_COMMON_BLOCK_RANGE_H_
#define COWBLK_COMMON_BLOCK_RANGE_H_

#include <cstdint>

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"
#include "common/sector.h"

namespace cowblk {

// The largest read or write one request may carry (a multiple of 512): what
// the server allocates for one request at most, and what fits one SQE.
inline constexpr uint64_t kMaxTransferBytes = uint64_t{32} << 20;

struct RangeRules {
  // A zero-length range is valid (libcowblk answers it at once, as pread(2)
  // of 0 bytes); otherwise INVALID_ARGUMENT.
  bool allow_empty = false;
  // Longest valid range; 0: no limit (trims and write-zeroes move no data).
  uint64_t max_length = 0;
};

// The rules for a read or a write on the server: at least one sector, at
// most kMaxTransferBytes.
inline constexpr RangeRules kTransferRules{.allow_empty = false, .max_length = kMaxTransferBytes};
// The rules for a trim or write-zeroes on the server: at least one sector.
inline constexpr RangeRules kExtentRules{.allow_empty = false, .max_length = 0};

// OK when [offset, offset + length) is a valid request range on a volume of
// `size` bytes under `rules`; otherwise the status described above.
inline absl::Status CheckBlockRange(uint64_t offset, uint64_t length, uint64_t size,
                                    const RangeRules& rules) {
  if (!IsSectorAligned(offset)) {
    return absl::InvalidArgumentError(
        absl::StrCat("offset: ", offset, " is not a multiple of ", kSectorSize));
  }
  if (!IsSectorAligned(length)) {
    return absl::InvalidArgumentError(
        absl::StrCat("length: ", length, " is not a multiple of ", kSectorSize));
  }
  if (length == 0 && !rules.allow_empty) {
    return absl::InvalidArgumentError("length: 0 (a request covers at least one sector)");
  }
  if (rules.max_length != 0 && length > rules.max_length) {
    return absl::InvalidArgumentError(absl::StrCat("length: ", length, " is above the limit of ",
                                                   rules.max_length, " per request"));
  }
  uint64_t end = 0;
  if (!CheckedAdd(offset, length, &end) || end > size) {
    return absl::OutOfRangeError(absl::StrCat("offset ", offset, " length ", length,
                                              ": beyond the volume size ", size));
  }
  return absl::OkStatus();
}

}  // namespace cowblk

#endif  // COWBLK_COMMON_BLOCK_RANGE_H_
