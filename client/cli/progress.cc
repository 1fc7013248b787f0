#include "client/cli/progress.h"

#include <cstdio>

#include "client/cli/output.h"

namespace cowblk::cli {

Progress::Progress(std::string label, uint64_t total, bool enabled)
    : label_(std::move(label)),
      total_(total),
      enabled_(enabled),
      start_(std::chrono::steady_clock::now()),
      last_(start_) {}

Progress::~Progress() {
  if (!enabled_) return;
  Draw(done_);
  std::fputc('\n', stderr);
}

void Progress::Update(uint64_t done) {
  done_ = done;
  if (!enabled_) return;
  const auto now = std::chrono::steady_clock::now();
  if (drawn_ && now - last_ < std::chrono::milliseconds(100)) return;
  last_ = now;
  Draw(done);
}

void Progress::Draw(uint64_t done) {
  drawn_ = true;
  const double secs =
      std::chrono::duration<double>(std::chrono::steady_clock::now() - start_).count();
  const std::string rate =
      secs > 0 ? FormatSize(static_cast<uint64_t>(static_cast<double>(done) / secs)) + "/s" : "";
  if (total_ == 0) {
    std::fprintf(stderr, "\r%s  %s  %s\033[K", label_.c_str(), FormatSize(done).c_str(),
                 rate.c_str());
  } else {
    constexpr int kWidth = 30;
    const double frac = done >= total_ ? 1.0 : static_cast<double>(done) / total_;
    const int fill = static_cast<int>(frac * kWidth);
    std::string bar(kWidth, ' ');
    for (int i = 0; i < fill; ++i) bar[i] = '=';
    if (fill < kWidth) bar[fill] = '>';
    std::fprintf(stderr, "\r%s  [%s] %3d%%  %s / %s  %s\033[K", label_.c_str(), bar.c_str(),
                 static_cast<int>(frac * 100), FormatSize(done).c_str(), FormatSize(total_).c_str(),
                 rate.c_str());
  }
  std::fflush(stderr);
}

}  // namespace cowblk::cli
