// TLS for cowblkd's NBD export (NBD_OPT_STARTTLS, X.509, OpenSSL): the
// server's context (the certificate, key and client CA of the gRPC port)
// and the handshake on a connection's socket; the rest of the connection
// then goes through a TlsRelay (common/tls_relay.h).
//
// Thread-safety: TlsServer is immutable after Create, safe from any thread.

#ifndef COWBLK_SERVER_TRANSPORT_NBD_TLS_H_
#define COWBLK_SERVER_TRANSPORT_NBD_TLS_H_

#include <memory>
#include <string>

#include "absl/status/statusor.h"
#include "common/tls_relay.h"

typedef struct ssl_ctx_st SSL_CTX;

namespace cowblk::nbd {

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

}  // namespace cowblk::nbd

#endif  // COWBLK_SERVER_TRANSPORT_NBD_TLS_H_
