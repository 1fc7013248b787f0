#include "server/transport/nbd/handshake_steps.h"

#include "common/nbd_wire.h"
#include "server/transport/nbd/wire_parse.h"

namespace cowblk::nbd {

absl::StatusOr<bool> Greet(int fd, SocketReader* in) {
  const std::string hello = Greeting();
  if (!SendAll(fd, hello.data(), hello.size())) {
    return absl::AbortedError("handshake: send failed");
  }
  uint8_t b[4];
  if (!in->Take(b, 4)) return absl::AbortedError("handshake: no client flags");
  const uint32_t client_flags = Get32(b);
  if (absl::Status s = CheckClientFlags(client_flags); !s.ok()) return s;
  return (client_flags & kFlagNoZeroes) != 0;
}

absl::StatusOr<ClientOption> TakeOption(SocketReader* in) {
  uint8_t b[16];
  if (!in->Take(b, 16)) return absl::AbortedError("handshake: ended during option haggling");
  absl::StatusOr<OptionHeader> header = ParseOptionHeader(b);
  if (!header.ok()) return header.status();
  ClientOption o;
  o.option = header->option;
  if (!in->TakeString(&o.data, header->length)) {
    return absl::AbortedError("handshake: ended in an option");
  }
  return o;
}

}  // namespace cowblk::nbd
