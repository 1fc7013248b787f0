// Where `cowblk nbd` listens: a Unix socket (the default), or a TCP address
// on the loopback interface. NBD has no authentication or encryption of its
// own here, so whoever reaches the socket reads and writes the volumes with
// the gateway's credentials: a Unix socket is guarded by its file mode, and
// a TCP address must be loopback unless the caller forces it
// (`allow_non_loopback`).
//
// Thread-safety: plain functions and a value type.

#ifndef COWBLK_CLIENT_GATEWAY_LISTENER_H_
#define COWBLK_CLIENT_GATEWAY_LISTENER_H_

#include <string>

#include "absl/status/statusor.h"

namespace cowblk::gateway {

struct ListenOptions {
  std::string socket_path;  // a Unix socket, when `tcp` is empty
  std::string tcp;          // HOST:PORT (port 0: any)
  bool allow_non_loopback = false;
};

struct Listener {
  int fd = -1;              // listening, close-on-exec
  std::string socket_path;  // the Unix socket's path (removed by RemoveSocket)
  std::string host;         // TCP: the host as given, and the port it got
  int port = 0;
};

// Listens. A Unix socket whose path exists is replaced only when it is a
// socket nobody listens on (a gateway that died); a live one or another
// file: ALREADY_EXISTS. The socket is made mode 0600 (the owner only).
// A TCP host that is not loopback: INVALID_ARGUMENT saying why, unless
// allow_non_loopback.
absl::StatusOr<Listener> Listen(const ListenOptions& options);

// The NBD URI of export `name` on `l` (nbd+unix:///NAME?socket=PATH or
// nbd://HOST:PORT/NAME).
std::string ExportUri(const Listener& l, const std::string& name);

// Closes the socket and removes a Unix socket's file.
void CloseListener(Listener* l);

}  // namespace cowblk::gateway

#endif  // COWBLK_CLIENT_GATEWAY_LISTENER_H_
