#include "client/cli/daemon.h"

#include <fcntl.h>
#include <signal.h>
#include <unistd.h>

#include <cerrno>
#include <cstdio>
#include <string>

#include "absl/strings/str_cat.h"

namespace cowblk::cli {
namespace {

bool WriteAll(int fd, const std::string& s) {
  size_t at = 0;
  while (at < s.size()) {
    const ssize_t n = write(fd, s.data() + at, s.size() - at);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) return false;
    at += static_cast<size_t>(n);
  }
  return true;
}

// The parent: waits for the child's word ('R' and text for stdout, or 'F',
// an exit code byte and an error line) and exits.
[[noreturn]] void ParentWaits(int fd) {
  // The caller may have blocked signals for the child's sigwait: the
  // parent's wait stays interruptible (Ctrl-C ends it, not the daemon).
  sigset_t none;
  sigemptyset(&none);
  sigprocmask(SIG_SETMASK, &none, nullptr);
  std::string word;
  char buf[4096];
  ssize_t n;
  while ((n = read(fd, buf, sizeof buf)) != 0) {
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) break;
    word.append(buf, static_cast<size_t>(n));
  }
  if (!word.empty() && word[0] == 'R') {
    WriteAll(STDOUT_FILENO, word.substr(1));
    _exit(0);
  }
  if (word.size() >= 2 && word[0] == 'F') {
    WriteAll(STDERR_FILENO, word.substr(2));
    _exit(static_cast<unsigned char>(word[1]));
  }
  WriteAll(STDERR_FILENO, "cowblk: nbd: the daemon ended before it was ready\n");
  _exit(1);
}

}  // namespace

absl::StatusOr<Daemon> Daemon::Daemonize() {
  int p[2];
  if (pipe2(p, O_CLOEXEC) != 0) return absl::ErrnoToStatus(errno, "pipe");
  std::fflush(nullptr);
  const pid_t pid = fork();
  if (pid < 0) {
    const int e = errno;
    close(p[0]);
    close(p[1]);
    return absl::ErrnoToStatus(e, "fork");
  }
  if (pid > 0) {
    close(p[1]);
    ParentWaits(p[0]);
  }
  close(p[0]);
  setsid();
  return Daemon(p[1]);
}

Daemon::~Daemon() {
  if (fd_ >= 0) close(fd_);
}

void Daemon::Ready(const std::string& stdout_text) {
  if (fd_ < 0) return;
  WriteAll(fd_, "R" + stdout_text);
  close(fd_);
  fd_ = -1;
  const int null = open("/dev/null", O_RDWR | O_CLOEXEC);
  if (null >= 0) {
    dup2(null, STDIN_FILENO);
    dup2(null, STDOUT_FILENO);
    close(null);
  }
}

void Daemon::Failed(int exit_code, const std::string& error_line) {
  if (fd_ < 0) return;
  std::string word = "F";
  word += static_cast<char>(exit_code);
  WriteAll(fd_, word + error_line + "\n");
  close(fd_);
  fd_ = -1;
}

absl::Status WritePidFile(const std::string& path) {
  const std::string tmp = absl::StrCat(path, ".", getpid(), ".tmp");
  const int fd = open(tmp.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
  if (fd < 0) return absl::ErrnoToStatus(errno, absl::StrCat("--pid-file ", path));
  const bool ok = WriteAll(fd, absl::StrCat(getpid(), "\n"));
  close(fd);
  if (!ok || rename(tmp.c_str(), path.c_str()) != 0) {
    const int e = errno;
    unlink(tmp.c_str());
    return absl::ErrnoToStatus(e, absl::StrCat("--pid-file ", path));
  }
  return absl::OkStatus();
}

}  // namespace cowblk::cli
