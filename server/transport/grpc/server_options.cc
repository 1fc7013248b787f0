#include "server/transport/grpc/server_options.h"

#include <grpcpp/resource_quota.h>

#include <algorithm>
#include <climits>

namespace cowblk::rpc {

void ApplyLimits(const GrpcServerLimits& limits, grpc::ServerBuilder* builder) {
  // A stale server on the same port would silently share connections.
  builder->AddChannelArgument(GRPC_ARG_ALLOW_REUSEPORT, 0);
  builder->SetMaxReceiveMessageSize(static_cast<int>(limits.max_message_bytes));
  builder->SetMaxSendMessageSize(static_cast<int>(limits.max_message_bytes));
  builder->AddChannelArgument(GRPC_ARG_MAX_CONCURRENT_STREAMS,
                              static_cast<int>(limits.max_streams_per_connection));
  builder->AddChannelArgument(GRPC_ARG_SERVER_HANDSHAKE_TIMEOUT_MS,
                              static_cast<int>(limits.handshake_timeout_seconds * 1000));
  builder->AddChannelArgument(GRPC_ARG_KEEPALIVE_TIME_MS,
                              static_cast<int>(limits.keepalive_seconds * 1000));
  builder->AddChannelArgument(GRPC_ARG_KEEPALIVE_TIMEOUT_MS,
                              static_cast<int>(limits.keepalive_timeout_seconds * 1000));
  // Idle connections are pinged too (a dead idle peer holds a descriptor),
  // and clients may ping them (at the rate below).
  builder->AddChannelArgument(GRPC_ARG_KEEPALIVE_PERMIT_WITHOUT_CALLS, 1);
  builder->AddChannelArgument(GRPC_ARG_HTTP2_MAX_PINGS_WITHOUT_DATA, 0);
  builder->AddChannelArgument(GRPC_ARG_HTTP2_MIN_RECV_PING_INTERVAL_WITHOUT_DATA_MS,
                              static_cast<int>(limits.min_client_ping_interval_ms));
  builder->AddChannelArgument(GRPC_ARG_HTTP2_MAX_PING_STRIKES, limits.max_ping_strikes);
  grpc::ResourceQuota quota("cowblkd");
  quota.Resize(static_cast<size_t>(std::min<uint64_t>(limits.memory_bytes, SIZE_MAX)));
  quota.SetMaxThreads(limits.max_threads);
  builder->SetResourceQuota(quota);  // the builder keeps its own reference
}

}  // namespace cowblk::rpc
