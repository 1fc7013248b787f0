// What /proc says about a running process (cowblkd under test), for the
// resource tests: its descriptors, threads, resident memory and the CPU
// time of a named thread; a process's limits changed from outside with
// prlimit(2); and a wait for such a state with a deadline (an external
// process's state has no event to wait for).

#ifndef COWBLK_TESTS_INTEGRATION_PROC_STATS_H_
#define COWBLK_TESTS_INTEGRATION_PROC_STATS_H_

#include <sys/types.h>

#include <chrono>
#include <cstdint>
#include <functional>
#include <string>
#include <vector>

namespace cowblk::testing {

// Open descriptors (entries of /proc/PID/fd); -1 if unreadable.
int FdCount(pid_t pid);
// Threads (entries of /proc/PID/task); only those whose name starts with
// `prefix` when given.
int ThreadCount(pid_t pid, const std::string& prefix = "");
// Resident bytes (VmRSS).
uint64_t RssBytes(pid_t pid);
// Mapped address space (VmSize): what RLIMIT_AS limits.
uint64_t VirtualBytes(pid_t pid);
// The peak of resident bytes (VmHWM) since the process started or the last
// ResetPeakRss.
uint64_t PeakRssBytes(pid_t pid);
// Sets the peak to the current resident bytes (/proc/PID/clear_refs);
// false when the kernel refused.
bool ResetPeakRss(pid_t pid);
// User plus system CPU time, in clock ticks, of the threads named `comm`.
uint64_t ThreadCpuTicks(pid_t pid, const std::string& comm);
// Whether some open descriptor of `pid` links to a path containing `part`.
bool HoldsFile(pid_t pid, const std::string& part);

// Polls `done` (every 10 ms) until it holds or `timeout` passed; returns
// its last value.
bool WaitUntil(const std::function<bool()>& done,
               std::chrono::milliseconds timeout = std::chrono::seconds(20));

// The soft RLIMIT_NPROC of `pid` as /proc/PID/limits writes it (a number,
// or "unlimited"); empty if it cannot be read.
std::string SoftProcessLimit(pid_t pid);

// Sets the soft RLIMIT_NPROC of `pid` to `soft` with prlimit run behind
// `as` (the setpriv prefix cowblkd was started with: a user may lower and
// restore its own soft limit; root without CAP_SYS_RESOURCE may not).
// Returns prlimit's exit code.
int SetSoftProcessLimit(const std::vector<std::string>& as, pid_t pid, const std::string& soft);

}  // namespace cowblk::testing

#endif  // COWBLK_TESTS_INTEGRATION_PROC_STATS_H_
