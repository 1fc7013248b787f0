// engine_bench: the io_uring engine on one COW volume, with no transport in
// front of it. Each workload opens a volume on an Engine, keeps a fixed
// number of requests in flight for a fixed time and reports IOPS, MiB/s,
// latency percentiles and, for writes, the fdatasync calls and bitmap block
// writes each write cost (from VolumeStats).
//
// How the queue is kept full, and what `--submit=inline` changes: runner.h.
//
// Files in --dir: backing.img (the image, pseudo-random data), full.cow
// (every sector allocated: COW reads and rewrites), empty.cow (nothing
// allocated: backing reads) and first.cow (created afresh for each
// first-write run, which ends early once every block was written once).
// --keep leaves backing.img and full.cow for the next run to reuse.
//
// --metrics: `on` (cowblkd's default) times every request into the latency
// histograms and has a thread scrape the EngineCollector (Collect plus text
// serialization, as a Prometheus scrape does) every --scrape-interval; `off`
// does neither; `both` runs each workload four times, off-on-on-off, and
// prints the on/off ratio of the mean IOPS (bench/RESULTS.md, "Metrics on vs
// off").

#include <fcntl.h>
#include <fnmatch.h>
#include <linux/magic.h>
#include <sys/stat.h>
#include <sys/vfs.h>
#include <unistd.h>

#include <prometheus/text_serializer.h>

#include <algorithm>
#include <chrono>
#include <condition_variable>
#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <iostream>
#include <memory>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include "CLI/CLI.hpp"
#include "absl/status/status.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/strings/str_split.h"
#include "bench/runner.h"
#include "common/file_io.h"
#include "common/sector.h"
#include "nlohmann/json.hpp"
#include "server/cow/cow_file.h"
#include "server/engine/engine.h"
#include "server/metrics/engine_collector.h"

