// What `cowblk cp`, `image upload` and `image download` say of a Copy: the
// bytes (data and zeros, so a sparse copy shows), the time and the rate, as
// a line's parts and as --json fields.

#ifndef COWBLK_CLIENT_CLI_COPY_SUMMARY_H_
#define COWBLK_CLIENT_CLI_COPY_SUMMARY_H_

#include <chrono>
#include <string>

#include "client/cli/copy.h"
#include "nlohmann/json.hpp"

namespace cowblk::cli {

struct CopySummary {
  CopyStats stats;
  double seconds = 0;

  // Times a copy: `seconds` from `start` to now.
  static CopySummary Since(const CopyStats& stats, std::chrono::steady_clock::time_point start);
  // "1 GiB (3 MiB data, 1021 MiB zeros)".
  std::string Bytes() const;
  // "in 0.52 s (1.9 GiB/s)".
  std::string Time() const;
  // {"bytes", "data_bytes", "zero_bytes", "seconds", "bytes_per_second"} added to `j`.
  void AddTo(nlohmann::json& j) const;
};

}  // namespace cowblk::cli

#endif  // COWBLK_CLIENT_CLI_COPY_SUMMARY_H_
