// The limits of cowblkd's gRPC server, applied to a grpc::ServerBuilder:
// streams per connection, a resource quota (memory and threads), the
// handshake deadline, keepalive (the server finds dead peers) and the
// policy on pings that clients send (a ping flood is cut). Flags and
// defaults: docs/cowblkd.md "Limits"; what gRPC 1.51 cannot bound (the
// number of connections, per-method message sizes): docs/design.md.

#ifndef COWBLK_SERVER_TRANSPORT_GRPC_SERVER_OPTIONS_H_
#define COWBLK_SERVER_TRANSPORT_GRPC_SERVER_OPTIONS_H_

#include <grpcpp/server_builder.h>

#include <cstdint>

namespace cowblk::rpc {

struct GrpcServerLimits {
  // Largest message received or sent, bytes.
  uint32_t max_message_bytes = 40 << 20;
  // Streams (calls) open at once on one HTTP/2 connection; more wait in
  // the client (SETTINGS_MAX_CONCURRENT_STREAMS).
  uint32_t max_streams_per_connection = 100;
  // Memory gRPC may use for connections and messages in transit (its
  // resource quota); under pressure it reads less from its sockets.
  uint64_t memory_bytes = uint64_t{1} << 30;
  // Threads gRPC may run for the synchronous (administrative) calls; more
  // such calls at once are refused with RESOURCE_EXHAUSTED.
  int max_threads = 64;
  // A connection must finish its TLS handshake and HTTP/2 preface within
  // this, or it is closed.
  uint32_t handshake_timeout_seconds = 10;
  // The server pings a connection quiet this long, and closes it when the
  // ping is not answered within keepalive_timeout_seconds.
  uint32_t keepalive_seconds = 60;
  uint32_t keepalive_timeout_seconds = 20;
  // Clients may ping no more often than this without sending data; after
  // max_ping_strikes pings too soon the connection is closed (GOAWAY
  // ENHANCE_YOUR_CALM).
  uint32_t min_client_ping_interval_ms = 10000;
  int max_ping_strikes = 2;
};

// Sets `limits` on `builder` (channel arguments and a resource quota).
void ApplyLimits(const GrpcServerLimits& limits, grpc::ServerBuilder* builder);

}  // namespace cowblk::rpc

#endif  // COWBLK_SERVER_TRANSPORT_GRPC_SERVER_OPTIONS_H_
