// A fixture with a real cowblkd on a fresh data directory and a
// cowblk::Client connected to it.

#ifndef COWBLK_TESTS_CLIENT_CLIENT_FIXTURE_H_
#define COWBLK_TESTS_CLIENT_CLIENT_FIXTURE_H_

#include <functional>
#include <memory>
#include <string>

#include "cowblk/client.h"
#include "cowblk/volume.h"
#include "gtest/gtest.h"
#include "tests/client/cowblkd_server.h"
#include "tests/unit/test_util.h"

namespace cowblk::testing {

// Asserts an absl::StatusOr is OK and yields its value.
#define COWBLK_ASSERT_OK_AND_ASSIGN(lhs, expr)     \
  auto lhs##_or = (expr);                          \
  ASSERT_TRUE(lhs##_or.ok()) << lhs##_or.status(); \
  auto lhs = *std::move(lhs##_or)

class ClientFixture : public ::testing::Test {
 protected:
  void SetUp() override { StartServer(); }

  // Starts the server (on a fixed port when `fixed_port_`) and connects.
  void StartServer(const ServerConfig& config = {}) {
    server_config_ = config;
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

  // Stops the server with `sig` and starts it again on the same port with
  // the same flags (fixed_port_ makes sure the port is still free);
  // `between` runs while it is down.
  void Restart(int sig, const std::function<void()>& between = nullptr) {
    ServerConfig config = server_config_;
    config.port = server_.port();
    server_.Stop(sig);
    if (between) between();
    ASSERT_TRUE(server_.Start(dir_.path(), config)) << server_.log();
  }

  TempDir dir_;
  CowblkdServer server_;
  ServerConfig server_config_;  // of the last StartServer
  bool fixed_port_ = false;
  ClientOptions client_options_;
  std::unique_ptr<Client> client_;
};

}  // namespace cowblk::testing

#endif  // COWBLK_TESTS_CLIENT_CLIENT_FIXTURE_H_
