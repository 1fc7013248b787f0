#include "tests/support/command.h"

#include <fcntl.h>
#include <sys/wait.h>
#include <unistd.h>

#include "tests/support/child_process.h"

namespace cowblk::testing {
namespace {

// Waits for `pid`; its exit code, -1 when a signal ended it.
int WaitExitCode(pid_t pid) {
  int status = 0;
  if (waitpid(pid, &status, 0) != pid) return -1;
  return WIFEXITED(status) ? WEXITSTATUS(status) : -1;
}

}  // namespace

std::string ShellQuote(const std::string& s) {
  std::string q = "'";
  for (char c : s) q += c == '\'' ? std::string("'\\''") : std::string(1, c);
  return q + "'";
}

CommandResult RunCommand(const std::vector<std::string>& argv, Stderr err) {
  CommandResult r;
  int fds[2];
  if (pipe2(fds, O_CLOEXEC) != 0) return r;
  const pid_t pid = Spawn(argv, {}, fds[1], err == Stderr::kInOutput ? fds[1] : -1);
  close(fds[1]);
  char buf[4096];
  ssize_t n;
  while ((n = read(fds[0], buf, sizeof buf)) > 0) r.output.append(buf, static_cast<size_t>(n));
  close(fds[0]);
  if (pid > 0) r.exit_code = WaitExitCode(pid);
  return r;
}

int RunQuietly(const std::vector<std::string>& argv) {
  const int null = open("/dev/null", O_WRONLY | O_CLOEXEC);
  if (null < 0) return -1;
  const pid_t pid = Spawn(argv, {}, null, null);
  close(null);
  return pid > 0 ? WaitExitCode(pid) : -1;
}

int RunShell(const std::string& script) {
  const pid_t pid = Spawn({"/bin/sh", "-c", script});
  return pid > 0 ? WaitExitCode(pid) : -1;
}

std::vector<std::string> AsUserOfItsOwn() {
  const std::string id = std::to_string(200000 + static_cast<unsigned>(getpid()));
  return {"setpriv", "--reuid=" + id, "--regid=" + id, "--clear-groups"};
}

}  // namespace cowblk::testing
