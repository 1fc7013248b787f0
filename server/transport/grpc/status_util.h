// absl::Status <-> grpc::Status at the RPC edge. The codes share numbering.

#ifndef COWBLK_SERVER_TRANSPORT_GRPC_STATUS_UTIL_H_
#define COWBLK_SERVER_TRANSPORT_GRPC_STATUS_UTIL_H_

#include <grpcpp/support/status.h>

#include <string>

#include "absl/status/status.h"

namespace cowblk::rpc {

inline grpc::Status ToGrpc(const absl::Status& s) {
  if (s.ok()) return grpc::Status::OK;
  return grpc::Status(static_cast<grpc::StatusCode>(s.code()), std::string(s.message()));
}

}  // namespace cowblk::rpc

#endif  // COWBLK_SERVER_TRANSPORT_GRPC_STATUS_UTIL_H_
