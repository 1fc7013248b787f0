// The gateway's NBD server: accepts on a listener (listener.h), serves each
// client with a Connection over the exports, and shuts down cleanly.
//
// Resources: at most `max_connections` clients at once (more are closed at
// once); a connection is reaped (threads joined, socket closed, buffers
// freed) as soon as it ends.
//
// Thread-safety: Shutdown from any one thread.

#ifndef COWBLK_CLIENT_GATEWAY_SERVER_H_
#define COWBLK_CLIENT_GATEWAY_SERVER_H_

#include <list>
#include <memory>
#include <mutex>
#include <thread>

#include "absl/status/statusor.h"
#include "client/gateway/connection.h"
#include "client/gateway/exports.h"

namespace cowblk::gateway {

struct ServerOptions {
  int max_connections = 64;
  ConnectionOptions connection;
};

class Server {
 public:
  // Accepts on `listen_fd` (not owned; open until Shutdown returned) for
  // `exports` (outlive the server).
  static absl::StatusOr<std::unique_ptr<Server>> Start(int listen_fd, const Exports* exports,
                                                       ServerOptions options);
  ~Server();
  Server(const Server&) = delete;
  Server& operator=(const Server&) = delete;

  // Stops accepting; every client's requests in flight are answered, then
  // its connection closes. Returns when all have.
  void Shutdown();

 private:
  Server(int listen_fd, int wake_fd, const Exports* exports, ServerOptions options);
  void AcceptLoop();
  void Accept();
  // Joins and frees the connections that finished.
  void Reap();

  const int listen_fd_;
  const int wake_fd_;  // eventfd: a connection ended, or Shutdown
  const Exports* const exports_;
  const ServerOptions options_;
  std::thread acceptor_;
  uint64_t accepted_ = 0;

  std::mutex mu_;  // guards connections_ and stop_
  std::list<std::unique_ptr<Connection>> connections_;
  bool stop_ = false;
};

}  // namespace cowblk::gateway

#endif  // COWBLK_CLIENT_GATEWAY_SERVER_H_
