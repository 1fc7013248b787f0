#include "tests/integration/pass_writers.h"

#include <fcntl.h>
#include <unistd.h>

#include <atomic>
#include <cstdio>
#include <thread>

namespace cowblk::testing {

uint64_t PassWriters::OffsetOf(int w, int k) const {
  // Spread over the whole volume, so a copy that runs while the writers do
  // reads blocks of each writer early and late; odd writers off the start
  // of their stride, so blocks do not all share the same place in a chunk.
  const uint64_t stride = volume_size_ / static_cast<uint64_t>(writers_ * blocks_each_);
  return static_cast<uint64_t>(k * writers_ + w) * stride + static_cast<uint64_t>(w % 2) * kBlock;
}

std::string PassWriters::BlockPattern(int w, int p, int k) {
  std::string out;
  for (int s = 0; s < static_cast<int>(kBlock / 512); ++s) {
    char head[64];
    const int n = snprintf(head, sizeof head, "w=%d p=%d k=%d s=%d|", w, p, k, s);
    std::string sector;
    while (sector.size() < 512) sector.append(head, static_cast<size_t>(n));
    sector.resize(512);
    out += sector;
  }
  return out;
}

bool PassWriters::Run(const WriteFn& write, const std::function<bool()>& commit) {
  times_.assign(static_cast<size_t>(writers_), {});
  std::atomic<uint64_t> clock{1};
  std::atomic<int> past_two{0};
  std::atomic<bool> committed{false};
  std::atomic<bool> failed{false};
  std::vector<std::thread> threads;
  for (int w = 0; w < writers_; ++w) {
    threads.emplace_back([&, w] {
      for (int p = 1;; ++p) {
        auto& pass = times_[static_cast<size_t>(w)].emplace_back(static_cast<size_t>(blocks_each_));
        const bool last = committed.load();
        for (int k = 0; k < blocks_each_; ++k) {
          Times& t = pass[static_cast<size_t>(k)];
          t.start = clock.fetch_add(1);
          if (!write(w, OffsetOf(w, k), BlockPattern(w, p, k))) failed = true;
          t.ack = clock.fetch_add(1);
          if (failed) break;
        }
        if (p == 2) {
          ++past_two;
          past_two.notify_all();
        }
        if (failed || (last && p > 2)) return;
      }
    });
  }
  for (int n = past_two.load(); n < writers_ && !failed; n = past_two.load()) past_two.wait(n);
  commit_start_ = clock.fetch_add(1);
  const bool ok = !failed && commit();
  commit_end_ = clock.fetch_add(1);
  committed = true;
  for (auto& t : threads) t.join();
  return ok && !failed;
}

std::string PassWriters::Check(const std::string& image_path) const {
  const int fd = open(image_path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) return "cannot open " + image_path;
  // T must lie in (lo, hi).
  uint64_t lo = commit_start_, hi = commit_end_;
  std::string lo_why = "the commit was called", hi_why = "it returned";
  std::string problems;
  std::string block(kBlock, '\0');
  const std::string zeros(kBlock, '\0');
  for (int w = 0; w < writers_; ++w) {
    const auto& passes = times_[static_cast<size_t>(w)];
    for (int k = 0; k < blocks_each_; ++k) {
      const std::string where = "writer " + std::to_string(w) + " block " + std::to_string(k);
      if (pread(fd, block.data(), kBlock, static_cast<off_t>(OffsetOf(w, k))) !=
          static_cast<ssize_t>(kBlock)) {
        problems += where + ": short read of the image; ";
        continue;
      }
      int p = block == zeros ? 0 : -1;  // 0: never written
      for (int q = 1; p < 0 && q <= static_cast<int>(passes.size()); ++q) {
        if (block == BlockPattern(w, q, k)) p = q;
      }
      if (p < 0) {
        problems += where + " holds no single write: " + block.substr(0, 40) + "; ";
        continue;
      }
      const auto ku = static_cast<size_t>(k);
      if (p > 0 && passes[static_cast<size_t>(p - 1)][ku].start > lo) {
        lo = passes[static_cast<size_t>(p - 1)][ku].start;
        lo_why = where + " shows pass " + std::to_string(p) + ", started at " + std::to_string(lo);
      }
      if (p < static_cast<int>(passes.size()) && passes[static_cast<size_t>(p)][ku].ack < hi) {
        hi = passes[static_cast<size_t>(p)][ku].ack;
        hi_why = where + " lacks pass " + std::to_string(p + 1) + ", acknowledged at " +
                 std::to_string(hi);
      }
    }
  }
  close(fd);
  if (lo >= hi) {
    problems += "no single moment fits the image: " + lo_why + ", but " + hi_why +
                " (the commit ran from " + std::to_string(commit_start_) + " to " +
                std::to_string(commit_end_) + ")";
  }
  return problems;
}

}  // namespace cowblk::testing
