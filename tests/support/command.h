// Running a command to its end: tools the tests check against (uml_mkcow,
// uml_moo, cmp, qemu-img, promtool, openssl) and cowblk-img. Every command
// is started with Spawn() (child_process.h), so these are safe to call from
// a test with threads of its own.

#ifndef COWBLK_TESTS_SUPPORT_COMMAND_H_
#define COWBLK_TESTS_SUPPORT_COMMAND_H_

#include <string>
#include <vector>

namespace cowblk::testing {

// `s` quoted for a POSIX shell: in single quotes, each ' written '\''.
std::string ShellQuote(const std::string& s);

struct CommandResult {
  int exit_code = -1;  // -1: not started, or ended by a signal
  std::string output;  // what it wrote to stdout (and stderr, if asked)
};

// Where a command's stderr goes.
enum class Stderr {
  kInherit,   // to this process's stderr (the test's log)
  kInOutput,  // into CommandResult::output, interleaved with stdout
};

// Runs `argv` (argv[0] searched in PATH) to its end and returns its exit
// code and its stdout.
CommandResult RunCommand(const std::vector<std::string>& argv, Stderr err = Stderr::kInherit);

// Runs `argv` to its end with its stdout and stderr discarded; returns its
// exit code, -1 when it was not started or a signal ended it.
int RunQuietly(const std::vector<std::string>& argv);

// Runs `script` with `sh -c`, its output going where this process's goes;
// returns its exit code, -1 when it was not started or a signal ended it.
// Quote what the script is given with ShellQuote().
int RunShell(const std::string& script);

// A prefix for a command line that runs it as a user of its own: setpriv
// with a numeric uid and gid (no passwd entry needed) that no other test
// process running at the same time uses (it is made from this process's
// pid). Process limits (RLIMIT_NPROC) count per user, so two tests that
// each run cowblkd under such a limit as one shared user (nobody) would
// eat into each other's limit when ctest runs them in parallel.
std::vector<std::string> AsUserOfItsOwn();

}  // namespace cowblk::testing

#endif  // COWBLK_TESTS_SUPPORT_COMMAND_H_
