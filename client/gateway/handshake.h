// The gateway's NBD handshake (fixed newstyle): NBD_OPT_GO and
// NBD_OPT_EXPORT_NAME choose one of the exports (the empty name: the only
// one, when there is one); NBD_OPT_INFO, NBD_OPT_LIST
// and NBD_OPT_ABORT are answered; other options NBD_REP_ERR_UNSUP (so that
// structured replies, block status or STARTTLS can be added here as cases).
// The bytes are cowblkd's (server/transport/nbd/wire_parse.h: the parsers and
// the reply builders both servers share).
//
// Thread-safety: the connection's reading thread.

#ifndef COWBLK_CLIENT_GATEWAY_HANDSHAKE_H_
#define COWBLK_CLIENT_GATEWAY_HANDSHAKE_H_

#include <cstdint>
#include <string>

#include "client/gateway/exports.h"
#include "common/nbd_wire.h"
#include "server/transport/nbd/handshake_steps.h"
#include "server/transport/nbd/socket_reader.h"

namespace cowblk::gateway {

// What the gateway advertises: flush, FUA, trim, write-zeroes, multi-conn,
// fast zero (ENOTSUP for NO_HOLE, which it writes as data: connection.cc).
inline constexpr uint16_t kTransmissionFlags =
    nbd::kTxHasFlags | nbd::kTxSendFlush | nbd::kTxSendFua | nbd::kTxSendTrim |
    nbd::kTxSendWriteZeroes | nbd::kTxCanMultiConn | nbd::kTxSendFastZero;

// Runs the handshake on `fd` (read through `in`): the chosen volume, with
// what the client negotiated for it in `negotiated` (structured replies,
// base:allocation), or null with `why` (the client left, aborted or broke
// the protocol).
Volume* RunHandshake(int fd, nbd::SocketReader* in, const Exports& exports, std::string* why,
                     nbd::Negotiated* negotiated);

}  // namespace cowblk::gateway

#endif  // COWBLK_CLIENT_GATEWAY_HANDSHAKE_H_
