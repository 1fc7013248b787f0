// Child processes for the tests: started with posix_spawn, owned by an
// object that stops and reaps them.
//
// Why posix_spawn and not fork: a test that forks and then builds argv (or
// calls setenv) in the child can hang. fork copies only the calling
// thread, and if another thread (gRPC's, a log reader's) held malloc's lock
// at that moment, the child's first allocation waits forever (under ASan
// it spins). posix_spawn does all its work before the exec without
// allocating, so everything is prepared here, in the parent.

#ifndef COWBLK_TESTS_SUPPORT_CHILD_PROCESS_H_
#define COWBLK_TESTS_SUPPORT_CHILD_PROCESS_H_

#include <signal.h>
#include <sys/types.h>

#include <string>
#include <utility>
#include <vector>

namespace cowblk::testing {

// Environment variables set on top of this process's environment.
using Env = std::vector<std::pair<std::string, std::string>>;

// Runs argv[0] (searched in PATH when it has no slash) with `argv`, this
// process's environment with `env` set on top of it, and `out_fd` as its
// stdout and `err_fd` as its stderr (-1: inherited). SIGPIPE is set back
// to its default action, as a shell or a service manager would start the
// program (this process may ignore it, and an ignored signal stays ignored
// across exec). Returns the child's pid, or -1 if it could not be started.
// The caller reaps the child (waitpid).
pid_t Spawn(const std::vector<std::string>& argv, const Env& env = {}, int out_fd = -1,
            int err_fd = -1);

// An exit code as a shell reports it: the code of a child that exited, 128
// plus the signal of one a signal ended. `status` is waitpid's.
int ExitCode(int status);

// Sends SIGSTOP to `pid` and returns once the kernel says it is stopped
// (state T in /proc/PID/stat): kill() returns before every thread has
// stopped, and a thread on another core may still answer meanwhile. False
// if it was not stopped within 10 s.
bool StopAndWait(pid_t pid);

// One child process: started by Start(), stopped by Stop() or, if it is
// still running, by the destructor with `stop_signal` (and reaped).
// Thread-compatible: one thread uses it at a time.
class ChildProcess {
 public:
  explicit ChildProcess(int stop_signal = SIGKILL) : stop_signal_(stop_signal) {}
  ~ChildProcess();
  ChildProcess(const ChildProcess&) = delete;
  ChildProcess& operator=(const ChildProcess&) = delete;

  // Spawn() with these arguments. Returns false if it could not start.
  // REQUIRES: not running().
  bool Start(const std::vector<std::string>& argv, const Env& env = {}, int out_fd = -1,
             int err_fd = -1);

  // Sends `sig`, waits for the exit and returns ExitCode() of it; -1 when
  // there is no child (never started, or already reaped).
  int Stop(int sig = SIGTERM);

  // True once the child has exited (reaped here, without waiting).
  bool Exited();

  bool running() const { return pid_ > 0; }
  pid_t pid() const { return pid_; }

 private:
  const int stop_signal_;
  pid_t pid_ = -1;
};

}  // namespace cowblk::testing

#endif  // COWBLK_TESTS_SUPPORT_CHILD_PROCESS_H_
