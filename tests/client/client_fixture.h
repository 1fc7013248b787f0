// A fixture with a real cowblkd (tests/support/cowblkd_process.h) on a
// fresh data directory and a cowblk::Client connected to it; and
// RoundWriter, which keeps a volume's blocks changing while a test stops
// and restarts the server.

#ifndef COWBLK_TESTS_CLIENT_CLIENT_FIXTURE_H_
#define COWBLK_TESTS_CLIENT_CLIENT_FIXTURE_H_

#include <atomic>
#include <condition_variable>
#include <functional>
#include <future>
#include <memory>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include "cowblk/client.h"
#include "cowblk/volume.h"
#include "gtest/gtest.h"
#include "tests/support/cowblkd_process.h"
#include "tests/support/scratch.h"

namespace cowblk::testing {

// Asserts an absl::StatusOr is OK and yields its value.
#define COWBLK_ASSERT_OK_AND_ASSIGN(lhs, expr)     \
  auto lhs##_or = (expr);                          \
  ASSERT_TRUE(lhs##_or.ok()) << lhs##_or.status(); \
  auto lhs = *std::move(lhs##_or)

// Writes every block of a volume with fresh bytes, round after round, on a
// thread of its own (each round's writes in flight together), until
// Finish() and at least three rounds; `after_round` (may be null) runs on
// that thread after each round's writes completed and returns the number
// of failures it found. Writes that fail are reported as test failures;
// failed() counts both.
class RoundWriter {
 public:
  using AfterRound = std::function<int(int round, const std::vector<std::string>& written)>;
  RoundWriter(Volume* volume, int blocks, uint64_t block_size, AfterRound after_round = nullptr)
      : volume_(volume),
        block_size_(block_size),
        want_(static_cast<size_t>(blocks), std::string(block_size, '\0')),
        after_round_(std::move(after_round)),
        thread_([this] { Run(); }) {}
  ~RoundWriter() { Finish(); }

  // Waits until `n` rounds are done; returns how many are.
  int WaitRounds(int n) {
    std::unique_lock<std::mutex> lock(mu_);
    cv_.wait(lock, [&] { return rounds_ >= n; });
    return rounds_;
  }
  // Ends the writing (after round 3 at the earliest) and waits for it.
  void Finish() {
    stop_ = true;
    if (thread_.joinable()) thread_.join();
  }
  int failed() const { return failed_.load(); }
  // What each block holds since the last complete round (after Finish()).
  const std::vector<std::string>& want() const { return want_; }

 private:
  void Run() {
    const int blocks = static_cast<int>(want_.size());
    for (int round = 0; !stop_.load() || round < 3; ++round) {
      std::vector<std::string> data(want_.size());
      std::vector<std::future<absl::Status>> writes;
      for (int i = 0; i < blocks; ++i) {
        data[i] = RandomBytes(block_size_, 100 + round * blocks + i);
        writes.push_back(volume_->WriteAsync(uint64_t(i) * block_size_, data[i].data(), block_size_));
      }
      for (auto& w : writes) {
        absl::Status s = w.get();
        if (!s.ok()) {
          ADD_FAILURE() << s;
          ++failed_;
        }
      }
      want_ = data;
      if (after_round_) failed_ += after_round_(round, want_);
      std::lock_guard<std::mutex> lock(mu_);
      ++rounds_;
      cv_.notify_all();
    }
  }

  Volume* const volume_;
  const uint64_t block_size_;
  std::vector<std::string> want_;  // the writer thread's until Finish()
  const AfterRound after_round_;
  std::atomic<int> failed_{0};
  std::atomic<bool> stop_{false};
  std::mutex mu_;
  std::condition_variable cv_;
  int rounds_ = 0;  // guarded by mu_
  std::thread thread_;  // last: starts once the rest is built
};

class ClientFixture : public ::testing::Test {
 protected:
  void SetUp() override { StartServer(); }

  // Starts the server (on a fixed port when `fixed_port_`) and connects.
  void StartServer(const ServerConfig& config = {}) {
    ASSERT_TRUE(fixed_port_ ? server_.StartOnFixedPort(dir_.path(), config)
                            : server_.Start(dir_.path(), config))
        << server_.log();
    ClientOptions options = client_options_;
    options.target = server_.address();
    auto client = Client::Create(options);
    ASSERT_TRUE(client.ok()) << client.status();
    client_ = std::make_unique<Client>(*std::move(client));
  }

  // A blank volume, opened.
  std::unique_ptr<Volume> NewVolume(const std::string& name, uint64_t size,
                                    const VolumeOptions& options = {}) {
    auto info = client_->CreateVolume(name, size);
    EXPECT_TRUE(info.ok()) << info.status();
    auto volume = client_->OpenVolume(name, options);
    EXPECT_TRUE(volume.ok()) << volume.status();
    return volume.ok() ? *std::move(volume) : nullptr;
  }

  // CowblkdProcess::Restart(), a test failure if the server does not come
  // back (fixed_port_ makes sure the port is still free).
  void Restart(int sig, const std::function<void()>& between = nullptr) {
    ASSERT_TRUE(server_.Restart(sig, between)) << server_.log();
  }

  TempDir dir_;
  CowblkdProcess server_;
  bool fixed_port_ = false;
  ClientOptions client_options_;
  std::unique_ptr<Client> client_;
};

}  // namespace cowblk::testing

#endif  // COWBLK_TESTS_CLIENT_CLIENT_FIXTURE_H_
