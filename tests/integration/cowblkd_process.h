// Runs a real cowblkd as a child process on an ephemeral loopback port.
// Start() returns once the server logged `event=serving` (read from its
// stderr, which a thread keeps draining), so tests never sleep to wait.

#ifndef COWBLK_TESTS_INTEGRATION_COWBLKD_PROCESS_H_
#define COWBLK_TESTS_INTEGRATION_COWBLKD_PROCESS_H_

#include <fcntl.h>
#include <grpcpp/grpcpp.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <condition_variable>
#include <cstdio>
#include <cstdlib>
#include <mutex>
#include <string>
#include <thread>
#include <utility>
#include <vector>

#include "tests/unit/spawn.h"

namespace cowblk::testing {

class CowblkdProcess {
 public:
  CowblkdProcess() = default;
  CowblkdProcess(const CowblkdProcess&) = delete;
  CowblkdProcess& operator=(const CowblkdProcess&) = delete;
  ~CowblkdProcess() {
    if (pid_ > 0) Stop(SIGKILL);
  }

  // Starts `cowblkd --data-dir DIR --listen 127.0.0.1:0 ARGS...` with
  // `env` set on top of this process's environment. Returns false (see
  // log()) if it exits before serving.
  bool Start(const std::string& data_dir, const std::vector<std::string>& args = {},
             const std::vector<std::pair<std::string, std::string>>& env = {}) {
    // Defaults unless `args` sets them (cowblkd refuses a flag given twice).
    std::vector<std::string> argv = {COWBLKD_BIN, "--data-dir", data_dir};
    auto given = [&](const char* flag) {
      return std::find(args.begin(), args.end(), flag) != args.end();
    };
    if (!given("--listen")) argv.insert(argv.end(), {"--listen", "127.0.0.1:0"});
    if (!given("--drain-seconds")) argv.insert(argv.end(), {"--drain-seconds", "5"});
    argv.insert(argv.end(), args.begin(), args.end());
    int fds[2];
    if (pipe2(fds, O_CLOEXEC) != 0) return false;
    {
      std::lock_guard<std::mutex> lock(mu_);
      log_.clear();
      serving_ = eof_ = false;
      port_ = 0;
    }
    pid_ = testing::Spawn(argv, env, -1, fds[1]);
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

  // Sends `sig`, waits for the exit, returns the exit code (128 + signal
  // when killed by one).
  int Stop(int sig = SIGTERM) {
    if (pid_ <= 0) return -1;
    kill(pid_, sig);
    int status = 0;
    waitpid(pid_, &status, 0);
    pid_ = -1;
    if (reader_.joinable()) reader_.join();
    // A debugging aid: COWBLK_TEST_SERVER_LOG=1 prints every server's log.
    if (getenv("COWBLK_TEST_SERVER_LOG") != nullptr) fprintf(stderr, "%s", log().c_str());
    return WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
  }

  // Blocks until the server's log contains `text` at least `n` times (or
  // the server exits); woken by the thread that reads the log.
  void WaitForLog(const std::string& text, size_t n = 1) {
    std::unique_lock<std::mutex> lock(mu_);
    cv_.wait(lock, [&] {
      size_t count = 0;
      for (size_t at = log_.find(text); at != std::string::npos; at = log_.find(text, at + 1)) {
        ++count;
      }
      return count >= n || eof_;
    });
  }

  bool running() const { return pid_ > 0; }
  pid_t pid() const { return pid_; }
  int port() const { return port_; }
  std::string address() const { return "127.0.0.1:" + std::to_string(port_); }
  std::shared_ptr<grpc::Channel> Channel() const {
    return Channel(grpc::InsecureChannelCredentials());
  }
  // A channel with `creds` (TLS, mutual TLS); `args` may add e.g. a TLS
  // target name override.
  std::shared_ptr<grpc::Channel> Channel(const std::shared_ptr<grpc::ChannelCredentials>& creds,
                                         grpc::ChannelArguments args = {}) const {
    args.SetMaxReceiveMessageSize(64 << 20);
    args.SetMaxSendMessageSize(64 << 20);
    return grpc::CreateCustomChannel(address(), creds, args);
  }
  std::string log() const {
    std::lock_guard<std::mutex> lock(mu_);
    return log_;
  }

 private:
  void Drain(int fd) {
    char buf[4096];
    std::string line;
    ssize_t n;
    while ((n = read(fd, buf, sizeof buf)) > 0) {
      std::lock_guard<std::mutex> lock(mu_);
      log_.append(buf, static_cast<size_t>(n));
      cv_.notify_all();
      if (!serving_) {
        const size_t at = log_.find("event=serving address=127.0.0.1:");
        if (at != std::string::npos) {
          port_ = std::stoi(log_.substr(at + 32));
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

#endif  // COWBLK_TESTS_INTEGRATION_COWBLKD_PROCESS_H_
