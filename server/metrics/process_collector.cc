#include "server/metrics/process_collector.h"

#include <dirent.h>
#include <sys/resource.h>
#include <unistd.h>

#include <fstream>
#include <optional>
#include <sstream>
#include <string>

#include "server/metrics/families.h"

namespace cowblk::metrics {
namespace {

// The fields of /proc/self/stat this collector reads (proc(5), 1-based).
struct Stat {
  double utime_ticks = 0;     // 14
  double stime_ticks = 0;     // 15
  double start_ticks = 0;     // 22, since boot
  double vsize_bytes = 0;     // 23
  double rss_pages = 0;       // 24
};

std::optional<Stat> ReadStat() {
  std::ifstream in("/proc/self/stat");
  std::string line;
  if (!std::getline(in, line)) return std::nullopt;
  // The command name (field 2) may hold spaces: fields 3 on follow its ')'.
  const size_t close = line.rfind(')');
  if (close == std::string::npos) return std::nullopt;
  std::istringstream rest(line.substr(close + 2));
  std::string field;
  Stat s;
  for (int n = 3; n <= 24 && rest >> field; ++n) {
    const double v = std::strtod(field.c_str(), nullptr);
    switch (n) {
      case 14: s.utime_ticks = v; break;
      case 15: s.stime_ticks = v; break;
      case 22: s.start_ticks = v; break;
      case 23: s.vsize_bytes = v; break;
      case 24: s.rss_pages = v; return s;
      default: break;
    }
  }
  return std::nullopt;
}

// The boot time, seconds since the epoch (/proc/stat "btime").
std::optional<double> BootTime() {
  std::ifstream in("/proc/stat");
  std::string key;
  double value;
  while (in >> key) {
    if (key == "btime" && in >> value) return value;
    in.ignore(1 << 20, '\n');
  }
  return std::nullopt;
}

std::optional<double> OpenFds() {
  DIR* dir = opendir("/proc/self/fd");
  if (dir == nullptr) return std::nullopt;
  double n = 0;
  while (const dirent* e = readdir(dir)) {
    if (e->d_name[0] != '.') ++n;
  }
  closedir(dir);
  return n - 1;  // the directory's own descriptor
}

void Gauge(std::vector<prometheus::MetricFamily>* out, const char* name, const char* help,
           double value) {
  out->push_back(Family(name, help, prometheus::MetricType::Gauge));
  AddGauge(&out->back(), {}, value);
}

}  // namespace

std::vector<prometheus::MetricFamily> ProcessCollector::Collect() const {
  std::vector<prometheus::MetricFamily> out;
  const double ticks = static_cast<double>(sysconf(_SC_CLK_TCK));
  if (const std::optional<Stat> s = ReadStat(); s && ticks > 0) {
    out.push_back(Family("process_cpu_seconds_total", "Total user and system CPU time spent",
                         prometheus::MetricType::Counter));
    AddCounter(&out.back(), {}, (s->utime_ticks + s->stime_ticks) / ticks);
    Gauge(&out, "process_resident_memory_bytes", "Resident memory size in bytes",
          s->rss_pages * static_cast<double>(sysconf(_SC_PAGESIZE)));
    Gauge(&out, "process_virtual_memory_bytes", "Virtual memory size in bytes", s->vsize_bytes);
    if (const std::optional<double> boot = BootTime()) {
      Gauge(&out, "process_start_time_seconds",
            "Start time of the process since the Unix epoch in seconds",
            *boot + s->start_ticks / ticks);
    }
  }
  if (const std::optional<double> fds = OpenFds()) {
    Gauge(&out, "process_open_fds", "Number of open file descriptors", *fds);
  }
  rlimit nofile;
  if (getrlimit(RLIMIT_NOFILE, &nofile) == 0 && nofile.rlim_cur != RLIM_INFINITY) {
    Gauge(&out, "process_max_fds", "Maximum number of open file descriptors",
          static_cast<double>(nofile.rlim_cur));
  }
  return out;
}

}  // namespace cowblk::metrics
