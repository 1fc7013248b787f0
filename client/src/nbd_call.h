// One NBD connection of a volume to its server's export (VolumeOptions::nbd):
// the path of writes and large reads, with NBD's framing instead of HTTP/2's
// and a read's data received straight into the caller's buffer.
//
// A chunk handed to Send() belongs to the connection until the connection
// hands it back (NbdLane::OnAnswer with its answer, or OnGone with every
// chunk left when the connection ends): until then the connection's
// threads may write a read's data into the chunk's buffer or send a write's
// bytes from it, so nothing else may complete it. A deadline therefore
// Cancel()s the connection, which ends it and hands every chunk back.
//
// Threads: `cowblk-nbd-recv` connects, handshakes (NBD_OPT_GO, fixed
// newstyle; first NBD_OPT_STARTTLS and the TLS handshake when the client
// uses TLS, then a `nbd-tls` relay thread, common/tls_relay.h, carries the
// bytes), starts `cowblk-nbd-send`, then reads replies; when the
// connection fails it shuts the socket down, joins the sender and hands the
// leftovers back. It is detached; the NbdLane counts it alive until
// OnGone returns. Two threads on a blocking socket, not libnbd's one
// thread around poll(2): that measured 0.9x on 1 MiB writes and 0.5-0.7x
// on reads here (bench/RESULTS.md, "Large requests over NBD").
//
// Lifetime: shared (the NbdLane and the connection's thread hold a
// reference). The NbdLane outlives every call into it (its volume's Close()
// waits for OnGone).

#ifndef COWBLK_CLIENT_SRC_NBD_CALL_H_
#define COWBLK_CLIENT_SRC_NBD_CALL_H_

#include <condition_variable>
#include <cstdint>
#include <deque>
#include <memory>
#include <mutex>
#include <string>
#include <thread>
#include <unordered_map>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "client/src/transport.h"
#include "common/tls_relay.h"
#include "cowblk/client.h"

typedef struct ssl_ctx_st SSL_CTX;

namespace cowblk::internal {

class NbdLane;

// The host part of a gRPC target ("host:port", "[v6]:port", "dns:///host:port",
// "ipv4:1.2.3.4:port"), where the NBD export is dialled; empty when the
// target names no TCP host (unix sockets, several addresses).
std::string NbdHostOf(const std::string& target);

// TLS on the NBD path, as the client's gRPC channel has it: the CA (or the
// system's roots), the client certificate (by which cowblkd's export
// authorizes, the token file's `x509:CN=NAME` lines) and the name the
// server certificate must carry (tls_server_name, else the host dialled).
class NbdTls {
 public:
  static absl::StatusOr<std::shared_ptr<const NbdTls>> Create(const ClientOptions& options,
                                                              const std::string& host);
  ~NbdTls();
  NbdTls(const NbdTls&) = delete;
  NbdTls& operator=(const NbdTls&) = delete;
  // The client side of the TLS handshake on the blocking socket `fd` (the
  // session takes a duplicate of it).
  absl::StatusOr<nbd::TlsSession> Connect(int fd) const;

 private:
  NbdTls(SSL_CTX* ctx, std::string server_name) : ctx_(ctx), server_name_(std::move(server_name)) {}
  SSL_CTX* const ctx_;
  const std::string server_name_;
};

class NbdCall final : public Carrier, public std::enable_shared_from_this<NbdCall> {
 public:
  // A connection of `lane` to export `export_name` (of `size` bytes) at
  // host:port, over TLS when `tls` is set. Nothing happens until Start().
  NbdCall(NbdLane* lane, std::string host, std::string port, std::string export_name,
          uint64_t size, std::shared_ptr<const NbdTls> tls = nullptr)
      : lane_(lane),
        host_(std::move(host)),
        port_(std::move(port)),
        export_name_(std::move(export_name)),
        size_(size),
        tls_(std::move(tls)) {}
  ~NbdCall();
  NbdCall(const NbdCall&) = delete;
  NbdCall& operator=(const NbdCall&) = delete;

  // Starts the connection's thread. Once the handshake is done it calls
  // NbdLane::OnReady(); whatever happens, it ends with OnGone().
  void Start() override;
  // Queues chunk `out.chunk` (a read or write, kClaimed) for sending. The
  // chunk is the connection's until handed back; if the connection has
  // already ended, it is handed back at once (UNAVAILABLE).
  void Send(Outgoing out) override;
  // Ends the connection (the socket is shut down), if it has not ended.
  void Cancel() override;

 private:
  struct Entry {
    Chunk* chunk = nullptr;
    bool sending = false;   // the sender still reads the chunk's bytes
    bool answered = false;  // the reply came while sending (answer below)
    absl::Status answer;
  };

  // The connection's thread.
  void Main();
  absl::Status Connect();
  // Fixed newstyle handshake with NBD_OPT_GO (after NBD_OPT_STARTTLS and
  // the TLS handshake with tls_); sets fua_.
  absl::Status Handshake();
  // NBD_OPT_STARTTLS, the TLS handshake, and the relay in place.
  absl::Status StartTls(uint32_t client_flags);
  // Replies until the connection fails; returns why it did.
  absl::Status ReceiveLoop();
  void SendLoop();

  NbdLane* const lane_;
  const std::string host_;
  const std::string port_;
  const std::string export_name_;
  const uint64_t size_;
  const std::shared_ptr<const NbdTls> tls_;
  bool fua_ = false;  // written before OnReady, read after
  std::thread sender_;

  std::mutex mu_;  // guards everything below
  std::condition_variable cv_;
  int fd_ = -1;
  std::unique_ptr<nbd::TlsRelay> relay_;  // set once by the connection's thread
  bool dead_ = false;  // Cancel()ed or failed: no more sending
  bool gone_ = false;  // the leftovers were handed back
  std::deque<Chunk*> queue_;                       // to send
  std::unordered_map<uint64_t, Entry> in_flight_;  // sent (or being sent), by cookie
  uint64_t next_cookie_ = 1;
};

}  // namespace cowblk::internal

#endif  // COWBLK_CLIENT_SRC_NBD_CALL_H_
