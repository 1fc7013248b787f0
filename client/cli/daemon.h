// Running a command in the background as `cowblk nbd --daemon` does: the
// process forks before it makes any thread (gRPC's included), the child
// leaves the terminal's session, and the parent waits until the child says
// it is ready (then prints what the child sent and exits 0) or failed (then
// prints its error line and exits with its code). A caller thus knows,
// when the parent exits, whether the daemon serves.
//
// Thread-safety: Daemonize before any thread exists.

#ifndef COWBLK_CLIENT_CLI_DAEMON_H_
#define COWBLK_CLIENT_CLI_DAEMON_H_

#include <string>

#include "absl/status/status.h"
#include "absl/status/statusor.h"

namespace cowblk::cli {

class Daemon {
 public:
  // Forks. Returns in the child only; the parent exits when the child
  // calls Ready or Failed, or ends. An error: no child was made.
  static absl::StatusOr<Daemon> Daemonize();
  Daemon(Daemon&& other) noexcept : fd_(other.fd_) { other.fd_ = -1; }
  ~Daemon();

  // The parent prints `stdout_text` and exits 0; stdin and stdout of the
  // child become /dev/null (stderr stays: the daemon's log).
  void Ready(const std::string& stdout_text);
  // The parent prints `error_line` and exits `exit_code`.
  void Failed(int exit_code, const std::string& error_line);

 private:
  explicit Daemon(int fd) : fd_(fd) {}
  int fd_;  // the pipe to the parent; -1 once told
};

// Writes the process id to `path` (replacing it atomically).
absl::Status WritePidFile(const std::string& path);

}  // namespace cowblk::cli

#endif  // COWBLK_CLIENT_CLI_DAEMON_H_
