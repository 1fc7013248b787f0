// The NBD transmission phase on a connection's reading thread: request
// headers are parsed from what one recv brought, decoded into core::Calls
// and submitted to the pipeline together (one engine wake-up per burst).
// What is the protocol's stays here (magic, commands, flags, a write's
// payload, NBD_CMD_DISC); what is a block request's (range, access, buffers,
// the engine request) is the pipeline's; replies are the ReplySender's.
//
// Thread-safety: the reading thread only.

#ifndef COWBLK_SERVER_TRANSPORT_NBD_TRANSMISSION_H_
#define COWBLK_SERVER_TRANSPORT_NBD_TRANSMISSION_H_

#include <cstdint>
#include <string>

#include "server/core/pipeline.h"
#include "server/transport/nbd/reply_sender.h"
#include "server/transport/nbd/socket_reader.h"
#include "server/transport/nbd/wire_parse.h"

namespace cowblk::nbd {

// Writes at least this long are received into their own buffer, and the
// requests parsed before one are submitted before its data is written.
inline constexpr uint32_t kLargeWriteBytes = 64 << 10;

class Transmission {
 public:
  // All must outlive Run(). `block_status`: the client selected
  // base:allocation (NBD_CMD_BLOCK_STATUS is a command, else unknown).
  Transmission(SocketReader* in, core::Pipeline* pipeline, ReplySender* sender,
               std::string peer, bool block_status)
      : in_(in),
        pipeline_(pipeline),
        sender_(sender),
        peer_(std::move(peer)),
        block_status_(block_status) {}

  // Takes requests until the client disconnects, breaks the protocol, a
  // reply cannot be sent or the connection is idle past the socket's
  // receive timeout (SO_RCVTIMEO, set by the caller; none: never); returns
  // why. Everything it took is submitted (or answered) when it returns.
  std::string Run();
  // Run ended because nothing was received for the receive timeout: while
  // no request was in flight, or in the middle of a request.
  bool idle_timed_out() const { return idle_timed_out_; }
  // Requests taken (for nbd_closed).
  uint64_t requests() const { return requests_; }

 private:
  // Decodes one request whose header was parsed and judged (neither bad
  // magic nor a disconnect); returns false (with `why`) when the connection
  // must end.
  bool Take(const RequestHeader& h, RequestVerdict verdict, std::string* why);
  // Answers an NBD_CMD_BLOCK_STATUS (block_status.h) here, without the
  // engine's queue: past the end, EINVAL.
  void AnswerBlockStatus(core::Call* call, const RequestHeader& h);

  SocketReader* const in_;
  core::Pipeline* const pipeline_;
  ReplySender* const sender_;
  const std::string peer_;
  const bool block_status_;
  bool header_only_ = false;  // the last request was a large write
  uint64_t requests_ = 0;
  bool idle_timed_out_ = false;
};

}  // namespace cowblk::nbd

#endif  // COWBLK_SERVER_TRANSPORT_NBD_TRANSMISSION_H_
