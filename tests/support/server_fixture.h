// A gtest fixture with a real cowblkd (cowblkd_process.h) over a fresh data
// directory, stubs of both services on a plaintext channel to it, and the
// RPCs the server tests share. SetUp() starts the server with no extra
// flags; a test that wants others overrides SetUp() and calls
// StartServer(args).

#ifndef COWBLK_TESTS_SUPPORT_SERVER_FIXTURE_H_
#define COWBLK_TESTS_SUPPORT_SERVER_FIXTURE_H_

#include <grpcpp/grpcpp.h>
#include <signal.h>

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "cowblk/v1/block.grpc.pb.h"
#include "cowblk/v1/volume.grpc.pb.h"
#include "gtest/gtest.h"
#include "tests/support/cowblkd_process.h"
#include "tests/support/scratch.h"

namespace cowblk::testing {

namespace v1 = ::cowblk::v1;

class ServerFixture : public ::testing::Test {
 protected:
  void SetUp() override { StartServer(); }

  // Starts cowblkd over dir_ with `args` (a test failure if it does not
  // serve) and makes volumes_ and blocks_ for it.
  void StartServer(const std::vector<std::string>& args = {});
  // The same with more than flags (an environment, a wrapper).
  void StartServer(const ServerConfig& config);
  // server_.Stop(sig).
  int StopServer(int sig = SIGTERM) { return server_.Stop(sig); }

  // CreateVolume: blank of `size` bytes, or over `image` when set.
  grpc::Status Create(const std::string& name, uint64_t size, const std::string& image = "",
                      v1::Volume* out = nullptr);
  // UploadImage in chunks of 1 MiB.
  grpc::Status Upload(const std::string& name, const std::string& bytes);
  // One Write call of one message.
  grpc::Status WriteData(const std::string& volume, uint64_t offset, const std::string& data,
                         bool flush = false);
  // One Read call; `*out` gets the chunks, each checked to follow the last.
  grpc::Status ReadData(const std::string& volume, uint64_t offset, uint64_t length,
                        std::string* out);
  grpc::Status Flush(const std::string& volume);

  // TreeState() of the data directory: equal snapshots mean a refused
  // request changed nothing on disk.
  std::string Snapshot() const { return TreeState(dir_.path()); }

  TempDir dir_;
  CowblkdProcess server_;
  std::unique_ptr<v1::VolumeService::Stub> volumes_;
  std::unique_ptr<v1::BlockService::Stub> blocks_;
};

}  // namespace cowblk::testing

#endif  // COWBLK_TESTS_SUPPORT_SERVER_FIXTURE_H_
