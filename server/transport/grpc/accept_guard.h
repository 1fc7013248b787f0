// Keeps gRPC's listening sockets alive at the descriptor limit.
//
// gRPC 1.51 (Debian 12) drops a listening port for good when accept4(2)
// fails with anything but EAGAIN, EINTR or ECONNABORTED
// (tcp_server_posix.cc logs "Failed accept4" and stops watching it): one
// EMFILE, and the gRPC port accepted nothing more for the life of the
// process, while the process kept running. Measured: 30 connections under a
// limit of 20 descriptors, then the limit raised again: the port stayed
// deaf.
//
// cowblkd therefore defines accept4 itself; the executable's definition
// wins over glibc's for every caller, libgrpc's included. The calls it
// guards are gRPC's (non-blocking, close-on-exec; the NBD export accepts
// blocking and backs off by itself, docs/cowblkd.md "Limits"): when one
// fails with EMFILE or ENFILE, the connections waiting in the listen queue
// are taken with a spare descriptor kept for that and closed at once
// (refused: the client sees the connection end, not a hang), counted, and
// logged (grpc_refused, at most once a second); gRPC is told EAGAIN and
// keeps listening.
//
// Thread-safety: all functions are thread-safe.

#ifndef COWBLK_SERVER_TRANSPORT_GRPC_ACCEPT_GUARD_H_
#define COWBLK_SERVER_TRANSPORT_GRPC_ACCEPT_GUARD_H_

#include <atomic>
#include <cstdint>

namespace cowblk::rpc {

// Opens the spare descriptor. Call once, before the gRPC server starts;
// without it EMFILE still leaves gRPC listening, but waiting connections
// wait for the next one instead of being refused.
void StartAcceptGuard();

// gRPC connections refused for want of descriptors so far.
const std::atomic<uint64_t>& GrpcConnectionsRefused();

}  // namespace cowblk::rpc

#endif  // COWBLK_SERVER_TRANSPORT_GRPC_ACCEPT_GUARD_H_
