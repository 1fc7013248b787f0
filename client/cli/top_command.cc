// cowblk top: a live view of the volumes' I/O, as `rbd perf image iotop`:
// per volume, write and read operations and bytes a second, the requests
// queued in the engine, and reads that stalled behind a bitmap update, from
// two scrapes of cowblkd's metrics endpoint an interval apart (rates are
// the counters' differences over the time between the scrapes). Sorted by
// operations a second, busiest first. On a terminal the screen is redrawn;
// otherwise each report is plain text (or a JSON line with --json), so it
// can be scripted.

#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <map>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "client/cli/context.h"
#include "client/cli/metrics_fetch.h"
#include "client/cli/output.h"

namespace cowblk::cli {
namespace {

struct TopArgs {
  std::string url;
  double interval = 1;
  int iterations = 0;  // 0: until interrupted
  bool once = false;
};

// One volume's numbers in one scrape.
struct Counters {
  double read_ops = 0, write_ops = 0, other_ops = 0;
  double read_bytes = 0, write_bytes = 0;
  double stalls = 0;       // cowblk_read_stalls_total
  double queue = 0;        // cowblk_io_queue_depth, every op
  double stalled_now = 0;  // cowblk_reads_stalled
};

std::map<std::string, Counters> ByVolume(const std::vector<MetricSample>& samples) {
  std::map<std::string, Counters> out;
  for (const MetricSample& s : samples) {
    auto v = s.labels.find("volume");
    if (v == s.labels.end()) continue;
    Counters& c = out[v->second];
    auto label = [&s](const char* k) {
      auto it = s.labels.find(k);
      return it == s.labels.end() ? std::string() : it->second;
    };
    if (s.name == "cowblk_io_ops_total") {
      const std::string op = label("op");
      (op == "read" ? c.read_ops : op == "write" ? c.write_ops : c.other_ops) += s.value;
    } else if (s.name == "cowblk_io_bytes_total") {
      (label("op") == "read" ? c.read_bytes : c.write_bytes) += s.value;
    } else if (s.name == "cowblk_read_stalls_total") {
      c.stalls += s.value;
    } else if (s.name == "cowblk_io_queue_depth") {
      c.queue += s.value;
    } else if (s.name == "cowblk_reads_stalled") {
      c.stalled_now += s.value;
    }
  }
  return out;
}

struct Row {
  std::string volume;
  double write_iops, read_iops, other_iops, write_bps, read_bps, queue, stalls_per_s, stalled;
  double iops() const { return write_iops + read_iops + other_iops; }
};

std::vector<Row> Rates(const std::map<std::string, Counters>& before,
                       const std::map<std::string, Counters>& after, double seconds) {
  std::vector<Row> rows;
  for (const auto& [name, a] : after) {
    auto it = before.find(name);
    const Counters b = it == before.end() ? Counters{} : it->second;
    // A counter that went down (the volume was deleted and made again)
    // counts from zero.
    auto rate = [seconds](double x, double y) { return (y >= x ? y - x : y) / seconds; };
    rows.push_back({name, rate(b.write_ops, a.write_ops), rate(b.read_ops, a.read_ops),
                    rate(b.other_ops, a.other_ops), rate(b.write_bytes, a.write_bytes),
                    rate(b.read_bytes, a.read_bytes), a.queue, rate(b.stalls, a.stalls),
                    a.stalled_now});
  }
  std::stable_sort(rows.begin(), rows.end(), [](const Row& x, const Row& y) {
    return x.iops() != y.iops() ? x.iops() > y.iops() : x.volume < y.volume;
  });
  return rows;
}

std::string Rate(double bytes_per_s) {
  return FormatSize(static_cast<uint64_t>(bytes_per_s + 0.5)) + "/s";
}

std::string Report(const std::vector<Row>& rows) {
  std::vector<std::vector<std::string>> t = {
      {"VOLUME", "WR_IOPS", "RD_IOPS", "WR_BYTES", "RD_BYTES", "QUEUE", "STALLS/s"}};
  for (const Row& r : rows) {
    t.push_back({r.volume, absl::StrFormat("%.0f", r.write_iops),
                 absl::StrFormat("%.0f", r.read_iops), Rate(r.write_bps), Rate(r.read_bps),
                 absl::StrFormat("%.0f", r.queue), absl::StrFormat("%.1f", r.stalls_per_s)});
  }
  return Table(t);
}

nlohmann::json ReportJson(const std::vector<Row>& rows, double seconds) {
  nlohmann::json volumes = nlohmann::json::array();
  for (const Row& r : rows) {
    volumes.push_back({{"volume", r.volume},
                       {"write_iops", r.write_iops},
                       {"read_iops", r.read_iops},
                       {"other_iops", r.other_iops},
                       {"write_bytes_per_second", r.write_bps},
                       {"read_bytes_per_second", r.read_bps},
                       {"queue_depth", r.queue},
                       {"read_stalls_per_second", r.stalls_per_s},
                       {"reads_stalled", r.stalled}});
  }
  return {{"interval_seconds", seconds}, {"volumes", volumes}};
}

absl::Status RunTop(const Context& ctx, const TopArgs& args) {
  const int reports = args.once ? 1 : args.iterations;
  const bool tty = isatty(STDOUT_FILENO) == 1 && !ctx.flags.json;
  const auto interval = std::chrono::duration<double>(args.interval);
  const auto timeout = std::chrono::milliseconds(
      static_cast<int64_t>(std::max(1.0, std::min(args.interval, 30.0)) * 1000));
  auto scrape = [&] { return FetchMetrics(args.url, timeout); };
  auto first = scrape();
  if (!first.ok()) return first.status();
  std::map<std::string, Counters> before = ByVolume(*first);
  auto taken = std::chrono::steady_clock::now();
  for (int n = 0; reports == 0 || n < reports; ++n) {
    // The interval is the tool's own pace, sliced so an interrupt ends it.
    const auto due = taken + std::chrono::duration_cast<std::chrono::steady_clock::duration>(interval);
    while (!g_interrupted.load() && std::chrono::steady_clock::now() < due) {
      std::this_thread::sleep_for(
          std::min<std::chrono::steady_clock::duration>(due - std::chrono::steady_clock::now(),
                                                        std::chrono::milliseconds(100)));
    }
    if (g_interrupted.load()) break;
    auto next = scrape();
    if (!next.ok()) return next.status();
    const auto now = std::chrono::steady_clock::now();
    const double seconds = std::chrono::duration<double>(now - taken).count();
    std::map<std::string, Counters> after = ByVolume(*next);
    const std::vector<Row> rows = Rates(before, after, seconds);
    std::string out;
    if (ctx.flags.json) {
      out = ReportJson(rows, seconds).dump() + "\n";
    } else {
      out = absl::StrCat(tty ? "\x1b[H\x1b[2J" : "",
                         absl::StrFormat("cowblk top: %s, %.1f s\n", args.url, seconds),
                         Report(rows), tty ? "" : "\n");
    }
    if (fwrite(out.data(), 1, out.size(), stdout) != out.size() || fflush(stdout) != 0) {
      return StdoutClosed();
    }
    before = std::move(after);
    taken = now;
  }
  return absl::OkStatus();
}

}  // namespace

void AddTopCommand(CLI::App& app, Context& ctx) {
  auto args = std::make_shared<TopArgs>();
  CLI::App* top = app.add_subcommand(
      "top", "Per-volume IOPS, bandwidth, queue depth and stalls, live (from cowblkd's metrics)");
  top->add_option("--metrics-url", args->url,
                  "cowblkd's metrics endpoint: http://HOST:PORT[/metrics] or HOST:PORT "
                  "(cowblkd --metrics-listen)")
      ->envname("COWBLK_METRICS_URL")
      ->required();
  top->add_option("--interval", args->interval, "Seconds between scrapes (0.1 to 3600)")
      ->check(CLI::Range(0.1, 3600.0))
      ->capture_default_str();
  top->add_option("--iterations", args->iterations, "Reports to print, then exit; 0: until interrupted")
      ->check(CLI::Range(0, 1000000))
      ->capture_default_str();
  top->add_flag("--once", args->once, "One report (--iterations 1)");
  top->callback([&ctx, args] {
    ctx.what = "top";
    ctx.run = [&ctx, args] {
      CatchInterrupts();
      return RunTop(ctx, *args);
    };
  });
}

}  // namespace cowblk::cli
