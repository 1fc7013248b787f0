#include "tests/support/cowblkd_process.h"

#include <fcntl.h>
#include <unistd.h>

#include <algorithm>
#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <random>
#include <utility>

#include "gtest/gtest.h"

namespace cowblk::testing {

CowblkdProcess::~CowblkdProcess() {
  if (running()) Stop(SIGKILL);
}

bool CowblkdProcess::Start(const std::string& data_dir, const ServerConfig& config) {
  data_dir_ = data_dir;
  config_ = config;
  const std::vector<std::string>& args = config.args;
  std::vector<std::string> argv = {COWBLKD_BIN, "--data-dir", data_dir};
  auto given = [&](const char* flag) {
    return std::find(args.begin(), args.end(), flag) != args.end();
  };
  if (!given("--listen")) {
    argv.insert(argv.end(), {"--listen", "127.0.0.1:" + std::to_string(config.port)});
  }
  if (!given("--drain-seconds")) argv.insert(argv.end(), {"--drain-seconds", "5"});
  argv.insert(argv.end(), args.begin(), args.end());
  argv.insert(argv.begin(), config.wrapper.begin(), config.wrapper.end());
  Env env = config.env;
  if (std::none_of(env.begin(), env.end(),
                   [](const auto& e) { return e.first == "COWBLK_METRICS_LISTEN"; })) {
    env.emplace_back("COWBLK_METRICS_LISTEN", "127.0.0.1:0");
  }
  int fds[2];
  if (pipe2(fds, O_CLOEXEC) != 0) return false;
  {
    std::lock_guard<std::mutex> lock(mu_);
    log_.clear();
    serving_ = eof_ = false;
    port_ = 0;
  }
  const bool started = child_.Start(argv, env, -1, fds[1]);
  close(fds[1]);
  if (!started) {
    close(fds[0]);
    return false;
  }
  reader_ = std::thread([this, fd = fds[0]] { Drain(fd); });
  {
    std::unique_lock<std::mutex> lock(mu_);
    cv_.wait(lock, [this] { return serving_ || eof_; });
    if (!serving_) return false;
  }
  // A suite run with COWBLK_IO_BACKEND=threads (the threads.* tests) runs
  // every server it starts on that backend, unless the test chooses.
  const char* env_backend = getenv("COWBLK_IO_BACKEND");
  const std::string backend = env_backend != nullptr ? env_backend : "";
  if ((backend == "threads" || backend == "uring") && !given("--io-backend") &&
      std::none_of(env.begin(), env.end(),
                   [](const auto& e) { return e.first == "COWBLK_IO_BACKEND"; })) {
    EXPECT_EQ(ServingField("io_backend"), backend) << "COWBLK_IO_BACKEND=" << backend;
  }
  return true;
}

bool CowblkdProcess::Start(const std::string& data_dir, const std::vector<std::string>& args) {
  ServerConfig config;
  config.args = args;
  return Start(data_dir, config);
}

bool CowblkdProcess::StartOnFixedPort(const std::string& data_dir, ServerConfig config) {
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

int CowblkdProcess::Stop(int sig) {
  const int code = child_.Stop(sig);
  if (reader_.joinable()) reader_.join();
  if (code != -1) ExpectNoSanitizerReport();
  if (code != -1 && getenv("COWBLK_TEST_SERVER_LOG") != nullptr) {
    fprintf(stderr, "%s", log().c_str());
  }
  return code;
}

void CowblkdProcess::ExpectNoSanitizerReport() const {
  const std::string text = log();
  for (const char* mark : {"WARNING: ThreadSanitizer", "ERROR: AddressSanitizer"}) {
    const size_t at = text.find(mark);
    if (at != std::string::npos) {
      ADD_FAILURE() << "cowblkd reported (its log from there):\n" << text.substr(at, 16384);
      return;
    }
  }
}

bool CowblkdProcess::Restart(int sig, const std::function<void()>& between) {
  ServerConfig config = config_;
  config.port = port();
  Stop(sig);
  if (between) between();
  return Start(data_dir_, config);
}

void CowblkdProcess::WaitForLog(const std::string& text, size_t n) {
  std::unique_lock<std::mutex> lock(mu_);
  cv_.wait(lock, [&] {
    size_t count = 0;
    for (size_t at = log_.find(text); at != std::string::npos; at = log_.find(text, at + 1)) {
      ++count;
    }
    return count >= n || eof_;
  });
}

std::shared_ptr<grpc::Channel> CowblkdProcess::Channel() const {
  return Channel(grpc::InsecureChannelCredentials());
}

std::shared_ptr<grpc::Channel> CowblkdProcess::Channel(
    const std::shared_ptr<grpc::ChannelCredentials>& creds, grpc::ChannelArguments args) const {
  args.SetMaxReceiveMessageSize(64 << 20);
  args.SetMaxSendMessageSize(64 << 20);
  return grpc::CreateCustomChannel(address(), creds, args);
}

std::string CowblkdProcess::log() const {
  std::lock_guard<std::mutex> lock(mu_);
  return log_;
}

std::string CowblkdProcess::ServingField(const std::string& name) const {
  const std::string text = log();
  const size_t line = text.find("event=serving ");
  if (line == std::string::npos) return "";
  const size_t at = text.find(" " + name + "=", line);
  if (at == std::string::npos) return "";
  const size_t start = at + name.size() + 2;
  return text.substr(start, text.find_first_of(" \n", start) - start);
}

std::string CowblkdProcess::MetricsAddress() const {
  const std::string value = ServingField("metrics");
  return value == "off" ? "" : value;
}

void CowblkdProcess::Drain(int fd) {
  char buf[4096];
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

}  // namespace cowblk::testing
