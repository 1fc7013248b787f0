// Starts a child process from a multi-threaded test, safely.
//
// A test that forks and then builds argv (or calls setenv) in the child
// can hang: fork copies only the calling thread, and if another thread
// (gRPC's, a reader's) held malloc's lock at that moment, the child's first
// allocation waits forever (under ASan it spins). posix_spawn does all its
// work before the exec without allocating, so everything is prepared here,
// in the parent.

#ifndef COWBLK_TESTS_UNIT_SPAWN_H_
#define COWBLK_TESTS_UNIT_SPAWN_H_

#include <signal.h>
#include <spawn.h>
#include <unistd.h>

#include <cstring>
#include <string>
#include <utility>
#include <vector>

extern char** environ;

namespace cowblk::testing {

// Runs argv[0] with `argv`, this process's environment with `env` set on
// top of it, and `out_fd` as its stdout and `err_fd` as its stderr (-1:
// inherited). SIGPIPE is set back to its default action, as a shell or a
// service manager would start the program (this process may ignore it,
// and an ignored signal stays ignored across exec). Returns the child's
// pid, or -1 if it could not be started.
inline pid_t Spawn(const std::vector<std::string>& argv,
                   const std::vector<std::pair<std::string, std::string>>& env = {},
                   int out_fd = -1, int err_fd = -1) {
  std::vector<std::string> env_strings;
  for (char** e = environ; *e != nullptr; ++e) {
    bool replaced = false;
    for (const auto& [name, value] : env) {
      replaced = replaced || (std::strncmp(*e, name.c_str(), name.size()) == 0 &&
                              (*e)[name.size()] == '=');
    }
    if (!replaced) env_strings.emplace_back(*e);
  }
  for (const auto& [name, value] : env) env_strings.push_back(name + "=" + value);
  std::vector<char*> cargv, cenv;
  for (const std::string& a : argv) cargv.push_back(const_cast<char*>(a.c_str()));
  cargv.push_back(nullptr);
  for (std::string& e : env_strings) cenv.push_back(e.data());
  cenv.push_back(nullptr);

  posix_spawn_file_actions_t actions;
  posix_spawn_file_actions_init(&actions);
  if (out_fd >= 0) posix_spawn_file_actions_adddup2(&actions, out_fd, STDOUT_FILENO);
  if (err_fd >= 0) posix_spawn_file_actions_adddup2(&actions, err_fd, STDERR_FILENO);
  posix_spawnattr_t attr;
  posix_spawnattr_init(&attr);
  sigset_t defaults;
  sigemptyset(&defaults);
  sigaddset(&defaults, SIGPIPE);
  posix_spawnattr_setsigdefault(&attr, &defaults);
  posix_spawnattr_setflags(&attr, POSIX_SPAWN_SETSIGDEF);
  pid_t pid = -1;
  const int rc = posix_spawn(&pid, cargv[0], &actions, &attr, cargv.data(), cenv.data());
  posix_spawnattr_destroy(&attr);
  posix_spawn_file_actions_destroy(&actions);
  return rc == 0 ? pid : -1;
}

}  // namespace cowblk::testing

#endif  // COWBLK_TESTS_UNIT_SPAWN_H_
