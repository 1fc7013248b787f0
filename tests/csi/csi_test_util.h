// Small helpers of the CSI tests that run the node service: files read and
// written (synced) on mounted volumes, and a channel to a plugin's socket
// that connects as soon as the plugin listens.

#ifndef COWBLK_TESTS_CSI_CSI_TEST_UTIL_H_
#define COWBLK_TESTS_CSI_CSI_TEST_UTIL_H_

#include <fcntl.h>
#include <grpcpp/grpcpp.h>
#include <unistd.h>

#include <chrono>
#include <fstream>
#include <iterator>
#include <memory>
#include <string>

namespace cowblk::testing {

inline std::string ReadWholeFile(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  return std::string((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
}

// Writes `data` to `path` and fsyncs it; false (errno set) on failure.
inline bool WriteFileSynced(const std::string& path, const std::string& data) {
  const int fd = open(path.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
  if (fd < 0) return false;
  const bool ok = write(fd, data.data(), data.size()) == static_cast<ssize_t>(data.size()) &&
                  fsync(fd) == 0;
  const int err = errno;
  close(fd);
  errno = err;
  return ok;
}

// A channel to the plugin socket `socket`, connected (or nullptr after 30 s).
// Until the plugin listens the channel retries every 20-100 ms (gRPC's
// default backoff would wait seconds): a wait on a state, not a sleep.
inline std::shared_ptr<grpc::Channel> ConnectToPlugin(const std::string& socket) {
  grpc::ChannelArguments args;
  args.SetInt(GRPC_ARG_INITIAL_RECONNECT_BACKOFF_MS, 20);
  args.SetInt(GRPC_ARG_MIN_RECONNECT_BACKOFF_MS, 20);
  args.SetInt(GRPC_ARG_MAX_RECONNECT_BACKOFF_MS, 100);
  auto channel = grpc::CreateCustomChannel("unix://" + socket, grpc::InsecureChannelCredentials(), args);
  if (!channel->WaitForConnected(std::chrono::system_clock::now() + std::chrono::seconds(30))) {
    return nullptr;
  }
  return channel;
}

}  // namespace cowblk::testing

#endif  // COWBLK_TESTS_CSI_CSI_TEST_UTIL_H_
