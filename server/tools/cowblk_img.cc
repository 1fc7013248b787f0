// cowblk-img: offline inspection and manipulation of UML COW files, in the
// spirit of qemu-img. See docs/cowblk-img.md.
//
// Exit codes: 0 success (check: no problem found), 1 the file is invalid
// (check found a problem, or a command met a malformed file), 2 usage error,
// 3 the operation failed for another reason (missing file, I/O error, file in
// use by another process).

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>

#include <cstdio>
#include <iostream>
#include <string>
#include <vector>

#include "CLI/CLI.hpp"
#include "absl/status/status.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "common/file_io.h"
#include "common/sector.h"
#include "common/version.h"
#include "nlohmann/json.hpp"
#include "server/cow/cow_commit.h"
#include "server/cow/cow_file.h"
#include "server/cow/cow_rebase.h"

namespace cowblk::cow {
namespace {

using nlohmann::json;

constexpr int kExitOk = 0;
constexpr int kExitInvalid = 1;
constexpr int kExitUsage = 2;
constexpr int kExitFailed = 3;

int ExitCodeFor(const absl::Status& s) {
  return s.code() == absl::StatusCode::kInvalidArgument ? kExitInvalid
                                                        : kExitFailed;
}

int Fail(const absl::Status& s) {
  std::cerr << "cowblk-img: " << s.message() << "\n";
  return ExitCodeFor(s);
}

std::string HumanBytes(uint64_t bytes) {
  static const char* kUnits[] = {"B", "KiB", "MiB", "GiB", "TiB"};
  double v = static_cast<double>(bytes);
  int u = 0;
  while (v >= 1024 && u < 4) {
    v /= 1024;
    ++u;
  }
  return u == 0 ? absl::StrFormat("%u B", bytes)
                : absl::StrFormat("%.1f %s", v, kUnits[u]);
}

// Backing file state for info/check: "ok", or why it cannot be used.
struct BackingState {
  bool ok = false;
  std::vector<std::string> problems;
};

BackingState InspectBacking(const Header& h) {
  BackingState state;
  int fd = open(h.backing_file.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) {
    state.problems.push_back(absl::StrFormat("backing file %s: %s",
                                             h.backing_file, strerror(errno)));
    return state;
  }
  auto problems = CheckBackingIdentity(h, fd);
  close(fd);
  if (!problems.ok()) {
    state.problems.push_back(std::string(problems.status().message()));
  } else {
    state.problems = *problems;
  }
  state.ok = state.problems.empty();
  return state;
}

// Sectors with the bit set whose data would lie past the end of the file.
uint64_t AllocatedPastEof(const CowFile& cow) {
  const Geometry& g = cow.geometry();
  if (cow.file_size() >= g.data_offset + g.device_size) return 0;
  const uint64_t first =
      cow.file_size() <= g.data_offset
          ? 0
          : SectorsForBytes(cow.file_size() - g.data_offset);
  uint64_t n = 0;
  for (const SectorRun& r : SplitRuns(cow.bitmap(), first, g.sectors - first)) {
    if (r.allocated) n += r.count;
  }
  return n;
}

absl::StatusOr<std::unique_ptr<CowFile>> OpenForInspection(
    const std::string& path, bool force_share) {
  OpenOptions options;
  options.lock = !force_share;
  options.open_backing = false;
  return CowFile::Open(path, options);
}

int CmdCreate(const std::string& path, const std::string& backing,
              uint32_t alignment, bool as_json) {
  CreateOptions options;
  options.backing_file = backing;
  options.alignment = alignment;
  auto cow = CowFile::Create(path, options);
  if (!cow.ok()) return Fail(cow.status());
  const Geometry& g = (*cow)->geometry();
  if (as_json) {
    std::cout << json{{"path", path},
                      {"backing_file", (*cow)->header().backing_file},
                      {"size", (*cow)->header().size},
                      {"data_offset", g.data_offset}}
                     .dump(2)
              << "\n";
  } else {
    std::cout << absl::StrFormat("Created %s over %s (%s)\n", path,
                                 (*cow)->header().backing_file,
                                 HumanBytes((*cow)->header().size));
  }
  return kExitOk;
}

int CmdInfo(const std::string& path, bool force_share, bool as_json) {
  auto opened = OpenForInspection(path, force_share);
  if (!opened.ok()) return Fail(opened.status());
  const CowFile& cow = **opened;
  const Header& h = cow.header();
  const Geometry& g = cow.geometry();
  const uint64_t allocated = cow.bitmap().CountSet();
  struct stat st;
  fstat(cow.cow_fd(), &st);
  const uint64_t disk_usage = static_cast<uint64_t>(st.st_blocks) * 512;
  BackingState backing = InspectBacking(h);
  if (as_json) {
    json j = {{"path", path},
              {"format", "uml-cow"},
              {"version", h.version},
              {"layout", LayoutName(h.layout)},
              {"big_endian", h.big_endian},
              {"backing_file", h.backing_file},
              {"backing_ok", backing.ok},
              {"backing_problems", backing.problems},
              {"size", h.size},
              {"device_size", g.device_size},
              {"sectors", g.sectors},
              {"mtime", h.mtime},
              {"sectorsize", h.sectorsize},
              {"alignment", h.alignment},
              {"cow_format", h.cow_format},
              {"header_size", g.header_size},
              {"bitmap_offset", g.bitmap_offset},
              {"bitmap_len", g.bitmap_len},
              {"data_offset", g.data_offset},
              {"allocated_sectors", allocated},
              {"allocated_bytes", allocated * kSectorSize},
              {"file_size", cow.file_size()},
              {"disk_usage", disk_usage}};
    std::cout << j.dump(2) << "\n";
    return kExitOk;
  }
  std::cout << absl::StrFormat("file:          %s\n", path)
            << absl::StrFormat("format:        UML COW %s\n", LayoutName(h.layout))
            << absl::StrFormat("backing file:  %s (%s)\n", h.backing_file,
                               backing.ok ? "ok" : backing.problems.front())
            << absl::StrFormat("size:          %u (%s), %u sectors\n", h.size,
                               HumanBytes(h.size), g.sectors)
            << absl::StrFormat("backing mtime: %u\n", h.mtime)
            << absl::StrFormat("sectorsize:    %u\n", h.sectorsize)
            << absl::StrFormat("alignment:     %u\n", h.alignment)
            << absl::StrFormat("bitmap:        offset %u, %u bytes\n",
                               g.bitmap_offset, g.bitmap_len)
            << absl::StrFormat("data offset:   %u\n", g.data_offset)
            << absl::StrFormat("allocated:     %u sectors (%s, %.1f%%)\n",
                               allocated, HumanBytes(allocated * kSectorSize),
                               100.0 * static_cast<double>(allocated) /
                                   static_cast<double>(g.sectors))
            << absl::StrFormat("disk usage:    %s\n", HumanBytes(disk_usage));
  return kExitOk;
}

// What `check --repair` fixes: a file cut short (by a copy, a full disk)
// is extended to its full length, sparse, as uml_mkcow makes it; the
// sectors whose data was lost read as zeros. A backing file that changed
// is not repaired: only the operator knows whether its content did
// (`rebase -u`). Returns what it did, or the error that stopped it.
absl::StatusOr<std::string> RepairTruncation(const CowFile& cow) {
  const Geometry& g = cow.geometry();
  const uint64_t full = g.data_offset + g.device_size;
  if (ftruncate(cow.cow_fd(), static_cast<off_t>(full)) != 0 || fdatasync(cow.cow_fd()) != 0) {
    return ErrnoStatus(errno, absl::StrCat("extend ", cow.path()));
  }
  return absl::StrFormat("%s: extended from %u to %u bytes; the lost sectors read as zeros",
                         cow.path(), cow.file_size(), full);
}

int CmdCheck(const std::string& path, bool force_share, bool repair, bool as_json) {
  std::vector<std::string> problems, repaired;
  OpenOptions for_repair;
  for_repair.writable = true;
  for_repair.open_backing = false;
  absl::StatusOr<std::unique_ptr<CowFile>> opened =
      repair ? CowFile::Open(path, for_repair) : OpenForInspection(path, force_share);
  if (!opened.ok()) {
    if (ExitCodeFor(opened.status()) != kExitInvalid) return Fail(opened.status());
    problems.push_back(std::string(opened.status().message()));
  } else {
    const CowFile& cow = **opened;
    if (uint64_t n = AllocatedPastEof(cow); n > 0) {
      std::string problem = absl::StrFormat(
          "%s: truncated: %u allocated sectors lie past the end of the file "
          "(%u bytes)", path, n, cow.file_size());
      absl::StatusOr<std::string> fixed =
          repair ? RepairTruncation(cow) : absl::StatusOr<std::string>(problem);
      if (!fixed.ok()) return Fail(fixed.status());
      (repair ? repaired : problems).push_back(*fixed);
    }
    BackingState backing = InspectBacking(cow.header());
    for (const std::string& p : backing.problems) {
      problems.push_back(repair ? p + " (not repaired: if its content is unchanged, "
                                      "`cowblk-img rebase -u` re-accepts it)"
                                : p);
    }
  }
  if (as_json) {
    json j = {{"path", path}, {"valid", problems.empty()}, {"problems", problems}};
    if (repair) j["repaired"] = repaired;
    std::cout << j.dump(2) << "\n";
  } else {
    for (const std::string& r : repaired) std::cout << "Repaired: " << r << "\n";
    if (problems.empty()) std::cout << "No problems were found on " << path << ".\n";
    for (const std::string& p : problems) std::cout << "ERROR: " << p << "\n";
  }
  return problems.empty() ? kExitOk : kExitInvalid;
}

int CmdRebase(const std::string& path, const std::string& backing, bool as_json) {
  auto rebased = RebaseUnsafe(path, backing);
  if (!rebased.ok()) return Fail(rebased.status());
  const Header& before = rebased->before;
  const Header& after = rebased->after;
  if (as_json) {
    std::cout << json{{"path", path},
                      {"backing_file", after.backing_file},
                      {"mtime", after.mtime},
                      {"old_backing_file", before.backing_file},
                      {"old_mtime", before.mtime}}
                     .dump(2)
              << "\n";
  } else {
    std::cout << absl::StrFormat("Rebased %s onto %s (mtime %u, was %s at %u)\n", path,
                                 after.backing_file, after.mtime, before.backing_file,
                                 before.mtime);
  }
  return kExitOk;
}

int CmdMap(const std::string& path, bool force_share, bool as_json) {
  auto opened = OpenForInspection(path, force_share);
  if (!opened.ok()) return Fail(opened.status());
  const CowFile& cow = **opened;
  const uint64_t sectors = cow.geometry().sectors;
  std::vector<SectorRun> runs = SplitRuns(cow.bitmap(), 0, sectors);
  if (as_json) {
    json j = json::array();
    for (const SectorRun& r : runs) {
      j.push_back({{"start", r.first * kSectorSize},
                   {"length", r.count * kSectorSize},
                   {"allocated", r.allocated},
                   {"source", r.allocated ? "cow" : "backing"}});
    }
    std::cout << j.dump(2) << "\n";
    return kExitOk;
  }
  std::cout << absl::StrFormat("%-20s %-20s %s\n", "Offset", "Length", "Source");
  for (const SectorRun& r : runs) {
    std::cout << absl::StrFormat("0x%-18x 0x%-18x %s\n", r.first * kSectorSize,
                                 r.count * kSectorSize,
                                 r.allocated ? "cow" : "backing");
  }
  return kExitOk;
}

int CmdCommit(const std::string& path, const std::string& image, bool as_json) {
  auto opened = CowFile::Open(path, OpenOptions{});
  if (!opened.ok()) return Fail(opened.status());
  auto stats = CommitToImage(**opened, image);
  if (!stats.ok()) return Fail(stats.status());
  if (as_json) {
    std::cout << json{{"path", path},
                      {"image", image},
                      {"image_size", stats->image_size},
                      {"bytes_from_cow", stats->bytes_from_cow},
                      {"bytes_written", stats->bytes_written}}
                     .dump(2)
              << "\n";
  } else {
    std::cout << absl::StrFormat(
        "Committed %s into %s: %s image, %s from the COW file\n", path, image,
        HumanBytes(stats->image_size), HumanBytes(stats->bytes_from_cow));
  }
  return kExitOk;
}

int Main(int argc, char** argv) {
  CLI::App app{"cowblk-img: inspect and manage User-Mode Linux COW files"};
  app.set_version_flag("--version", VersionLine("cowblk-img"), "Print the version and git commit");
  app.footer(
      "Exit status: 0 ok (check: no problem found), 1 the file is invalid, 2 bad usage,\n"
      "3 failed otherwise (missing file, I/O error, file in use). Manual: docs/cowblk-img.md");
  app.require_subcommand(1);
  bool as_json = false;
  app.add_flag("--json", as_json, "Print machine-readable JSON");

  std::string cow_path, backing, image;
  uint32_t alignment = kDefaultAlignment;
  bool force_share = false;

  CLI::App* create = app.add_subcommand("create", "Create a v3 COW file over a backing image");
  create->add_option("-b,--backing", backing, "Backing image (stored as an absolute path)")
      ->required();
  create->add_option("--alignment", alignment, "Header alignment (power of two)")
      ->capture_default_str();
  create->add_option("COW", cow_path, "COW file to create (must not exist)")->required();

  auto add_inspect = [&](const char* name, const char* help) {
    CLI::App* cmd = app.add_subcommand(name, help);
    cmd->add_option("COW", cow_path, "COW file")->required();
    cmd->add_flag("-U,--force-share", force_share,
                  "Do not take the read lock (inspect a file a running UML has open)");
    return cmd;
  };
  CLI::App* info = add_inspect("info", "Show header, geometry and allocation");
  CLI::App* check = add_inspect("check", "Validate header, geometry and backing file");
  bool repair = false;
  check->add_flag("-r,--repair", repair,
                  "Repair what can be: a truncated file is extended (lost sectors read as "
                  "zeros); a changed backing file is left to rebase -u")
      ->excludes("--force-share");
  CLI::App* map = add_inspect("map", "List allocated and unallocated byte ranges");

  CLI::App* commit = app.add_subcommand(
      "commit", "Merge COW and backing into a new sparse raw image (as uml_moo)");
  commit->add_option("COW", cow_path, "COW file")->required();
  commit->add_option("NEW_IMAGE", image, "Image to create (must not exist)")->required();

  CLI::App* rebase = app.add_subcommand(
      "rebase", "Record a backing file without touching data (only -u, as qemu-img rebase -u)");
  bool unsafe = false;
  rebase->add_flag("-u,--unsafe", unsafe,
                   "Required: rewrite the header's backing path and mtime only; the caller "
                   "vouches that the backing content is unchanged")
      ->required();
  rebase->add_option("-b,--backing", backing,
                     "Backing file to record (same size); default: the recorded one, "
                     "re-accepted with its current mtime");
  rebase->add_option("COW", cow_path, "COW file (not open elsewhere)")->required();

  for (CLI::App* sub : {create, info, check, map, commit, rebase}) {
    sub->add_flag("--json", as_json, "Print machine-readable JSON");
  }
  try {
    app.parse(argc, argv);
  } catch (const CLI::ParseError& e) {
    const int rc = app.exit(e);
    return rc == 0 ? kExitOk : kExitUsage;
  }
  if (*create) return CmdCreate(cow_path, backing, alignment, as_json);
  if (*info) return CmdInfo(cow_path, force_share, as_json);
  if (*check) return CmdCheck(cow_path, force_share, repair, as_json);
  if (*map) return CmdMap(cow_path, force_share, as_json);
  if (*commit) return CmdCommit(cow_path, image, as_json);
  if (*rebase) return CmdRebase(cow_path, backing, as_json);
  return kExitUsage;
}

}  // namespace
}  // namespace cowblk::cow

int main(int argc, char** argv) { return cowblk::cow::Main(argc, argv); }
