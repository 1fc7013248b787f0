// absl::Status <-> grpc::Status at the RPC edge. The codes share numbering;
// messages lose the data directory's absolute path (client_text.h).

#ifndef COWBLK_SERVER_TRANSPORT_GRPC_STATUS_UTIL_H_
#define COWBLK_SERVER_TRANSPORT_GRPC_STATUS_UTIL_H_

#include <grpcpp/support/status.h>

#include <string>

#include "absl/status/status.h"
#include "server/store/client_text.h"

namespace cowblk::rpc {

inline grpc::Status ToGrpc(const absl::Status& s) {
  if (s.ok()) return grpc::Status::OK;
  return grpc::Status(static_cast<grpc::StatusCode>(s.code()), store::ForClients(s.message()));
}

}  // namespace cowblk::rpc

#endif  // COWBLK_SERVER_TRANSPORT_GRPC_STATUS_UTIL_H_
