// A real cowblkd as a child process of the test, on a loopback port: the
// one harness every C++ test that needs a server uses (the fixtures in
// server_fixture.h and tests/client/client_fixture.h hold one).
//
// Start() returns once the server logged `event=serving` (read from its
// stderr, which a thread keeps draining), and WaitForLog() waits for any
// other line the same way: tests never sleep to wait for the server.
// Set COWBLK_TEST_SERVER_LOG=1 to have every server's log printed when it
// stops.

#ifndef COWBLK_TESTS_SUPPORT_COWBLKD_PROCESS_H_
#define COWBLK_TESTS_SUPPORT_COWBLKD_PROCESS_H_

#include <grpcpp/grpcpp.h>
#include <signal.h>

#include <condition_variable>
#include <functional>
#include <memory>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include "tests/support/child_process.h"

namespace cowblk::testing {

// How to start cowblkd. The command line is
//   cowblkd --data-dir DIR --listen 127.0.0.1:PORT --drain-seconds 5 ARGS...
// where `--listen` and `--drain-seconds` are left out when `args` gives
// them (cowblkd refuses a flag given twice).
struct ServerConfig {
  int port = 0;                        // 0: an ephemeral port
  std::vector<std::string> args = {};  // more flags
  // Set on top of this process's environment. COWBLK_METRICS_LISTEN is
  // 127.0.0.1:0 unless set here, so parallel tests never fight over the
  // fixed metrics port (--metrics-listen in `args` overrides either).
  Env env = {};
  // A command that runs cowblkd, put before it on the command line: e.g.
  // setpriv, to run it as another user (pid() is still cowblkd's, as such
  // a command execs it). Empty: cowblkd itself.
  std::vector<std::string> wrapper = {};
};

// Thread-compatible: one thread starts, stops and restarts it; log(),
// WaitForLog() and the accessors may be called from any thread while it
// runs.
class CowblkdProcess {
 public:
  CowblkdProcess() = default;
  CowblkdProcess(const CowblkdProcess&) = delete;
  CowblkdProcess& operator=(const CowblkdProcess&) = delete;
  // Kills a server still running (SIGKILL).
  ~CowblkdProcess();

  // Starts cowblkd over `data_dir` as `config` says and waits until it
  // serves. Returns false (see log()) if it exits first.
  // REQUIRES: not running().
  bool Start(const std::string& data_dir, const ServerConfig& config = {});
  // Start(data_dir, {.args = args}).
  bool Start(const std::string& data_dir, const std::vector<std::string>& args);

  // Start() on a random port below the kernel's ephemeral range, trying
  // others if one is taken. A test that restarts the server on its port
  // needs this: an ephemeral port freed by a stop may be handed to another
  // test's server (listening on port 0) before the restart.
  bool StartOnFixedPort(const std::string& data_dir, ServerConfig config = {});

  // Sends `sig`, waits for the exit, returns the exit code (128 + signal
  // when a signal ended it; -1 when not running). A ThreadSanitizer or
  // AddressSanitizer report in the server's log (make test-tsan, make
  // test-asan) is a failure of the running test: nothing else reads the
  // log, and a report during a test's teardown would otherwise pass unseen.
  int Stop(int sig = SIGTERM);

  // Stops the server with `sig` and starts it again over the same data
  // directory on the same port with the same flags; `between` (may be
  // null) runs while it is down. Returns what Start() returns.
  // REQUIRES: started without --listen in ServerConfig::args.
  bool Restart(int sig, const std::function<void()>& between = nullptr);

  // Blocks until the log contains `text` at least `n` times, or the server
  // exited (the caller checks which).
  void WaitForLog(const std::string& text, size_t n = 1);

  bool running() const { return child_.running(); }
  pid_t pid() const { return child_.pid(); }
  int port() const { return port_; }
  // "127.0.0.1:PORT", the gRPC address.
  std::string address() const { return "127.0.0.1:" + std::to_string(port_); }
  // A plaintext channel to address().
  std::shared_ptr<grpc::Channel> Channel() const;
  // A channel with `creds` (TLS, mutual TLS); `args` may add e.g. a TLS
  // target name override. Messages up to 64 MiB either way.
  std::shared_ptr<grpc::Channel> Channel(const std::shared_ptr<grpc::ChannelCredentials>& creds,
                                         grpc::ChannelArguments args = {}) const;

  // What the server wrote to stderr so far (its log).
  std::string log() const;
  // The value of `name=` in the `event=serving` line ("nbd", "metrics",
  // "write_split_kib"), or "" when there is no such line or field.
  std::string ServingField(const std::string& name) const;
  // The metrics HOST:PORT from the serving line, "" when metrics are off.
  std::string MetricsAddress() const;

 private:
  // The log reader's thread: appends to log_ until end of file.
  void Drain(int fd);
  // ADD_FAILURE with the first sanitizer report in log(), if any.
  void ExpectNoSanitizerReport() const;

  ChildProcess child_;
  std::thread reader_;
  std::string data_dir_;  // of the last Start()
  ServerConfig config_;   // of the last Start()
  mutable std::mutex mu_;
  std::condition_variable cv_;
  std::string log_;      // guarded by mu_
  bool serving_ = false;  // guarded by mu_
  bool eof_ = false;      // guarded by mu_
  int port_ = 0;          // written under mu_ before Start() returns
};

}  // namespace cowblk::testing

#endif  // COWBLK_TESTS_SUPPORT_COWBLKD_PROCESS_H_
