// A one-line progress bar on stderr, redrawn at most ten times a second:
//   cp  [=========>          ]  45%  123.0 MiB / 270.0 MiB  150.2 MiB/s
// Disabled, it prints nothing (stderr is not a terminal, --json, --quiet).

#ifndef COWBLK_CLIENT_CLI_PROGRESS_H_
#define COWBLK_CLIENT_CLI_PROGRESS_H_

#include <chrono>
#include <cstdint>
#include <string>

namespace cowblk::cli {

class Progress {
 public:
  // `total` 0: unknown (no bar, just the bytes and the rate).
  Progress(std::string label, uint64_t total, bool enabled);
  // Ends the line if anything was drawn.
  ~Progress();
  void Update(uint64_t done);

 private:
  void Draw(uint64_t done);

  const std::string label_;
  const uint64_t total_;
  const bool enabled_;
  const std::chrono::steady_clock::time_point start_;
  std::chrono::steady_clock::time_point last_;
  uint64_t done_ = 0;
  bool drawn_ = false;
};

}  // namespace cowblk::cli

#endif  // COWBLK_CLIENT_CLI_PROGRESS_H_
