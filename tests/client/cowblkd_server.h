// Runs a real cowblkd as a child process for the client tests: the
// integration tests' CowblkdProcess (tests/integration/cowblkd_process.h),
// with the port as a parameter, so a test can stop the server and start it
// again on the same address (the reconnect tests). StartOnFixedPort() picks
// a port that no other test's server can be given meanwhile.
//
// Start() returns once the server logged `event=serving` (read from its
// stderr, which a thread keeps draining), so tests never sleep to wait.

#ifndef COWBLK_TESTS_CLIENT_COWBLKD_SERVER_H_
#define COWBLK_TESTS_CLIENT_COWBLKD_SERVER_H_

#include <algorithm>
#include <fstream>
#include <random>
#include <string>
#include <vector>

#include "tests/integration/cowblkd_process.h"

namespace cowblk::testing {

struct ServerConfig {
  int port = 0;                   // 0: an ephemeral port
  int drain_seconds = 5;          // --drain-seconds
  std::vector<std::string> args;  // more flags
};

class CowblkdServer : public CowblkdProcess {
 public:
  // Starts `cowblkd --data-dir DIR --listen 127.0.0.1:PORT ...`. Returns
  // false (see log()) if it exits before serving.
  bool Start(const std::string& data_dir, const ServerConfig& config = {}) {
    std::vector<std::string> args = {"--listen", "127.0.0.1:" + std::to_string(config.port),
                                     "--drain-seconds", std::to_string(config.drain_seconds)};
    args.insert(args.end(), config.args.begin(), config.args.end());
    // Parallel tests must not fight over a fixed metrics port (an
    // environment variable: harmless to a cowblkd without metrics).
    return CowblkdProcess::Start(data_dir, args, {{"COWBLK_METRICS_LISTEN", "127.0.0.1:0"}});
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
};

}  // namespace cowblk::testing

#endif  // COWBLK_TESTS_CLIENT_COWBLKD_SERVER_H_
