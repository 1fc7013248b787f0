#include "client/cli/copy.h"

#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>

#include "absl/strings/str_cat.h"
#include "client/cli/context.h"

namespace cowblk::cli {
namespace {

constexpr uint64_t kPiece = 8 << 20;   // read and written at once
constexpr uint64_t kZeroBlock = 4096;  // granularity of zero detection

bool AllZero(const char* p, size_t n) {
  if (n == 0) return true;
  return p[0] == 0 && std::memcmp(p, p + 1, n - 1) == 0;
}

uint64_t RoundUp(uint64_t v, uint64_t a) { return (v + a - 1) / a * a; }

}  // namespace

absl::StatusOr<std::vector<Extent>> MapFile(int fd, uint64_t size) {
  std::vector<Extent> out;
  uint64_t pos = 0;
  while (pos < size) {
    off_t data = lseek(fd, static_cast<off_t>(pos), SEEK_DATA);
    if (data < 0) {
      if (errno == ENXIO) break;  // only a hole up to the end
      if (errno == EINVAL || errno == EOPNOTSUPP) return std::vector<Extent>{{0, size, true}};
      return absl::InternalError(absl::StrCat("lseek SEEK_DATA: ", std::strerror(errno)));
    }
    off_t hole = lseek(fd, data, SEEK_HOLE);
    if (hole < 0)
      return absl::InternalError(absl::StrCat("lseek SEEK_HOLE: ", std::strerror(errno)));
    const uint64_t d = std::min<uint64_t>(static_cast<uint64_t>(data), size);
    const uint64_t h = std::min<uint64_t>(static_cast<uint64_t>(hole), size);
    if (d > pos) out.push_back({pos, d - pos, false});
    if (h > d) out.push_back({d, h - d, true});
    pos = std::max(h, d);
    if (h <= d) break;
  }
  if (pos < size) out.push_back({pos, size - pos, false});
  return out;
}

absl::StatusOr<CopyStats> Copy(Source& source, Sink& sink,
                               const std::function<void(uint64_t done)>& progress) {
  CopyStats stats;
  stats.bytes = source.size();
  const uint64_t align = sink.alignment();
  if (absl::Status s = sink.Begin(stats.bytes); !s.ok()) return s;
  auto map = source.Map();
  if (!map.ok()) return map.status();
  std::string buf(kPiece, '\0');
  const uint64_t end = RoundUp(stats.bytes, align);  // what the sink sees
  // The part of [from, from+len) inside the source: what the stats count.
  auto in_source = [&](uint64_t from, uint64_t len) {
    return std::min(from + len, stats.bytes) - std::min(from, stats.bytes);
  };

  // Zero runs are merged across pieces and extents, and sent when data
  // follows or at the end.
  uint64_t zero_from = 0, zero_len = 0;
  auto flush_zero = [&]() -> absl::Status {
    if (zero_len == 0) return absl::OkStatus();
    absl::Status s = sink.Zero(zero_from, zero_len);
    stats.zero_bytes += in_source(zero_from, zero_len);
    zero_len = 0;
    return s;
  };
  auto add_zero = [&](uint64_t off, uint64_t len) -> absl::Status {
    if (zero_len != 0 && zero_from + zero_len == off) {
      zero_len += len;
      return absl::OkStatus();
    }
    if (absl::Status s = flush_zero(); !s.ok()) return s;
    zero_from = off;
    zero_len = len;
    return absl::OkStatus();
  };

  for (const Extent& e : *map) {
    // Extents are cut to the sink's alignment: a partial block at a
    // boundary is copied as data.
    uint64_t pos = e.offset;
    const uint64_t stop = e.offset + e.length;
    while (pos < stop) {
      if (g_interrupted.load()) return absl::CancelledError("interrupted");
      const uint64_t n = std::min(kPiece, stop - pos);
      const bool aligned = pos % align == 0 && ((pos + n) % align == 0 || pos + n == stats.bytes);
      if (!e.data && aligned) {
        if (absl::Status s = add_zero(pos, std::min(RoundUp(pos + n, align), end) - pos); !s.ok()) {
          return s;
        }
        pos += n;
        if (progress) progress(pos);
        continue;
      }
      // Data (or an unaligned hole fragment): read, then split into zero
      // and non-zero runs of whole blocks. Reads start aligned.
      const uint64_t from = pos / align * align;
      const uint64_t to = std::min(RoundUp(pos + n, align), end);
      const uint64_t valid = std::min(to, stats.bytes) - from;
      std::memset(buf.data(), 0, to - from);
      if (absl::Status s = source.Read(from, buf.data(), valid); !s.ok()) return s;
      uint64_t run = from;
      while (run < to) {
        const uint64_t block = std::min(RoundUp(run + 1, kZeroBlock), to) - run;
        const char* p = buf.data() + (run - from);
        if (AllZero(p, block)) {
          if (absl::Status s = add_zero(run, block); !s.ok()) return s;
          run += block;
          continue;
        }
        uint64_t data_end = run + block;
        while (data_end < to) {
          const uint64_t b = std::min(data_end + kZeroBlock, to) - data_end;
          if (AllZero(buf.data() + (data_end - from), b)) break;
          data_end += b;
        }
        if (absl::Status s = flush_zero(); !s.ok()) return s;
        if (absl::Status s = sink.Write(run, p, data_end - run); !s.ok()) return s;
        stats.data_bytes += in_source(run, data_end - run);
        run = data_end;
      }
      pos = std::max(pos + n, to);
      if (progress) progress(std::min(pos, stats.bytes));
    }
  }
  if (absl::Status s = flush_zero(); !s.ok()) return s;
  if (absl::Status s = sink.Finish(); !s.ok()) return s;
  return stats;
}

}  // namespace cowblk::cli
