// Runs a real cowblkd as a child process for the client tests. Like
// tests/integration/cowblkd_process.h, but the port is a parameter, so a
// test can stop the server and start it again on the same address (the
// reconnect tests); that harness always passes `--listen 127.0.0.1:0`, and
// cowblkd refuses a second --listen. StartOnFixedPort() picks a port that
// no other test's server can be given meanwhile.
//
// Start() returns once the server logged `event=serving` (read from its
// stderr, which a thread keeps draining), so tests never sleep to wait.

#ifndef COWBLK_TESTS_CLIENT_COWBLKD_SERVER_H_
#define COWBLK_TESTS_CLIENT_COWBLKD_SERVER_H_

#include <fcntl.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <condition_variable>
#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <mutex>
#include <random>
#include <string>
#include <thread>
#include <vector>

#include "tests/unit/spawn.h"

namespace cowblk::testing {

struct ServerConfig {
  int port = 0;                   // 0: an ephemeral port
  int drain_seconds = 5;          // --drain-seconds
  std::vector<std::string> args;  // more flags
};

class CowblkdServer {
 public:
  CowblkdServer() = default;
  CowblkdServer(const CowblkdServer&) = delete;
  CowblkdServer& operator=(const CowblkdServer&) = delete;
  ~CowblkdServer() {
    if (pid_ > 0) Stop(SIGKILL);
  }

  // Starts `cowblkd --data-dir DIR --listen 127.0.0.1:PORT ...`. Returns
  // false (see log()) if it exits before serving.
  bool Start(const std::string& data_dir, const ServerConfig& config = {}) {
    std::vector<std::string> argv = {COWBLKD_BIN,
                                     "--data-dir",
                                     data_dir,
                                     "--listen",
                                     "127.0.0.1:" + std::to_string(config.port),
                                     "--drain-seconds",
                                     std::to_string(config.drain_seconds)};
    argv.insert(argv.end(), config.args.begin(), config.args.end());
    int fds[2];
    if (pipe2(fds, O_CLOEXEC) != 0) return false;
    {
      std::lock_guard<std::mutex> lock(mu_);
      log_.clear();
      serving_ = eof_ = false;
      port_ = 0;
    }
    // Parallel tests must not fight over a fixed metrics port (an
    // environment variable: harmless to a cowblkd without metrics).
    pid_ = testing::Spawn(argv, {{"COWBLK_METRICS_LISTEN", "127.0.0.1:0"}}, -1, fds[1]);
    if (pid_ < 0) {
      close(fds[0]);
      close(fds[1]);
      return false;
    }
    close(fds[1]);
    reader_ = std::thread([this, fd = fds[0]] { Drain(fd); });
    std::unique_lock<std::mutex> lock(mu_);
    cv_.wait(lock, [this] { return serving_ || eof_; });
    return serving_;
  }

  // Starts on a random port below the kernel's ephemeral range, trying
  // others if one is taken. A test that restarts the server on its port
  // needs this: an ephemeral port freed by a stop may be handed to another
  // test's server (listening on port 0) before the restart.
  bool StartOnFixedPort(const std::string& data_dir, ServerConfig config = {}) {
    int low = 32768, high = 60999;
    std::ifstream range("/proc/sys/net/ipv4/ip_local_port_range");
    range >> low >> high;
    std::random_device rd;
    const int span = std::max(1000, low - 10000);
    for (int attempt = 0; attempt < 20; ++attempt) {
      config.port = low - 1 - static_cast<int>(rd() % static_cast<unsigned>(span));
      if (Start(data_dir, config)) return true;
    }
    return false;
  }

  // Sends `sig`, waits for the exit, returns the exit code (128 + signal
  // when killed by one).
  int Stop(int sig = SIGTERM) {
    if (pid_ <= 0) return -1;
    kill(pid_, sig);
    int status = 0;
    waitpid(pid_, &status, 0);
    pid_ = -1;
    if (reader_.joinable()) reader_.join();
    if (getenv("COWBLK_TEST_SERVER_LOG") != nullptr) fprintf(stderr, "%s", log().c_str());
    return WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
  }

  bool running() const { return pid_ > 0; }
  int port() const { return port_; }
  std::string address() const { return "127.0.0.1:" + std::to_string(port_); }
  std::string log() const {
    std::lock_guard<std::mutex> lock(mu_);
    return log_;
  }

 private:
  void Drain(int fd) {
    char buf[4096];
    ssize_t n;
    while ((n = read(fd, buf, sizeof buf)) > 0) {
      std::lock_guard<std::mutex> lock(mu_);
      log_.append(buf, static_cast<size_t>(n));
      if (!serving_) {
        static constexpr char kServing[] = "event=serving address=127.0.0.1:";
        const size_t at = log_.find(kServing);
        if (at != std::string::npos) {
          port_ = std::stoi(log_.substr(at + sizeof kServing - 1));
          serving_ = true;
          cv_.notify_all();
        }
      }
    }
    close(fd);
    std::lock_guard<std::mutex> lock(mu_);
    eof_ = true;
    cv_.notify_all();
  }

  pid_t pid_ = -1;
  std::thread reader_;
  mutable std::mutex mu_;
  std::condition_variable cv_;
  std::string log_;
  bool serving_ = false;
  bool eof_ = false;
  int port_ = 0;
};

}  // namespace cowblk::testing

#endif  // COWBLK_TESTS_CLIENT_COWBLKD_SERVER_H_
