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

void SetNonBlocking(int fd) { fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) | O_NONBLOCK); }

}  // namespace

void SslFree::operator()(SSL* ssl) const { SSL_free(ssl); }

TlsSession::TlsSession(TlsSession&& o) noexcept
    : ssl(std::move(o.ssl)), tcp(std::exchange(o.tcp, -1)), identity(std::move(o.identity)) {}

TlsSession::~TlsSession() {
  ssl.reset();
  if (tcp >= 0) close(tcp);
}

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

TlsRelay::TlsRelay(TlsSession session, int local, std::chrono::milliseconds send_timeout,
                   std::function<void()> on_done)
    : session_(std::move(session)),
      local_(local),
      send_timeout_(send_timeout),
      on_done_(std::move(on_done)) {}

absl::StatusOr<std::unique_ptr<TlsRelay>> TlsRelay::Start(TlsSession session, int fd,
                                                           std::chrono::milliseconds send_timeout,
                                                           std::function<void()> on_done) {
  int pair[2];
  if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, pair) != 0) {
    return absl::ResourceExhaustedError(absl::StrCat("TLS: socketpair: ", std::strerror(errno)));
  }
  std::unique_ptr<TlsRelay> relay;
  try {
    relay.reset(new TlsRelay(std::move(session), pair[1], send_timeout, std::move(on_done)));
    relay->up_.reset(new char[kBufferBytes]);
    relay->down_.reset(new char[kBufferBytes]);
  } catch (const std::bad_alloc&) {
    close(pair[0]);
    if (!relay) close(pair[1]);
    return absl::ResourceExhaustedError("TLS: out of memory for the relay");
  }
  // The connection's descriptor becomes the pair's other end; the TCP
  // socket lives on as the session's descriptor.
  if (dup3(pair[0], fd, O_CLOEXEC) < 0) {
    const int error = errno;
    close(pair[0]);
    return absl::ResourceExhaustedError(absl::StrCat("TLS: dup3: ", std::strerror(error)));
  }
  close(pair[0]);
  SetNonBlocking(relay->session_.tcp);
  SetNonBlocking(relay->local_);
  TlsRelay* self = relay.get();
  try {
    relay->thread_ = std::thread([self] { self->Main(); });
  } catch (const std::exception& e) {
    // The connection's descriptor is the pair's now: it sees the end.
    shutdown(relay->local_, SHUT_RDWR);
    return absl::ResourceExhaustedError(absl::StrCat("cannot start a thread: ", e.what()));
  }
  pthread_setname_np(relay->thread_.native_handle(), "nbd-tls");
  return relay;
}

TlsRelay::~TlsRelay() { close(local_); }

void TlsRelay::Abort() {
  shutdown(session_.tcp, SHUT_RDWR);
  shutdown(local_, SHUT_RDWR);
}

void TlsRelay::Join() {
  if (thread_.joinable()) thread_.join();
}

void TlsRelay::Main() {
  pthread_setname_np(pthread_self(), "nbd-tls");
  SSL* const ssl = session_.ssl.get();
  const int tcp = session_.tcp;
  char* const up = up_.get();
  char* const down = down_.get();
  size_t up_at = 0, up_end = 0;      // decrypted, for the connection
  size_t down_at = 0, down_end = 0;  // from the connection, to encrypt
  bool client_open = true;     // the client may send more
  bool connection_open = true; // the connection may send more
  bool connection_reads = true;  // the connection takes what the client sends
  bool broken = false;
  while (!broken) {
    bool progress = false;
    short tcp_events = 0, local_events = 0;
    // The client to the connection.
    if (client_open && connection_reads && up_end == 0) {
      ERR_clear_error();
      const int n = SSL_read(ssl, up, static_cast<int>(kBufferBytes));
      if (n > 0) {
        up_at = 0;
        up_end = static_cast<size_t>(n);
        progress = true;
      } else {
        const int e = SSL_get_error(ssl, n);
        if (e == SSL_ERROR_WANT_READ) {
          tcp_events |= POLLIN;
        } else if (e == SSL_ERROR_WANT_WRITE) {
          tcp_events |= POLLOUT;
        } else {
          // The client closed (close_notify or not): the connection reads the end.
          client_open = false;
          shutdown(local_, SHUT_WR);
          progress = true;
          if (e != SSL_ERROR_ZERO_RETURN && e != SSL_ERROR_SYSCALL) broken = true;
        }
      }
    }
    if (up_at < up_end) {
      const ssize_t n = send(local_, up + up_at, up_end - up_at, MSG_DONTWAIT | MSG_NOSIGNAL);
      if (n > 0) {
        up_at += static_cast<size_t>(n);
        if (up_at == up_end) up_at = up_end = 0;
        progress = true;
      } else if (n < 0 && (errno == EAGAIN || errno == EINTR)) {
        local_events |= POLLOUT;
      } else {
        connection_reads = false;  // it stopped reading: what the client sends is dropped
        up_at = up_end = 0;
        progress = true;
      }
    }
    // The connection to the client.
    if (connection_open && down_end == 0) {
      const ssize_t n = recv(local_, down, kBufferBytes, MSG_DONTWAIT);
      if (n > 0) {
        down_at = 0;
        down_end = static_cast<size_t>(n);
        progress = true;
      } else if (n < 0 && (errno == EAGAIN || errno == EINTR)) {
        local_events |= POLLIN;
      } else {
        connection_open = false;
        progress = true;
      }
    }
    if (down_at < down_end) {
      ERR_clear_error();
      const int n = SSL_write(ssl, down + down_at, static_cast<int>(down_end - down_at));
      if (n > 0) {
        down_at += static_cast<size_t>(n);
        if (down_at == down_end) down_at = down_end = 0;
        progress = true;
      } else {
        const int e = SSL_get_error(ssl, n);
        if (e == SSL_ERROR_WANT_WRITE) {
          tcp_events |= POLLOUT;
        } else if (e == SSL_ERROR_WANT_READ) {
          tcp_events |= POLLIN;
        } else {
          broken = true;
        }
      }
    }
    if (broken) break;
    if (!connection_open && down_end == 0) {
      // Everything the connection sent went out: tell the client, and end.
      ERR_clear_error();
      SSL_shutdown(ssl);
      break;
    }
    if (progress) continue;
    if (tcp_events == 0 && local_events == 0) break;  // nothing can move any more
    // A descriptor no event is wanted of is left out (its hang-up would
    // wake the poll at once, again and again).
    pollfd fds[2] = {{tcp_events != 0 ? tcp : -1, tcp_events, 0},
                     {local_events != 0 ? local_ : -1, local_events, 0}};
    // A client that takes nothing for the send timeout is given up on.
    const bool sending = (tcp_events & POLLOUT) != 0;
    const int timeout =
        sending && send_timeout_.count() > 0 ? static_cast<int>(send_timeout_.count()) : -1;
    const int ready = poll(fds, 2, timeout);
    if (ready == 0) break;
    if (ready < 0 && errno != EINTR) break;
    // A hang-up or error shows in the calls above on the next round.
  }
  // The connection sees the end of its stream and its sends fail.
  shutdown(local_, SHUT_RDWR);
  shutdown(tcp, SHUT_RDWR);
  if (on_done_) on_done_();
}

}  // namespace cowblk::nbd
