// The steps every NBD handshake over a socket begins with, shared by
// cowblkd's export (handshake.h) and the gateway of `cowblk nbd`
// (client/gateway/handshake.h): the greeting and the client's flags, then
// one option at a time. What each server answers to an option is its own.
// Library cowblk_nbd_parse.
//
// Thread-safety: the connection's reading thread.

#ifndef COWBLK_SERVER_TRANSPORT_NBD_HANDSHAKE_STEPS_H_
#define COWBLK_SERVER_TRANSPORT_NBD_HANDSHAKE_STEPS_H_

#include <cstdint>
#include <string>

#include "absl/status/statusor.h"
#include "server/transport/nbd/socket_reader.h"

namespace cowblk::nbd {

// Sends the greeting on `fd` and takes the client's flags from `in`:
// whether the client asked for no zeroes (NBD_FLAG_C_NO_ZEROES), or why
// the handshake ends.
absl::StatusOr<bool> Greet(int fd, SocketReader* in);

struct ClientOption {
  uint32_t option = 0;
  std::string data;  // at most kMaxOptionBytes
};
// The client's next option, or why the handshake ends.
absl::StatusOr<ClientOption> TakeOption(SocketReader* in);

}  // namespace cowblk::nbd

#endif  // COWBLK_SERVER_TRANSPORT_NBD_HANDSHAKE_STEPS_H_
