#include "tests/integration/proc_stats.h"

#include <filesystem>
#include <fstream>
#include <sstream>
#include <system_error>
#include <thread>
#include <vector>

#include "tests/support/command.h"

namespace cowblk::testing {
namespace {

std::string Proc(pid_t pid) { return "/proc/" + std::to_string(pid); }

int Entries(const std::string& dir) {
  std::error_code ec;
  int n = 0;
  for (std::filesystem::directory_iterator it(dir, ec), end; !ec && it != end; it.increment(ec)) {
    ++n;
  }
  return ec ? -1 : n;
}

std::string FirstLine(const std::string& path) {
  std::ifstream in(path);
  std::string line;
  std::getline(in, line);
  return line;
}

}  // namespace

int FdCount(pid_t pid) { return Entries(Proc(pid) + "/fd"); }

int ThreadCount(pid_t pid, const std::string& prefix) {
  if (prefix.empty()) return Entries(Proc(pid) + "/task");
  int n = 0;
  std::error_code ec;
  for (std::filesystem::directory_iterator it(Proc(pid) + "/task", ec), end; !ec && it != end;
       it.increment(ec)) {
    if (FirstLine(it->path().string() + "/comm").rfind(prefix, 0) == 0) ++n;
  }
  return n;
}

namespace {

// A "Name:   N kB" line of /proc/PID/status, in bytes; 0 if missing.
uint64_t StatusBytes(pid_t pid, const std::string& name) {
  std::ifstream in(Proc(pid) + "/status");
  std::string line;
  while (std::getline(in, line)) {
    if (line.rfind(name, 0) == 0) return std::stoull(line.substr(name.size())) * 1024;
  }
  return 0;
}

}  // namespace

uint64_t RssBytes(pid_t pid) { return StatusBytes(pid, "VmRSS:"); }

uint64_t VirtualBytes(pid_t pid) { return StatusBytes(pid, "VmSize:"); }

uint64_t PeakRssBytes(pid_t pid) { return StatusBytes(pid, "VmHWM:"); }

bool ResetPeakRss(pid_t pid) {
  std::ofstream out(Proc(pid) + "/clear_refs");
  out << "5";  // proc(5): resets the peak resident set size
  out.flush();
  return out.good();
}

uint64_t ThreadCpuTicks(pid_t pid, const std::string& comm) {
  uint64_t ticks = 0;
  std::error_code ec;
  for (std::filesystem::directory_iterator it(Proc(pid) + "/task", ec), end; !ec && it != end;
       it.increment(ec)) {
    if (FirstLine(it->path().string() + "/comm") != comm) continue;
    // Fields after the command (which may hold spaces): state is field 3,
    // utime and stime fields 14 and 15.
    const std::string stat = FirstLine(it->path().string() + "/stat");
    std::istringstream rest(stat.substr(stat.rfind(')') + 2));
    std::vector<std::string> fields;
    for (std::string f; rest >> f;) fields.push_back(f);
    if (fields.size() > 12) ticks += std::stoull(fields[11]) + std::stoull(fields[12]);
  }
  return ticks;
}

bool HoldsFile(pid_t pid, const std::string& part) {
  std::error_code ec;
  for (std::filesystem::directory_iterator it(Proc(pid) + "/fd", ec), end; !ec && it != end;
       it.increment(ec)) {
    std::error_code link_ec;
    const std::string target = std::filesystem::read_symlink(it->path(), link_ec).string();
    if (!link_ec && target.find(part) != std::string::npos) return true;
  }
  return false;
}

bool WaitUntil(const std::function<bool()>& done, std::chrono::milliseconds timeout) {
  const auto deadline = std::chrono::steady_clock::now() + timeout;
  while (!done()) {
    if (std::chrono::steady_clock::now() >= deadline) return done();
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
  }
  return true;
}

std::string SoftProcessLimit(pid_t pid) {
  std::ifstream limits("/proc/" + std::to_string(pid) + "/limits");
  std::string line, soft;
  while (std::getline(limits, line)) {
    if (line.rfind("Max processes", 0) == 0) std::istringstream(line.substr(26)) >> soft;
  }
  return soft;
}

int SetSoftProcessLimit(const std::vector<std::string>& as, pid_t pid, const std::string& soft) {
  std::vector<std::string> argv = as;
  argv.insert(argv.end(), {"prlimit", "--pid", std::to_string(pid), "--nproc=" + soft + ":"});
  return RunQuietly(argv);
}

}  // namespace cowblk::testing
