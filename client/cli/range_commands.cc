// cowblk read VOLUME OFFSET [LENGTH] (to stdout) and cowblk write VOLUME
// OFFSET (from stdin). Offsets and lengths need not be sector-aligned: a
// write's partial first and last sectors are read, patched and written
// back (not atomic against other writers of those sectors).

#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <string>

#include "absl/strings/str_cat.h"
#include "client/cli/context.h"
#include "client/cli/output.h"

namespace cowblk::cli {
namespace {

constexpr uint64_t kPiece = 8 << 20;

struct RangeArgs {
  std::string volume, offset, length;
};

absl::Status WriteOut(const char* p, size_t n) {
  while (n > 0) {
    const ssize_t w = write(STDOUT_FILENO, p, n);
    if (w < 0 && errno == EINTR) continue;
    if (w < 0 && errno == EPIPE) return StdoutClosed();
    if (w < 0) return absl::InternalError(absl::StrCat("stdout: ", std::strerror(errno)));
    p += w;
    n -= static_cast<size_t>(w);
  }
  return absl::OkStatus();
}

// Fills `buf` from stdin up to `want` bytes or EOF; returns how many.
absl::StatusOr<size_t> ReadIn(char* buf, size_t want) {
  size_t got = 0;
  while (got < want) {
    const ssize_t n = read(STDIN_FILENO, buf + got, want - got);
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) return absl::InternalError(absl::StrCat("stdin: ", std::strerror(errno)));
    if (n == 0) break;
    got += static_cast<size_t>(n);
  }
  return got;
}

absl::StatusOr<std::unique_ptr<Volume>> Open(Context& ctx, const std::string& name) {
  auto client = ctx.client();
  if (!client.ok()) return client.status();
  return (*client)->OpenVolume(name);
}

absl::Status RunRead(Context& ctx, const RangeArgs& a) {
  auto offset = ParseSize(a.offset, "OFFSET");
  if (!offset.ok()) return offset.status();
  auto volume = Open(ctx, a.volume);
  if (!volume.ok()) return volume.status();
  Volume& v = **volume;
  uint64_t length = 0;
  if (a.length.empty()) {
    length = *offset < v.size() ? v.size() - *offset : 0;
  } else {
    auto l = ParseSize(a.length, "LENGTH");
    if (!l.ok()) return l.status();
    length = *l;
  }
  if (*offset > v.size() || length > v.size() - *offset) {
    return absl::OutOfRangeError(absl::StrCat("offset ", *offset, " length ", length,
                                              ": beyond the volume size ", v.size()));
  }
  const uint64_t sector = v.sector_size();
  std::string buf;
  uint64_t pos = *offset;
  const uint64_t end = *offset + length;
  while (pos < end) {
    const uint64_t from = pos / sector * sector;
    const uint64_t to =
        std::min((std::min(end, from + kPiece) + sector - 1) / sector * sector, v.size());
    buf.resize(to - from);
    if (absl::Status s = v.Read(from, buf.data(), buf.size()); !s.ok()) return s;
    const uint64_t n = std::min(end, to) - pos;
    if (absl::Status s = WriteOut(buf.data() + (pos - from), n); !s.ok()) return s;
    pos += n;
  }
  return absl::OkStatus();
}

absl::Status RunWrite(Context& ctx, const RangeArgs& a) {
  auto offset = ParseSize(a.offset, "OFFSET");
  if (!offset.ok()) return offset.status();
  uint64_t limit = UINT64_MAX;
  if (!a.length.empty()) {
    auto l = ParseSize(a.length, "--length");
    if (!l.ok()) return l.status();
    limit = *l;
  }
  auto volume = Open(ctx, a.volume);
  if (!volume.ok()) return volume.status();
  Volume& v = **volume;
  const uint64_t sector = v.sector_size();
  if (*offset > v.size()) {
    return absl::OutOfRangeError(
        absl::StrCat("offset ", *offset, ": beyond the volume size ", v.size()));
  }
  // `buf` holds bytes from the aligned position `base` on; a partial first
  // sector starts with the volume's own bytes.
  uint64_t base = *offset / sector * sector;
  std::string buf;
  if (*offset % sector != 0) {
    buf.resize(sector);
    if (absl::Status s = v.Read(base, buf.data(), sector); !s.ok()) return s;
    buf.resize(*offset - base);
  }
  uint64_t total = 0;
  bool eof = false;
  while (!eof) {
    const size_t before = buf.size();
    const size_t want = static_cast<size_t>(std::min<uint64_t>(kPiece, limit - total));
    buf.resize(before + want);
    auto got = ReadIn(buf.data() + before, want);
    if (!got.ok()) return got.status();
    buf.resize(before + *got);
    total += *got;
    eof = *got < want || total == limit;
    uint64_t whole = buf.size() / sector * sector;
    if (eof && whole < buf.size()) {
      // The last, partial sector: keep the volume's bytes after ours.
      if (base + whole + sector > v.size()) {
        return absl::OutOfRangeError(
            absl::StrCat("the input ends past the volume size ", v.size()));
      }
      std::string last(sector, '\0');
      if (absl::Status s = v.Read(base + whole, last.data(), sector); !s.ok()) return s;
      const size_t tail = buf.size() - whole;
      buf.append(last.substr(tail));
      whole = buf.size();
    }
    if (whole == 0) continue;
    if (absl::Status s = v.Write(base, buf.data(), whole); !s.ok()) return s;
    buf.erase(0, whole);
    base += whole;
  }
  if (absl::Status s = v.Flush(); !s.ok()) return s;
  if (ctx.flags.json)
    ctx.Print({{"volume", a.volume}, {"offset", *offset}, {"bytes_written", total}}, "");
  return absl::OkStatus();
}

}  // namespace