namespace cowblk::bench {
namespace {

using engine::CacheMode;
using engine::Durability;
using engine::Engine;
using engine::EngineOptions;
using engine::OpType;
using engine::Volume;
using engine::VolumeOptions;
using nlohmann::json;

struct Config {
  std::string dir;
  uint64_t size = 1ULL << 30;
  double seconds = 5;
  CacheMode cache = CacheMode::kWriteback;
  bool keep = false;
  bool inline_submit = false;
  std::string metrics = "on";  // on, off or both
  double scrape_interval = 1;
  uint64_t seed = 1;
  std::string backing, full, empty, first;  // paths in dir
};

const char* FsName(const std::string& dir, bool* is_tmpfs) {
  struct statfs fs;
  *is_tmpfs = false;
  if (statfs(dir.c_str(), &fs) != 0) return "unknown";
  switch (static_cast<unsigned long>(fs.f_type)) {
    case EXT4_SUPER_MAGIC: return "ext4";
    case XFS_SUPER_MAGIC: return "xfs";
    case BTRFS_SUPER_MAGIC: return "btrfs";
    case TMPFS_MAGIC: *is_tmpfs = true; return "tmpfs";
    case OVERLAYFS_SUPER_MAGIC: return "overlayfs";
    default: return "other";
  }
}

absl::Status SyncDir(const std::string& dir) {
  int fd = open(dir.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (fd < 0) return ErrnoStatus(errno, absl::StrCat("open ", dir));
  const int rc = syncfs(fd);
  const int err = errno;
  close(fd);
  return rc == 0 ? absl::OkStatus() : ErrnoStatus(err, absl::StrCat("syncfs ", dir));
}

// Writes `size` bytes of pseudo-random data, so backing reads move real data.
absl::Status MakeBacking(const std::string& path, uint64_t size, uint64_t seed) {
  unlink(path.c_str());
  int fd = open(path.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0644);
  if (fd < 0) return ErrnoStatus(errno, absl::StrCat("create ", path));
  std::vector<char> buf(1 << 20);
  absl::Status s;
  for (uint64_t off = 0; off < size && s.ok(); off += buf.size()) {
    const uint64_t n = std::min<uint64_t>(buf.size(), size - off);
    FillRandom(buf.data(), n, &seed);
    s = PWriteFull(fd, buf.data(), n, off, path);
  }
  if (s.ok() && fdatasync(fd) != 0) s = ErrnoStatus(errno, absl::StrCat("fdatasync ", path));
  close(fd);
  return s;
}

// Reads `path` once so page-cache runs start from a warm cache (as after
// --keep reuse, or a reboot, they otherwise would not).
absl::Status WarmCache(const std::string& path) {
  int fd = open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) return ErrnoStatus(errno, absl::StrCat("open ", path));
  std::unique_ptr<char, decltype(&free)> buf(static_cast<char*>(aligned_alloc(4096, 1 << 20)),
                                             &free);
  ssize_t n;
  uint64_t off = 0;
  while ((n = pread(fd, buf.get(), 1 << 20, static_cast<off_t>(off))) > 0) off += static_cast<uint64_t>(n);
  const int err = errno;
  close(fd);
  return n < 0 ? ErrnoStatus(err, absl::StrCat("read ", path)) : absl::OkStatus();
}

absl::StatusOr<std::unique_ptr<cow::CowFile>> CreateCow(const Config& cfg,
                                                       const std::string& path) {
  unlink(path.c_str());
  cow::CreateOptions options;
  options.backing_file = cfg.backing;
  return cow::CowFile::Create(path, options);
}

absl::StatusOr<std::unique_ptr<cow::CowFile>> OpenCow(const std::string& path) {
  cow::OpenOptions options;
  options.writable = true;
  return cow::CowFile::Open(path, options);
}

// Makes full.cow: every sector written once through the engine.
absl::Status MakeFull(Engine* engine, const Config& cfg) {
  if (cfg.keep) {
    auto f = OpenCow(cfg.full);
    if (f.ok() && (*f)->bitmap().CountSet() == (*f)->geometry().sectors) return absl::OkStatus();
  }
  auto file = CreateCow(cfg, cfg.full);
  if (!file.ok()) return file.status();
  VolumeOptions vo;
  vo.durability = Durability::kUnordered;
  vo.cache = cfg.cache;
  auto volume = engine->OpenVolume(*std::move(file), vo);
  if (!volume.ok()) return volume.status();
  Workload fill;
  fill.op = OpType::kWrite;
  fill.random = false;
  fill.block_size = 1 << 20;
  fill.depth = 8;
  fill.target = Target::kFirst;
  Result r = Runner(engine, *volume, fill, cfg.seed, false).Run(1e9);
  const bool complete = (*volume)->stats().allocated_sectors.value() * kSectorSize >= cfg.size;
  engine->CloseVolume(*volume);
  if (r.errors != 0) return absl::InternalError(absl::StrCat("filling full.cow: ", r.first_error));
  if (!complete) return absl::InternalError("full.cow is not fully allocated after the fill");
  return SyncDir(cfg.dir);
}

uint64_t Percentile(const std::vector<uint64_t>& sorted, double p) {
  if (sorted.empty()) return 0;
  size_t i = static_cast<size_t>(p * static_cast<double>(sorted.size()));
  return sorted[std::min(i, sorted.size() - 1)];
}

// Checks that the workload touched what its name says; empty when it did.
std::string CheckTarget(const Workload& w, const Result& r) {
  const StatsDelta& d = r.stats;
  switch (w.target) {
    case Target::kCow:
      if (d.bytes_read_backing != 0) return "some reads went to the backing file";
      break;
    case Target::kBacking:
      if (d.bytes_read_cow != 0) return "some reads went to the COW file";
      break;
    case Target::kFirst:
      if (d.allocated_sectors != r.ops * w.block_size / kSectorSize) {
        return "not every write allocated new sectors";
      }
      break;
    case Target::kRewrite:
      if (d.bitmap_writes != 0 || d.fsyncs != 0) return "rewrites wrote bitmap blocks or synced";
      break;
  }
  return "";
}

// Scrapes `engine`'s metrics every `interval` seconds until destroyed.
class Scraper {
 public:
  Scraper(const Engine* engine, double interval)
      : collector_({engine}, [](const Volume&) { return std::string("bench"); }) {
    thread_ = std::thread([this, interval] {
      std::unique_lock<std::mutex> lock(mu_);
      while (!cv_.wait_for(lock, std::chrono::duration<double>(interval), [this] { return stop_; })) {
        bytes_ += prometheus::TextSerializer().Serialize(collector_.Collect()).size();
        ++scrapes_;
      }
    });
  }
  ~Scraper() { Stop(); }
  // Ends the scrapes; returns how many there were.
  uint64_t Stop() {
    {
      std::lock_guard<std::mutex> lock(mu_);
      stop_ = true;
    }
    cv_.notify_all();
    if (thread_.joinable()) thread_.join();
    return scrapes_;
  }

