// A TLS connection's bytes carried by a thread of its own (TlsRelay) between
// the TLS session and a Unix socket pair put under the descriptor the rest
// of the code reads and writes: cowblkd's NBD export (server/transport/nbd/
// tls.h) and libcowblk's NBD path (client/src/nbd_call.cc) read and write
// their socket from two threads, with plain socket calls, timeouts and
// shutdown, while one OpenSSL session must not be used from two threads at
// once, and the kernel here has no kernel TLS (the `tls` ULP). After the
// TLS handshake the relay takes the TCP socket and puts one end of a pair
// in its place under the same descriptor number (dup3), so that code goes
// on unchanged; one thread of the relay alone uses the session, moving
// bytes through two bounded buffers (docs/design.md, "The NBD export").
//
// Thread-safety: TlsRelay's Abort and Join from any thread.

#ifndef COWBLK_COMMON_TLS_RELAY_H_
#define COWBLK_COMMON_TLS_RELAY_H_

#include <chrono>
#include <functional>
#include <memory>
#include <string>
#include <thread>

#include "absl/status/statusor.h"

typedef struct ssl_st SSL;

namespace cowblk::nbd {

struct SslFree {
  void operator()(SSL* ssl) const;
};
using SslPtr = std::unique_ptr<SSL, SslFree>;

// A TLS connection after its handshake: the session over `tcp` (a
// descriptor of its own, owned), and (on a server) who the client proved
// to be.
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

// Blocks SIGPIPE in the calling thread: OpenSSL's writes to a socket whose
// peer left then fail with EPIPE instead of killing the process. For the
// threads that run a TLS handshake and the relay's own.
void BlockSigpipe();

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

#endif  // COWBLK_COMMON_TLS_RELAY_H_