void AddRangeCommands(CLI::App& app, Context& ctx) {
  auto args = std::make_shared<RangeArgs>();
  CLI::App* read = app.add_subcommand("read", "Write a byte range of a volume to stdout");
  read->add_option("VOLUME", args->volume, "Volume name")->required();
  read->add_option("OFFSET", args->offset, "First byte (4096, 1M, ...)")->required();
  read->add_option("LENGTH", args->length, "Bytes to read; default: to the end");
  read->callback([&ctx, args] {
    ctx.what = "read " + args->volume;
    ctx.run = [&ctx, args] { return RunRead(ctx, *args); };
  });

  CLI::App* write =
      app.add_subcommand("write", "Write stdin into a volume at an offset, then flush");
  write->add_option("VOLUME", args->volume, "Volume name")->required();
  write->add_option("OFFSET", args->offset, "Where the first byte goes")->required();
  write->add_option("--length", args->length, "Write at most this many bytes of stdin");
  write->callback([&ctx, args] {
    ctx.what = "write " + args->volume;
    ctx.run = [&ctx, args] { return RunWrite(ctx, *args); };
  });
}

void AddHealthCommand(CLI::App& app, Context& ctx) {
  auto service = std::make_shared<std::string>();
  CLI::App* health = app.add_subcommand("health", "Ask the server whether it is serving");
  health->add_option("SERVICE", *service, "A service name; default: the whole server");
  health->callback([&ctx, service] {
    ctx.what = "health";
    ctx.run = [&ctx, service]() -> absl::Status {
      auto client = ctx.client();
      if (!client.ok()) return client.status();
      auto state = (*client)->Health(*service);
      if (!state.ok()) return state.status();
      ctx.Print({{"service", *service}, {"status", HealthStateName(*state)}},
                HealthStateName(*state));
      if (*state != HealthState::kServing) {
        return absl::FailedPreconditionError(
            absl::StrCat("the server is ", HealthStateName(*state)));
      }
      return absl::OkStatus();
    };
  });
}

}  // namespace cowblk::cli
