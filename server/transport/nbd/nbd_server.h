// cowblkd's NBD export (`--nbd-listen`): the volumes of the store, served
// with the Network Block Device protocol (fixed newstyle handshake, simple
// replies) through the same request pipeline (server/core) and engine as
// the gRPC Session, so every engine invariant holds for both. qemu, the kernel's nbd-client, nbdcopy and any
// libnbd program can then use a volume directly, and large sequential I/O
// costs what it costs with other NBD servers (docs/design.md, "The NBD
// export").
//
// Security: with `tls`, TLS is required (NBD_OPT_STARTTLS; tls.h), and
// with `access` each client sees and opens only the volumes its identity
// may (handshake.h).
//
// Threads: one accepts; each connection (connection.h) has a reader
// (handshake.h, then transmission.h) and a writer (reply_sender.h).
//
// Resources: at most max_connections connections are served; more are
// closed at once (`nbd_refused`), as is a connection whose threads or
// state the system refuses (a pids limit, a memory limit): the export and
// the daemon go on. The accepting thread also keeps every connection's
// handshake deadline, reaps a connection the moment it ends (its threads
// joined; its socket, pipe, volume files and buffers released; memory given
// back to the system with malloc_trim, at most once a second), and at the
// descriptor limit (EMFILE, ENFILE) stops accepting for a back-off
// instead of spinning. Counted in NbdStats (metrics: nbd_collector.h).

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
#include "server/core/budget.h"
#include "server/store/store.h"
#include "server/transport/nbd/handshake.h"
#include "server/transport/nbd/nbd_stats.h"
#include "server/transport/nbd/tls.h"

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
  // Request bytes one connection may hold in flight (--max-stream-bytes),
  // and the server-wide budget they come from (null: none; outlives the
  // server).
  uint64_t max_stream_bytes = uint64_t{64} << 20;
  core::Budget* budget = nullptr;
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
  // Connections served at once; more are refused (closed at once).
  uint32_t max_connections = 256;
  // From accept to the chosen volume, the whole handshake; a client slower
  // than this (silent, or dripping bytes) is cut.
  std::chrono::milliseconds handshake_timeout{30000};
  // Transmission phase: a connection that received nothing this long while
  // none of its requests was in flight is closed. 0: never.
  std::chrono::milliseconds idle_timeout{0};
  // A send to a client that makes no progress this long (the client stopped
  // reading its replies) ends the connection. 0: never.
  std::chrono::milliseconds send_timeout{60000};
  // TLS, required when set: X.509 with the gRPC port's certificate, key and
  // client CA.
  std::shared_ptr<const TlsServer> tls;
  // Who may use which volume; null: every client every volume.
  ExportAccess access;
};

class Connection;

class NbdServer {
 public:
  // Listens and starts accepting. `store` must outlive the server.
  // InvalidArgument for an address without a host (":PORT" would mean every
  // interface, which must be asked for: "0.0.0.0:PORT", "[::]:PORT").
  static absl::StatusOr<std::unique_ptr<NbdServer>> Start(const NbdServerOptions& options,
                                                          store::Store* store);
  // Shutdown(now) if not done yet.
  ~NbdServer();
  NbdServer(const NbdServer&) = delete;
  NbdServer& operator=(const NbdServer&) = delete;

  // The address it listens on, with the port it got.
  const std::string& address() const { return address_; }
  uint16_t port() const { return port_; }
  // The export's counters (shared: a metrics collector may keep them).
  std::shared_ptr<const NbdStats> stats() const { return stats_; }
  // Stops accepting; every connection reads no more requests, answers the
  // ones in flight and closes. Connections still busy at `deadline` (a
  // client that does not read its replies) are cut. Returns once every
  // connection thread has ended. Call before the store closes its volumes.
  void Shutdown(std::chrono::steady_clock::time_point deadline);

 private:
  using Clock = std::chrono::steady_clock;

  NbdServer(const NbdServerOptions& options, store::Store* store, int listen_fd, int wake_fd,
            int reap_fd, std::string address, uint16_t port);
  void AcceptLoop();
  // Accepts one connection and serves or refuses it; false when accept
  // failed for want of descriptors or memory (the caller backs off).
  bool AcceptOne(bool first_failure);
  // Joins and drops connections that have ended; true if there were any.
  bool Reap();
  // Cuts connections past their handshake deadline; returns the next
  // deadline (Clock::time_point::max() when none).
  Clock::time_point CutLateHandshakes(Clock::time_point now);
  // Counts a refused connection and logs nbd_refused, at most once a
  // second per reason (the lines in between are counted in `suppressed`).
  void Refuse(Refusal why, const std::string& peer, const std::string& error);

  const NbdServerOptions options_;
  store::Store* const store_;
  const int listen_fd_;
  const int wake_fd_;  // eventfd: stops AcceptLoop
  const int reap_fd_;  // eventfd: a connection ended
  const std::string address_;
  const uint16_t port_;
  const std::shared_ptr<NbdStats> stats_ = std::make_shared<NbdStats>();
  std::thread acceptor_;
  // The accepting thread's while it runs, then Shutdown's. In accept order,
  // so the first still in its handshake has the nearest deadline.
  std::list<std::unique_ptr<Connection>> connections_;
  // The accepting thread's: memory is trimmed after connections ended, at
  // most once per kTrimInterval.
  bool trim_pending_ = false;
  Clock::time_point last_trim_{};
  struct RefusalLog {
    Clock::time_point next{};
    uint64_t suppressed = 0;
  };
  RefusalLog refusal_log_[kRefusals];  // the accepting thread's
  std::mutex mu_;  // guards below
  bool shut_down_ = false;
};

}  // namespace cowblk::nbd

#endif  // COWBLK_SERVER_TRANSPORT_NBD_NBD_SERVER_H_
