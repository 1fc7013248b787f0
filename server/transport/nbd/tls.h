// TLS for cowblkd's NBD export (NBD_OPT_STARTTLS, X.509, OpenSSL): the
// server's context (the certificate, key and client CA of the gRPC port),
// the handshake on a connection's socket, and TlsRelay, which carries the
// rest of the connection over TLS.
//
// Why a relay: the connection's code reads and writes its socket from two
// threads (the reader; the writer and the engine's batch end), with recv,
// sendmsg, splice and socket timeouts, while an OpenSSL session must not be
// used from two threads at once, and this kernel has no kernel TLS (the
// `tls` ULP). So after the TLS handshake the relay takes the TCP socket and
// puts one end of a Unix socket pair in its place under the same
// descriptor number (dup3): the connection goes on with plain socket calls,
// and one thread of the relay alone uses the session, moving bytes between
// the pair and TLS through two bounded buffers (docs/design.md, "The NBD
// export over TLS").
//
// Thread-safety: TlsServer is immutable after Create, safe from any thread.
// TlsRelay: Abort and Join from any thread.

#ifndef COWBLK_SERVER_TRANSPORT_NBD_TLS_H_
#define COWBLK_SERVER_TRANSPORT_NBD_TLS_H_

#include <chrono>
#include <functional>
#include <memory>
#include <string>
#include <thread>

#include "absl/status/statusor.h"

typedef struct ssl_st SSL;
typedef struct ssl_ctx_st SSL_CTX;

namespace cowblk::nbd {

struct SslFree {
  void operator()(SSL* ssl) const;
};
using SslPtr = std::unique_ptr<SSL, SslFree>;

// A TLS connection after its handshake: the session over `tcp` (a
// descriptor of its own, owned), and who the client proved to be.
struct TlsSession {
  TlsSession() = default;
  TlsSession(TlsSession&&) noexcept;
  TlsSession& operator=(TlsSession&&) = delete;
  ~TlsSession();
  SslPtr ssl;
  int tcp = -1;
  // "CN=NAME" of the client's verified certificate; "" without one.
  std::string identity;
};

class TlsServer {
 public:
  // From PEM files: the server's certificate (chain) and key, and when
  // `client_ca` is set, the CA every client certificate must chain to (a
  // client without one is then refused in the handshake). TLS 1.2 and 1.3.
  static absl::StatusOr<std::shared_ptr<const TlsServer>> Create(const std::string& cert,
                                                                  const std::string& key,
                                                                  const std::string& client_ca);
  ~TlsServer();
  TlsServer(const TlsServer&) = delete;
  TlsServer& operator=(const TlsServer&) = delete;

  bool verifies_clients() const { return verifies_clients_; }

  // The server side of the TLS handshake on the blocking socket `fd` (not
  // taken: the session uses a duplicate of it). Its deadline is the
  // caller's: shutting `fd` down makes it fail.
  absl::StatusOr<TlsSession> Accept(int fd) const;

 private:
  TlsServer(SSL_CTX* ctx, bool verifies_clients) : ctx_(ctx), verifies_clients_(verifies_clients) {}
  SSL_CTX* const ctx_;
  const bool verifies_clients_;
};

class TlsRelay {
 public:
  // Each direction's buffer.
  static constexpr size_t kBufferBytes = 64 << 10;

  // Puts a Unix socket under the descriptor number `fd` (the TCP socket of
  // `session`, which keeps its own descriptor) and starts the thread that
  // carries bytes between it and `session`. `send_timeout`: the relay ends
  // when the client takes no data this long (0: never). `on_done` runs on
  // the relay's thread as it ends (the connection then sees the end of its
  // stream, and its sends fail). ResourceExhausted when there is no memory,
  // descriptor or thread for it; then `fd` is unchanged.
  static absl::StatusOr<std::unique_ptr<TlsRelay>> Start(TlsSession session, int fd,
                                                          std::chrono::milliseconds send_timeout,
                                                          std::function<void()> on_done);
  // REQUIRES: Join() returned.
  ~TlsRelay();
  TlsRelay(const TlsRelay&) = delete;
  TlsRelay& operator=(const TlsRelay&) = delete;

  // Ends the relay at once (data not yet relayed is dropped).
  void Abort();
  void Join();

 private:
  TlsRelay(TlsSession session, int local, std::chrono::milliseconds send_timeout,
           std::function<void()> on_done);
  void Main();

  TlsSession session_;
  const int local_;  // the relay's end of the pair
  const std::chrono::milliseconds send_timeout_;
  const std::function<void()> on_done_;
  std::unique_ptr<char[]> up_, down_;  // client to connection, connection to client
  std::thread thread_;
};

}  // namespace cowblk::nbd

#endif  // COWBLK_SERVER_TRANSPORT_NBD_TLS_H_
