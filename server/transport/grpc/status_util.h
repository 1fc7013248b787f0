// absl::Status <-> grpc::Status at the RPC edge. The codes share numbering;
// messages lose the data directory's absolute path (client_text.h). And what
// of a client's input a message may echo.

#ifndef COWBLK_SERVER_TRANSPORT_GRPC_STATUS_UTIL_H_
#define COWBLK_SERVER_TRANSPORT_GRPC_STATUS_UTIL_H_

#include <grpcpp/support/status.h>

#include <cstddef>
#include <string>

#include "absl/status/status.h"
#include "server/store/client_text.h"

namespace cowblk::rpc {

inline grpc::Status ToGrpc(const absl::Status& s) {
  if (s.ok()) return grpc::Status::OK;
  return grpc::Status(static_cast<grpc::StatusCode>(s.code()), store::ForClients(s.message()));
}

// Longest part of a client-supplied name that a message echoes.
inline constexpr size_t kEchoedNameBytes = 64;

// `name` cut to `max` bytes plus "..." when longer: a message never carries
// a client's megabytes back to it.
inline std::string Abbreviated(const std::string& name, size_t max = kEchoedNameBytes) {
  return name.size() <= max ? name : name.substr(0, max) + "...";
}

}  // namespace cowblk::rpc

#endif  // COWBLK_SERVER_TRANSPORT_GRPC_STATUS_UTIL_H_
