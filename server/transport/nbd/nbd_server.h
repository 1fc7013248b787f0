// cowblkd's NBD export (`--nbd-listen`): the volumes of the store, served
// with the Network Block Device protocol (fixed newstyle handshake, simple
// replies) through the same request pipeline (server/core) and engine as
// the gRPC Session, so every engine invariant holds for both. qemu, the kernel's nbd-client, nbdcopy and any
// libnbd program can then use a volume directly, and large sequential I/O
// costs what it costs with other NBD servers (docs/design.md, "The NBD
// export").
//
// NBD has no authentication here: cowblkd refuses `--nbd-listen` together
// with tokens or TLS (the export would bypass them).
//
// Threads: one accepts; each connection (connection.h) has a reader
// (handshake.h, then transmission.h) and a writer (reply_sender.h).

#ifndef COWBLK_SERVER_TRANSPORT_NBD_NBD_SERVER_H_
#define COWBLK_SERVER_TRANSPORT_NBD_NBD_SERVER_H_

#include <chrono>
#include <cstdint>
#include <list>
#include <memory>
#include <mutex>
#include <string>
#include <thread>

#include "absl/status/statusor.h"
#include "server/store/store.h"

namespace cowblk::nbd {

// Reads at least this long skip the copy through memory
// (NbdServerOptions::zero_copy). Up to 128 KiB a copy costs as little as the
// hand-off to the connection's writer thread (docs/design.md, "The NBD
// export").
inline constexpr uint32_t kZeroCopyMinBytes = 256 << 10;

struct NbdServerOptions {
  std::string listen;  // HOST:PORT (port 0: any)
  // Requests of one connection submitted but not yet answered before the
  // server stops reading that connection.
  uint32_t max_in_flight = 256;
  // For volumes that use the page cache, reads of kZeroCopyMinBytes and
  // more are sent from the volume's files (engine::LocateRead): each
  // run is spliced from the file through a pipe into the socket, so the
  // server copies none of their data.
  bool zero_copy = true;
  // For volumes that use the page cache, the connection's reader writes a
  // write's payload into the COW file itself, and the engine only sets the
  // bits (VolumeHandle::WriteAndSubmit): no hand-off of the data to a
  // kernel worker on another core.
  bool inline_writes = true;
};

class Connection;

class NbdServer {
 public:
  // Listens and starts accepting. `store` must outlive the server.
  static absl::StatusOr<std::unique_ptr<NbdServer>> Start(const NbdServerOptions& options,
                                                          store::Store* store);
  // Shutdown(now) if not done yet.
  ~NbdServer();
  NbdServer(const NbdServer&) = delete;
  NbdServer& operator=(const NbdServer&) = delete;

  // The address it listens on, with the port it got.
  const std::string& address() const { return address_; }
  uint16_t port() const { return port_; }
  // Stops accepting; every connection reads no more requests, answers the
  // ones in flight and closes. Connections still busy at `deadline` (a
  // client that does not read its replies) are cut. Returns once every
  // connection thread has ended. Call before the store closes its volumes.
  void Shutdown(std::chrono::steady_clock::time_point deadline);

 private:
  NbdServer(const NbdServerOptions& options, store::Store* store, int listen_fd, int wake_fd,
            std::string address, uint16_t port);
  void AcceptLoop();
  // Joins and drops connections that have ended. REQUIRES: mu_ held.
  void ReapLocked();

  const NbdServerOptions options_;
  store::Store* const store_;
  const int listen_fd_;
  const int wake_fd_;  // eventfd: stops AcceptLoop
  const std::string address_;
  const uint16_t port_;
  std::thread acceptor_;
  std::mutex mu_;  // guards below
  std::list<std::shared_ptr<Connection>> connections_;
  bool shut_down_ = false;
};

}  // namespace cowblk::nbd

#endif  // COWBLK_SERVER_TRANSPORT_NBD_NBD_SERVER_H_
