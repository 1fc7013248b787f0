#include "server/transport/nbd/tls.h"

#include <fcntl.h>
#include <openssl/err.h>
#include <openssl/ssl.h>
#include <openssl/x509.h>
#include <poll.h>
#include <pthread.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <exception>
#include <new>
#include <utility>

#include "absl/strings/str_cat.h"

namespace cowblk::nbd {
namespace {

// OpenSSL's queued errors of this thread, as one line (and the queue cleared).
std::string SslErrors() {
  std::string out;
  while (const unsigned long e = ERR_get_error()) {
    char buf[256];
    ERR_error_string_n(e, buf, sizeof buf);
    if (!out.empty()) out += "; ";
    out += buf;
  }
  return out.empty() ? "no detail" : out;
}

// The subject CN of `cert`, "" when it has none.
std::string CommonName(X509* cert) {
  X509_NAME* subject = X509_get_subject_name(cert);
  const int at = X509_NAME_get_index_by_NID(subject, NID_commonName, -1);
  if (at < 0) return "";
  unsigned char* utf8 = nullptr;
  const int n = ASN1_STRING_to_UTF8(&utf8, X509_NAME_ENTRY_get_data(X509_NAME_get_entry(subject, at)));
  if (n < 0) return "";
  std::string cn(reinterpret_cast<char*>(utf8), static_cast<size_t>(n));
  OPENSSL_free(utf8);
  return cn;
}

}  // namespace

absl::StatusOr<std::shared_ptr<const TlsServer>> TlsServer::Create(const std::string& cert,
                                                                    const std::string& key,
                                                                    const std::string& client_ca) {
  SSL_CTX* ctx = SSL_CTX_new(TLS_server_method());
  if (ctx == nullptr) return absl::InternalError("TLS: " + SslErrors());
  std::shared_ptr<const TlsServer> server(new TlsServer(ctx, !client_ca.empty()));
  SSL_CTX_set_min_proto_version(ctx, TLS1_2_VERSION);
  // Nothing is sent after the handshake but the data: no session tickets.
  SSL_CTX_set_num_tickets(ctx, 0);
  SSL_CTX_set_options(ctx, SSL_OP_NO_TICKET | SSL_OP_NO_RENEGOTIATION);
  SSL_CTX_set_mode(ctx, SSL_MODE_ENABLE_PARTIAL_WRITE | SSL_MODE_ACCEPT_MOVING_WRITE_BUFFER);
  if (SSL_CTX_use_certificate_chain_file(ctx, cert.c_str()) != 1) {
    return absl::InvalidArgumentError(absl::StrCat("--tls-cert ", cert, ": ", SslErrors()));
  }
  if (SSL_CTX_use_PrivateKey_file(ctx, key.c_str(), SSL_FILETYPE_PEM) != 1 ||
      SSL_CTX_check_private_key(ctx) != 1) {
    return absl::InvalidArgumentError(absl::StrCat("--tls-key ", key, ": ", SslErrors()));
  }
  if (!client_ca.empty()) {
    if (SSL_CTX_load_verify_locations(ctx, client_ca.c_str(), nullptr) != 1) {
      return absl::InvalidArgumentError(
          absl::StrCat("--tls-client-ca ", client_ca, ": ", SslErrors()));
    }
    SSL_CTX_set_verify(ctx, SSL_VERIFY_PEER | SSL_VERIFY_FAIL_IF_NO_PEER_CERT, nullptr);
    // The CAs a client may choose its certificate by.
    if (STACK_OF(X509_NAME)* names = SSL_load_client_CA_file(client_ca.c_str())) {
      SSL_CTX_set_client_CA_list(ctx, names);
    }
  }
  return server;
}

TlsServer::~TlsServer() { SSL_CTX_free(ctx_); }

absl::StatusOr<TlsSession> TlsServer::Accept(int fd) const {
  ERR_clear_error();
  TlsSession session;
  session.tcp = fcntl(fd, F_DUPFD_CLOEXEC, 0);
  if (session.tcp < 0) {
    return absl::ResourceExhaustedError(absl::StrCat("TLS: dup: ", std::strerror(errno)));
  }
  session.ssl.reset(SSL_new(ctx_));
  if (!session.ssl || SSL_set_fd(session.ssl.get(), session.tcp) != 1) {
    return absl::ResourceExhaustedError("TLS: " + SslErrors());
  }
  if (SSL_accept(session.ssl.get()) != 1) {
    const std::string why = SslErrors();
    return absl::UnauthenticatedError(absl::StrCat("TLS handshake failed: ", why));
  }
  if (verifies_clients_) {
    X509* cert = SSL_get0_peer_certificate(session.ssl.get());
    if (cert == nullptr || SSL_get_verify_result(session.ssl.get()) != X509_V_OK) {
      return absl::UnauthenticatedError("TLS: no verified client certificate");
    }
    session.identity = "CN=" + CommonName(cert);
  }
  return session;
}

}  // namespace cowblk::nbd