 private:
  metrics::EngineCollector collector_;
  std::thread thread_;
  std::mutex mu_;
  std::condition_variable cv_;
  bool stop_ = false;
  uint64_t scrapes_ = 0, bytes_ = 0;  // guarded by mu_ (read after join)
};

absl::StatusOr<json> RunWorkload(Engine* engine, const Config& cfg, const Workload& w,
                                 bool metrics) {
  absl::StatusOr<std::unique_ptr<cow::CowFile>> file;
  switch (w.target) {
    case Target::kCow:
    case Target::kRewrite: file = OpenCow(cfg.full); break;
    case Target::kBacking: file = OpenCow(cfg.empty); break;
    case Target::kFirst: file = CreateCow(cfg, cfg.first); break;
  }
  if (!file.ok()) return file.status();
  VolumeOptions vo;
  vo.durability = w.durability;
  vo.cache = cfg.cache;
  vo.latency_histograms = metrics;
  auto volume = engine->OpenVolume(*std::move(file), vo);
  if (!volume.ok()) return volume.status();
  const StatsDelta before = StatsDelta::Of((*volume)->stats());
  uint64_t scrapes = 0;
  Result r;
  {
    std::unique_ptr<Scraper> scraper;
    if (metrics) scraper = std::make_unique<Scraper>(engine, cfg.scrape_interval);
    r = Runner(engine, *volume, w, cfg.seed, cfg.inline_submit).Run(cfg.seconds);
    if (scraper) scrapes = scraper->Stop();
  }
  r.stats = StatsDelta::Of((*volume)->stats()).Minus(before);
  engine->CloseVolume(*volume);
  if (w.target == Target::kFirst) unlink(cfg.first.c_str());
  // Start the next run without this one's dirty pages.
  if (absl::Status s = SyncDir(cfg.dir); !s.ok()) return s;
  if (r.errors != 0) {
    return absl::InternalError(absl::StrCat(w.name, ": ", r.errors, " failed requests, first: ",
                                            r.first_error));
  }

  const double secs = std::max(r.seconds, 1e-9);
  const double ops = static_cast<double>(r.ops);
  auto per_write = [&](uint64_t n) {
    return w.op == OpType::kWrite && r.ops != 0 ? static_cast<double>(n) / ops : 0.0;
  };
  uint64_t sum = 0;
  for (uint64_t v : r.lat_ns) sum += v;
  json j = {
      {"name", w.name},
      {"op", w.op == OpType::kRead ? "read" : "write"},
      {"pattern", w.random ? "random" : "sequential"},
      {"block_size", w.block_size},
      {"depth", w.depth},
      {"target", TargetName(w.target)},
      {"durability", engine::DurabilityName(w.durability)},
      {"cache", cfg.cache == CacheMode::kNone ? "none" : "writeback"},
      {"metrics", metrics ? "on" : "off"},
      {"scrapes", scrapes},
      {"ops", r.ops},
      {"seconds", r.seconds},
      {"ended_early_device_full", r.exhausted},
      {"iops", ops / secs},
      {"mib_s", ops * static_cast<double>(w.block_size) / secs / (1 << 20)},
      {"lat_us",
       {{"mean", r.ops != 0 ? static_cast<double>(sum) / ops / 1e3 : 0.0},
        {"p50", static_cast<double>(Percentile(r.lat_ns, 0.50)) / 1e3},
        {"p99", static_cast<double>(Percentile(r.lat_ns, 0.99)) / 1e3},
        {"p999", static_cast<double>(Percentile(r.lat_ns, 0.999)) / 1e3},
        {"max", r.lat_ns.empty() ? 0.0 : static_cast<double>(r.lat_ns.back()) / 1e3}}},
      {"fsyncs", r.stats.fsyncs},
      {"bitmap_writes", r.stats.bitmap_writes},
      {"fsyncs_per_write", per_write(r.stats.fsyncs)},
      {"bitmap_writes_per_write", per_write(r.stats.bitmap_writes)},
      {"updates_coalesced", r.stats.updates_coalesced},
      {"updates_waited", r.stats.updates_waited},
      {"read_stalls", r.stats.read_stalls},
      {"bytes_read_cow", r.stats.bytes_read_cow},
      {"bytes_read_backing", r.stats.bytes_read_backing},
      {"check", CheckTarget(w, r)},
  };
  return j;
}

void PrintRow(const json& j) {
  const bool write = j["op"] == "write";
  auto per = [&](const char* key) {
    return write ? absl::StrFormat("%8.3f", j[key].get<double>()) : std::string(8, ' ');
  };
  std::cout << absl::StrFormat(
      "%-34s %9.0f %8.1f %8.1f %8.1f %8.1f %s %s%s\n", j["name"].get<std::string>(),
      j["iops"].get<double>(), j["mib_s"].get<double>(), j["lat_us"]["p50"].get<double>(),
      j["lat_us"]["p99"].get<double>(), j["lat_us"]["p999"].get<double>(), per("fsyncs_per_write"),
      per("bitmap_writes_per_write"),
      j["ended_early_device_full"].get<bool>()
          ? absl::StrFormat("  (device full after %.1f s)", j["seconds"].get<double>())
          : std::string());
  if (!j["check"].get<std::string>().empty()) {
    std::cout << "  WARNING: " << j["check"].get<std::string>() << "\n";
  }
  std::cout.flush();
}

int Main(int argc, char** argv) {
  CLI::App app{"engine_bench: the cowblk engine (io_uring or worker threads) on one COW volume"};
  Config cfg;
  std::string cache = "writeback", submit = "engine", workloads, json_path, io_backend = "uring";
  EngineOptions engine_options;
  bool list = false;
  app.add_option("--dir", cfg.dir, "Directory on a real file system for the image and COW files");
  app.add_option("--size", cfg.size, "Image size (e.g. 1G)")
      ->transform(CLI::AsSizeValue(false))
      ->capture_default_str();
  app.add_option("--seconds", cfg.seconds, "Run time per workload")->capture_default_str();
  app.add_option("--cache", cache, "COW file access: page cache or O_DIRECT")
      ->check(CLI::IsMember({"writeback", "none"}))
      ->capture_default_str();
  app.add_option("--submit", submit,
                 "How completions resubmit: Engine::Submit, or Volume::Submit in the "
                 "callback (a diagnostic: Engine::Submit without its self-wake)")
      ->check(CLI::IsMember({"engine", "inline"}))
      ->capture_default_str();
  app.add_option("--workloads", workloads,
                 "Comma-separated names or shell patterns (default: all; see --list)");
  app.add_option("--json", json_path, "Also write the results as JSON to this file");
  app.add_option("--seed", cfg.seed, "Seed for offsets and data")->capture_default_str();
  app.add_option("--metrics", cfg.metrics,
                 "Latency histograms and scrapes: on (cowblkd's default), off, or both "
                 "(each workload off-on-on-off, with the on/off IOPS ratio)")
      ->check(CLI::IsMember({"on", "off", "both"}))
      ->capture_default_str();
  app.add_option("--scrape-interval", cfg.scrape_interval,
                 "Seconds between scrapes of the metrics when they are on")
      ->check(CLI::PositiveNumber)
      ->capture_default_str();
  app.add_option("--io-backend", io_backend,
                 "The engine's I/O backend, as cowblkd's --io-backend")
      ->check(CLI::IsMember({"auto", "uring", "threads"}))
      ->capture_default_str();
  app.add_option("--io-threads", engine_options.io_threads,
                 "Worker threads of the threads backend, as cowblkd's --io-threads")
      ->check(CLI::Range(1, 64))
      ->capture_default_str();
  app.add_flag("--keep", cfg.keep, "Keep backing.img and full.cow for the next run, reuse them");
  app.add_flag("--list", list, "Print the workload names and exit");
  CLI11_PARSE(app, argc, argv);

  std::vector<Workload> selected;
  const std::vector<std::string> patterns = absl::StrSplit(workloads, ',', absl::SkipEmpty());
  for (const Workload& w : AllWorkloads()) {
    bool match = patterns.empty();
    for (const std::string& p : patterns) match |= fnmatch(p.c_str(), w.name.c_str(), 0) == 0;
    if (match) selected.push_back(w);
  }
  if (list) {
    for (const Workload& w : selected) std::cout << w.name << "\n";
    return 0;
  }
  if (selected.empty()) {
    std::cerr << "engine_bench: no workload matches --workloads=" << workloads << "\n";
    return 2;
  }
  if (cfg.dir.empty()) {
    std::cerr << "engine_bench: --dir is required\n";
    return 2;
  }
  if (cfg.size < (1 << 20) || cfg.size % (1 << 20) != 0) {
    std::cerr << "engine_bench: --size must be a multiple of 1 MiB\n";
    return 2;
  }
  cfg.cache = cache == "none" ? CacheMode::kNone : CacheMode::kWriteback;
  cfg.inline_submit = submit == "inline";
  bool tmpfs;
  const char* fs = FsName(cfg.dir, &tmpfs);
  if (tmpfs) {
    std::cerr << "engine_bench: " << cfg.dir << " is tmpfs: use a directory on a disk\n";
    return 2;
  }
  cfg.backing = cfg.dir + "/backing.img";
  cfg.full = cfg.dir + "/full.cow";
  cfg.empty = cfg.dir + "/empty.cow";
  cfg.first = cfg.dir + "/first.cow";
  auto fail = [](const absl::Status& s) {
    std::cerr << "engine_bench: " << s << "\n";
    return 1;
  };

  engine::ParseIoBackend(io_backend, &engine_options.io_backend);
  auto engine = Engine::Start(engine_options);
  if (!engine.ok()) return fail(engine.status());
  struct stat st;
  const bool reuse_backing = cfg.keep && stat(cfg.backing.c_str(), &st) == 0 &&
                             static_cast<uint64_t>(st.st_size) == cfg.size;
  if (!reuse_backing) {
    unlink(cfg.full.c_str());  // its header names the old image's mtime
    if (absl::Status s = MakeBacking(cfg.backing, cfg.size, cfg.seed); !s.ok()) return fail(s);
  }
  auto need = [&](Target t) {
    return std::any_of(selected.begin(), selected.end(),
                       [t](const Workload& w) { return w.target == t; });
  };
  if (need(Target::kCow) || need(Target::kRewrite)) {
    if (absl::Status s = MakeFull(engine->get(), cfg); !s.ok()) return fail(s);
  }
  if (need(Target::kBacking)) {
    auto f = CreateCow(cfg, cfg.empty);
    if (!f.ok()) return fail(f.status());
  }
  if (cfg.cache == CacheMode::kWriteback) {
    for (const auto& [t, path] : {std::pair{Target::kBacking, cfg.backing},
                                  std::pair{Target::kCow, cfg.full},
                                  std::pair{Target::kRewrite, cfg.full}}) {
      if (!need(t)) continue;
      if (absl::Status s = WarmCache(path); !s.ok()) return fail(s);
    }
  }

  std::cout << absl::StrFormat(
      "# dir %s (%s), size %u MiB, %.1f s per workload, cache %s, submit %s, metrics %s\n",
      cfg.dir, fs, cfg.size >> 20, cfg.seconds, cache, submit, cfg.metrics);
  std::cout << absl::StrFormat("%-34s %9s %8s %8s %8s %8s %8s %8s\n", "workload", "IOPS",
                               "MiB/s", "p50 us", "p99 us", "p999 us", "fsync/wr",
                               "bmap/wr");
  json results = json::array();
  int rc = 0;
  // `both`: off, on, on, off, so that a drift of the machine's speed during
  // the four runs weighs on both sides alike.
  const std::vector<bool> rounds = cfg.metrics == "both" ? std::vector<bool>{false, true, true, false}
                                                         : std::vector<bool>{cfg.metrics == "on"};
  for (const Workload& w : selected) {
    double iops[2] = {0, 0};
    for (bool metrics : rounds) {
      auto j = RunWorkload(engine->get(), cfg, w, metrics);
      if (!j.ok()) {
        rc = fail(j.status());
        break;
      }
      if (rounds.size() > 1) (*j)["name"] = absl::StrCat(w.name, metrics ? " [on]" : " [off]");
      PrintRow(*j);
      iops[metrics] += (*j)["iops"].get<double>();
      results.push_back(*std::move(j));
    }
    if (rc != 0) break;
    if (rounds.size() > 1) {
      std::cout << absl::StrFormat("%-34s metrics on/off IOPS ratio %.3f\n", w.name,
                                   iops[1] / std::max(iops[0], 1e-9));
    }
  }
  unlink(cfg.empty.c_str());
  if (!cfg.keep) {
    unlink(cfg.full.c_str());
    unlink(cfg.backing.c_str());
  }
  if (!json_path.empty()) {
    std::ofstream out(json_path);
    out << json{{"dir", cfg.dir}, {"fs", fs}, {"size", cfg.size}, {"seconds", cfg.seconds},
                {"cache", cache}, {"submit", submit}, {"metrics", cfg.metrics},
                {"results", results}}
               .dump(2)
        << "\n";
    if (!out) return fail(absl::InternalError(absl::StrCat("cannot write ", json_path)));
  }
  return rc;
}

}  // namespace
}  // namespace cowblk::bench

int main(int argc, char** argv) { return cowblk::bench::Main(argc, argv); }
