#include "common/tls_relay.h"

#include <fcntl.h>
#include <openssl/err.h>
#include <openssl/ssl.h>
#include <openssl/x509.h>
#include <poll.h>
#include <signal.h>
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

void SetNonBlocking(int fd) { fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) | O_NONBLOCK); }

}  // namespace

void SslFree::operator()(SSL* ssl) const { SSL_free(ssl); }

TlsSession::TlsSession(TlsSession&& o) noexcept
    : ssl(std::move(o.ssl)), tcp(std::exchange(o.tcp, -1)), identity(std::move(o.identity)) {}

TlsSession::~TlsSession() {
  ssl.reset();
  if (tcp >= 0) close(tcp);
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

void BlockSigpipe() {
  sigset_t pipe;
  sigemptyset(&pipe);
  sigaddset(&pipe, SIGPIPE);
  pthread_sigmask(SIG_BLOCK, &pipe, nullptr);
}

void TlsRelay::Main() {
  pthread_setname_np(pthread_self(), "nbd-tls");
  // OpenSSL writes the socket with write(2), which raises SIGPIPE once the
  // peer is gone; blocked here, it stays with this thread (and goes with
  // it) and the write fails with EPIPE. A process that does not ignore
  // SIGPIPE (an application of libcowblk) would die of it.
  BlockSigpipe();
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
