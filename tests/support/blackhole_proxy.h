// BlackholeProxy: a TCP proxy on a loopback port in front of a server (a
// real cowblkd), for tests of connections that die without a FIN or RST.
//
// Each accepted connection is forwarded to 127.0.0.1:`upstream_port` by a
// pair of threads, one per direction, blocking reads and writes (neither
// direction can stall the other). Cut() makes every connection open at the
// time a blackhole: its threads stop, so nothing more is read from or
// written to either side, yet both sockets stay open (no FIN, no RST; what
// the peers send sits in kernel buffers), as with a stopped host or a
// network cut. Connections accepted after Cut() are forwarded again, so a
// client that notices the silence can reconnect through the same address.
// Cut connections are closed only by the destructor.
//
//   BlackholeProxy proxy(server.port());
//   ASSERT_TRUE(proxy.ok());
//   ... connect a client to proxy.address() ...
//   proxy.Cut();  // the client's connections go silent
//
// Thread-safe: every method may be called from any thread.

#ifndef COWBLK_TESTS_SUPPORT_BLACKHOLE_PROXY_H_
#define COWBLK_TESTS_SUPPORT_BLACKHOLE_PROXY_H_

#include <memory>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

namespace cowblk::testing {

class BlackholeProxy {
 public:
  // Listens on 127.0.0.1 on an ephemeral port; see ok().
  explicit BlackholeProxy(int upstream_port);
  // Stops accepting and forwarding, joins every thread, closes every socket.
  ~BlackholeProxy();
  BlackholeProxy(const BlackholeProxy&) = delete;
  BlackholeProxy& operator=(const BlackholeProxy&) = delete;

  // Whether it listens (false: the socket calls failed; see error()).
  bool ok() const { return listen_fd_ >= 0; }
  const std::string& error() const { return error_; }
  int port() const { return port_; }
  std::string address() const { return "127.0.0.1:" + std::to_string(port_); }

  // Stops forwarding on every connection accepted so far, without closing
  // them, and returns once their threads stopped: after it, not one more
  // byte crosses them either way.
  void Cut();
  // Connections accepted (and forwarded upstream) so far.
  int connections() const;

 private:
  struct Link;

  // The accept thread: forwards each new connection until the destructor.
  void Accept();
  // Copies `from` to `to` until either ends or the link is cut.
  void Forward(Link* link, int from, int to);

  const int upstream_port_;
  std::string error_;
  int listen_fd_ = -1;
  int port_ = 0;
  int stop_fd_ = -1;  // eventfd: readable once the destructor runs

  mutable std::mutex mu_;
  std::vector<std::unique_ptr<Link>> links_;  // guarded by mu_
  int accepted_ = 0;                          // guarded by mu_
  std::thread accept_thread_;                 // last: starts once the rest is built
};

}  // namespace cowblk::testing

#endif  // COWBLK_TESTS_SUPPORT_BLACKHOLE_PROXY_H_
