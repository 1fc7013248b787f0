// cowblk-bench: an fio-like load generator for cowblk volumes and NBD
// exports (docs/bench.md).
//
// Exit status: 0 ok, 1 I/O errors, 2 bad usage, 3 verify found bad sectors,
// 4 cannot connect or open the target.

#include <signal.h>

#include <atomic>
#include <cctype>
#include <cstdio>
#include <fstream>
#include <iostream>
#include <string>

#include "CLI/CLI.hpp"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "bench/loadgen/engine.h"
#include "bench/loadgen/target.h"
#include "bench/loadgen/verify.h"
#include "common/malloc_tuning.h"
#include "nlohmann/json.hpp"

namespace cowblk::bench {
namespace {

constexpr int kExitOk = 0;
constexpr int kExitIo = 1;
constexpr int kExitUsage = 2;
constexpr int kExitVerify = 3;
constexpr int kExitOpen = 4;

std::atomic<bool> g_interrupted{false};
void OnSignal(int) { g_interrupted.store(true); }

// "4k", "1m", "64M", "1g", "512", "2KiB": 1024-based like fio.
bool ParseSize(std::string text, uint64_t* out) {
  if (text.empty()) return false;
  size_t i = 0;
  uint64_t v = 0;
  while (i < text.size() && std::isdigit(static_cast<unsigned char>(text[i]))) {
    if (v > (UINT64_MAX - 9) / 10) return false;
    v = v * 10 + static_cast<uint64_t>(text[i] - '0');
    i++;
  }
  if (i == 0) return false;
  std::string suffix;
  for (; i < text.size(); i++) suffix += static_cast<char>(std::tolower(text[i]));
  int shift = 0;
  if (suffix.empty() || suffix == "b") {
    shift = 0;
  } else if (suffix == "k" || suffix == "kb" || suffix == "kib") {
    shift = 10;
  } else if (suffix == "m" || suffix == "mb" || suffix == "mib") {
    shift = 20;
  } else if (suffix == "g" || suffix == "gb" || suffix == "gib") {
    shift = 30;
  } else if (suffix == "t" || suffix == "tb" || suffix == "tib") {
    shift = 40;
  } else {
    return false;
  }
  if (shift && v > (UINT64_MAX >> shift)) return false;
  *out = v << shift;
  return true;
}

std::string Size(uint64_t b) {
  if (b >= (1ull << 30) && b % (1ull << 30) == 0) return absl::StrCat(b >> 30, "g");
  if (b >= (1ull << 20) && b % (1ull << 20) == 0) return absl::StrCat(b >> 20, "m");
  if (b >= (1ull << 10) && b % (1ull << 10) == 0) return absl::StrCat(b >> 10, "k");
  return absl::StrCat(b);
}

double Us(uint64_t ns) { return static_cast<double>(ns) / 1000.0; }

nlohmann::json OpJson(const OpStats& o, double seconds) {
  nlohmann::json j;
  j["ops"] = o.ops;
  j["bytes"] = o.bytes;
  j["errors"] = o.errors;
  j["iops"] = seconds > 0 ? static_cast<double>(o.ops) / seconds : 0.0;
  j["mib_s"] = seconds > 0 ? static_cast<double>(o.bytes) / seconds / (1 << 20) : 0.0;
  j["lat_us"] = {{"mean", o.latency.mean() / 1000.0},  {"min", Us(o.latency.min())},
                 {"p50", Us(o.latency.Percentile(0.50))}, {"p99", Us(o.latency.Percentile(0.99))},
                 {"p999", Us(o.latency.Percentile(0.999))}, {"max", Us(o.latency.max())}};
  return j;
}

std::string OpLine(const char* name, const OpStats& o, double seconds) {
  const double iops = seconds > 0 ? static_cast<double>(o.ops) / seconds : 0.0;
  const double mibs = seconds > 0 ? static_cast<double>(o.bytes) / seconds / (1 << 20) : 0.0;
  return absl::StrFormat(
      "%-6s %10.0f IOPS %9.1f MiB/s  lat us p50 %.1f p99 %.1f p99.9 %.1f max %.1f  (%d ops, %d "
      "errors)\n",
      name, iops, mibs, Us(o.latency.Percentile(0.50)), Us(o.latency.Percentile(0.99)),
      Us(o.latency.Percentile(0.999)), Us(o.latency.max()), o.ops, o.errors);
}

int Main(int argc, char** argv) {
  CLI::App app{
      "cowblk-bench: fio-like load on a cowblk volume (cowblk://HOST:PORT/VOLUME) or an NBD "
      "export (nbd://HOST:PORT/EXPORT, nbd+unix:///EXPORT?socket=PATH)"};
  TargetOptions t;
  Workload w;
  std::string bs = "4k", io_size, size, offset = "0", json_path;
  bool verify_only = false;
  app.add_option("--target", t.uri, "cowblk://HOST:PORT/VOLUME or an NBD URI")->required();
  app.add_option("--rw", w.rw, "read|write|randread|randwrite|rw|randrw")
      ->check(CLI::IsMember({"read", "write", "randread", "randwrite", "rw", "randrw"}))
      ->capture_default_str();
  app.add_option("--rwmixread", w.read_pct, "Percentage of reads of rw/randrw")
      ->check(CLI::Range(0, 100))
      ->default_val(50);
  app.add_option("--bs", bs, "Block size, a multiple of 512 (k/m/g suffixes)")
      ->capture_default_str();
  app.add_option("--iodepth", w.iodepth, "Requests in flight per stream")
      ->check(CLI::Range(1, 4096))
      ->capture_default_str();
  app.add_option("--streams", w.streams, "Streams: NBD connections / cowblk lanes")
      ->check(CLI::Range(1, 256))
      ->capture_default_str();
  app.add_option("--runtime", w.runtime, "Seconds to run (after --ramp)")
      ->check(CLI::Range(0.0, 1e7));
  app.add_option("--io-size", io_size,
                 "Stop after this many bytes (all streams); default: --size if no --runtime");
  app.add_option("--ramp", w.ramp, "Seconds first run but not measured")
      ->check(CLI::Range(0.0, 1e6))
      ->capture_default_str();
  app.add_option("--size", size, "Working set size (default: the device from --offset)");
  app.add_option("--offset", offset, "Start of the working set, a multiple of 512")
      ->capture_default_str();
  app.add_option("--seed", w.seed, "Random seed (offsets and verify patterns)")
      ->capture_default_str();
  auto* json_opt = app.add_option("--json", json_path, "JSON results to FILE (- or none: stdout)")
                       ->expected(0, 1);
  app.add_flag("--verify", w.verify, "Writes carry checksummed sectors that reads check");
  app.add_flag("--verify-only", verify_only,
               "Reads only, no prefill: check generation 1 everywhere (what a `--rw write "
               "--verify --io-size SIZE` pass left)");
  app.add_flag("--verify-fail-fast", w.fail_fast, "Stop at the first bad sector");
  app.add_option("--server", t.cowblk.server, "cowblkd host:port for cowblk:///VOLUME")
      ->envname("COWBLK_SERVER");
  app.add_flag("--tls", t.cowblk.tls, "cowblk: use TLS (implied by the --tls-* files)")
      ->envname("COWBLK_TLS");
  app.add_option("--tls-ca", t.cowblk.tls_ca, "cowblk: CA certificates (PEM)")
      ->envname("COWBLK_TLS_CA");
  app.add_option("--tls-cert", t.cowblk.tls_cert, "cowblk: client certificate (PEM)")
      ->envname("COWBLK_TLS_CERT");
  app.add_option("--tls-key", t.cowblk.tls_key, "cowblk: client key (PEM)")
      ->envname("COWBLK_TLS_KEY");
  app.add_option("--tls-server-name", t.cowblk.tls_server_name,
                 "cowblk: name the certificate carries")
      ->envname("COWBLK_TLS_SERVER_NAME");
  app.add_option("--token-file", t.cowblk.token_file, "cowblk: file whose first line is the token")
      ->envname("COWBLK_TOKEN_FILE");
  app.add_option("--channels", t.cowblk.channels, "cowblk: gRPC connections")
      ->envname("COWBLK_CHANNELS")
      ->check(CLI::Range(1, 64))
      ->capture_default_str();
  std::string nbd_path = "on";
  app.add_option("--nbd-path", nbd_path,
                 "cowblk: reads and writes over the server's NBD export when it has one "
                 "(cowblkd --nbd-listen)")
      ->check(CLI::IsMember({"on", "off"}))
      ->capture_default_str();
  std::string nbd_min_read = "32k", nbd_min_write = "0";
  app.add_option("--nbd-min-read", nbd_min_read, "cowblk: the smallest read sent over NBD")
      ->capture_default_str();
  app.add_option("--nbd-min-write", nbd_min_write, "cowblk: the smallest write sent over NBD")
      ->capture_default_str();
  app.add_option("--timeout", t.cowblk.timeout_seconds, "cowblk: seconds each request may take")
      ->envname("COWBLK_TIMEOUT")
      ->check(CLI::Range(1, 86400))
      ->capture_default_str();
  app.footer(
      "Exit status: 0 ok, 1 I/O errors, 2 bad usage, 3 verify found bad sectors, 4 cannot "
      "connect or open the target. Manual: docs/bench.md");

  try {
    app.parse(argc, argv);
  } catch (const CLI::CallForHelp& e) {
    return app.exit(e);
  } catch (const CLI::ParseError& e) {
    std::cerr << "cowblk-bench: " << e.what() << " (run with --help for usage)\n";
    return kExitUsage;
  }
  t.cowblk_nbd = nbd_path == "on";
  auto usage = [](const std::string& msg) {
    std::cerr << "cowblk-bench: " << msg << "\n";
    return kExitUsage;
  };

  uint64_t v = 0;
  if (!ParseSize(bs, &v) || v == 0 || v % kSector != 0 || v > (32u << 20))
    return usage("--bs " + bs + ": want a multiple of 512 up to 32m");
  w.bs = static_cast<uint32_t>(v);
  if (!io_size.empty() && (!ParseSize(io_size, &w.io_size) || w.io_size == 0))
    return usage("--io-size " + io_size + ": want a size");
  if (!ParseSize(nbd_min_read, &v) || v > (32u << 20))
    return usage("--nbd-min-read: a size up to 32m");
  t.cowblk_nbd_min_read = static_cast<uint32_t>(v);
  if (!ParseSize(nbd_min_write, &v) || v > (32u << 20))
    return usage("--nbd-min-write: a size up to 32m");
  t.cowblk_nbd_min_write = static_cast<uint32_t>(v);
  if (!ParseSize(offset, &w.offset) || w.offset % kSector != 0)
    return usage("--offset " + offset + ": want a multiple of 512");
  uint64_t want_size = 0;
  if (!size.empty() && (!ParseSize(size, &want_size) || want_size == 0))
    return usage("--size " + size + ": want a size");
  w.random = w.rw.rfind("rand", 0) == 0;
  if (w.rw == "read" || w.rw == "randread") w.read_pct = 100;
  if (w.rw == "write" || w.rw == "randwrite") w.read_pct = 0;
  if (verify_only) {
    if (w.read_pct != 100) return usage("--verify-only reads only: use --rw read or randread");
    w.verify = true;
  }
  const bool json = json_opt->count() > 0;
  t.streams = w.streams;
  t.iodepth = w.iodepth;
  t.block_size = w.bs;

  signal(SIGPIPE, SIG_IGN);
  auto target = Target::Open(t);
  if (!target.ok()) {
    std::cerr << "cowblk-bench: " << target.status().ToString() << "\n";
    return target.status().code() == absl::StatusCode::kInvalidArgument ? kExitUsage : kExitOpen;
  }
  const uint64_t dev = (*target)->size();
  if (w.offset >= dev) return usage(absl::StrCat("--offset is past the device's end (", dev, ")"));
  w.size = want_size ? want_size : dev - w.offset;
  if (w.size > dev - w.offset)
    return usage(absl::StrCat("--offset + --size is past the device's end (", dev, ")"));
  w.size = w.size / w.bs * w.bs;
  if (w.size == 0) return usage("the working set is smaller than --bs");
  if (w.runtime == 0 && w.io_size == 0) w.io_size = w.size;
  const bool writes = w.read_pct < 100;
  if (writes && (*target)->read_only()) {
    std::cerr << "cowblk-bench: " << t.uri << " is read-only\n";
    return kExitOpen;
  }
  const uint64_t blocks = w.size / w.bs;
  if (w.verify) {
    const uint64_t slots = static_cast<uint64_t>(w.iodepth) * w.streams;
    const bool ok = w.random ? blocks > slots : blocks / w.streams > static_cast<uint64_t>(w.iodepth);
    if (!ok) {
      return usage(absl::StrCat("--verify needs more blocks in the working set (", blocks,
                                ") than requests in flight (", w.random ? "" : "per stream, ",
                                w.random ? slots : w.iodepth, ")"));
    }
  }
  if (std::string n = (*target)->notes(); !n.empty() && !json) std::cerr << n << "\n";

  struct sigaction sa = {};
  sa.sa_handler = OnSignal;
  sigaction(SIGINT, &sa, nullptr);
  sigaction(SIGTERM, &sa, nullptr);

  std::unique_ptr<GenerationTable> gens;
  nlohmann::json prefill_json = nullptr;
  if (w.verify) gens = std::make_unique<GenerationTable>(blocks, verify_only ? 1 : 0);
  const bool has_reads = w.read_pct > 0;
  if (w.verify && has_reads && !verify_only) {
    // Known content first: every block of the working set at generation 1.
    Workload p = w;
    p.rw = "write";
    p.random = false;
    p.read_pct = 0;
    p.runtime = 0;
    p.ramp = 0;
    p.io_size = w.size;
    p.fail_fast = false;
    const int64_t t0 = NowNs();
    Results pr = Engine(p, target->get(), gens.get(), "prefill").Run(&g_interrupted);
    const double secs = static_cast<double>(NowNs() - t0) / 1e9;
    if (!json) {
      std::cout << absl::StrFormat("prefill: %s written in %.2f s (generation 1, not measured)\n",
                                   Size(pr.bytes_all), secs);
    }
    prefill_json = {{"bytes", pr.bytes_all}, {"seconds", secs}};
    if (pr.io_errors > 0) return kExitIo;
    if (g_interrupted.load()) {
      std::cerr << "cowblk-bench: interrupted during prefill\n";
      return kExitIo;
    }
  }

  if (!json) {
    std::cout << absl::StrFormat(
        "%s: %s bs=%s iodepth=%d streams=%d, working set %s at offset %s%s\n", t.uri, w.rw,
        Size(w.bs), w.iodepth, w.streams, Size(w.size), Size(w.offset),
        w.verify ? (verify_only ? ", verify-only" : ", verify") : "");
    std::cout.flush();
  }
  Results r = Engine(w, target->get(), gens.get(), "").Run(&g_interrupted);
  bool flush_failed = false;
  if (writes && r.io_errors == 0) {
    if (absl::Status s = (*target)->Flush(); !s.ok()) {
      std::cerr << "cowblk-bench: flush: " << s.ToString() << "\n";
      flush_failed = true;
    }
  }
  int code = kExitOk;
  if (r.io_errors > 0 || flush_failed) code = kExitIo;
  if (r.verify_errors > 0) code = kExitVerify;

  OpStats total;
  total.latency.Merge(r.read.latency);
  total.latency.Merge(r.write.latency);
  total.ops = r.read.ops + r.write.ops;
  total.bytes = r.read.bytes + r.write.bytes;
  total.errors = r.read.errors + r.write.errors;

  if (json) {
    nlohmann::json j;
    j["target"] = t.uri;
    j["rw"] = w.rw;
    j["bs"] = w.bs;
    j["iodepth"] = w.iodepth;
    j["streams"] = w.streams;
    j["rwmixread"] = w.read_pct;
    j["runtime"] = w.runtime;
    j["ramp"] = w.ramp;
    j["io_size"] = w.io_size;
    j["offset"] = w.offset;
    j["size"] = w.size;
    j["seed"] = w.seed;
    j["verify"] = w.verify;
    j["verify_only"] = verify_only;
    j["seconds"] = r.seconds;
    j["read"] = OpJson(r.read, r.seconds);
    j["write"] = OpJson(r.write, r.seconds);
    j["total"] = OpJson(total, r.seconds);
    j["io_errors"] = r.io_errors + (flush_failed ? 1 : 0);
    j["verify_errors"] = r.verify_errors;
    j["verified_sectors"] = r.verified_sectors;
    j["prefill"] = prefill_json;
    j["interrupted"] = g_interrupted.load();
    j["exit_code"] = code;
    if (json_path.empty() || json_path == "-") {
      std::cout << j.dump(2) << "\n";
    } else {
      std::ofstream f(json_path);
      f << j.dump(2) << "\n";
      if (!f) {
        std::cerr << "cowblk-bench: cannot write " << json_path << "\n";
        return kExitUsage;
      }
    }
  } else {
    if (r.read.ops || r.read.errors) std::cout << OpLine("read:", r.read, r.seconds);
    if (r.write.ops || r.write.errors) std::cout << OpLine("write:", r.write, r.seconds);
    std::cout << OpLine("total:", total, r.seconds);
    std::cout << absl::StrFormat("%.2f s measured%s\n", r.seconds,
                                 g_interrupted.load() ? " (interrupted)" : "");
    if (w.verify) {
      std::cout << absl::StrFormat("verify: %d sectors checked, %d bad\n", r.verified_sectors,
                                   r.verify_errors);
    }
  }
  if (r.verify_errors > 0) {
    std::cerr << "cowblk-bench: verify: " << r.verify_errors << " bad sector"
              << (r.verify_errors == 1 ? "" : "s") << (r.verify_errors > 10 ? " (first 10 shown)" : "")
              << "\n";
  }
  return code;
}

}  // namespace
}  // namespace cowblk::bench

int main(int argc, char** argv) {
  cowblk::TuneMallocForLargeBuffers();
  return cowblk::bench::Main(argc, argv);
}
