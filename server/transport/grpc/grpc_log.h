// gRPC's own log lines (gpr_log: connection errors, misused APIs) as cowblk
// log lines, event=grpc_log, so that stderr holds one format throughout and
// `--log-format json` output parses line by line. gRPC still decides what
// it logs (GRPC_VERBOSITY, default ERROR).

#ifndef COWBLK_SERVER_TRANSPORT_GRPC_GRPC_LOG_H_
#define COWBLK_SERVER_TRANSPORT_GRPC_GRPC_LOG_H_

namespace cowblk::rpc {

// Call once, before gRPC starts threads.
void RouteGrpcLogs();

}  // namespace cowblk::rpc

#endif  // COWBLK_SERVER_TRANSPORT_GRPC_GRPC_LOG_H_
