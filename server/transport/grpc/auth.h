// Bearer-token authorization with scopes.
//
// The token file has one token per line: `TOKEN SCOPE[,SCOPE...]`, where a
// scope is `admin` (everything), `rw:PATTERN` (read and write volumes whose
// name matches the glob PATTERN) or `read:PATTERN`. `#` starts a comment.
// Clients send `authorization: Bearer TOKEN`. Without a token file every
// call is allowed (loopback development); with one, calls without a valid
// token are UNAUTHENTICATED and calls outside the token's scopes are
// PERMISSION_DENIED or, for volumes the token cannot see, NOT_FOUND, so a
// client learns nothing about other volumes.
//
// Thread-safety: immutable after construction; safe from any thread.

#ifndef COWBLK_SERVER_TRANSPORT_GRPC_AUTH_H_
#define COWBLK_SERVER_TRANSPORT_GRPC_AUTH_H_

#include <grpcpp/server_context.h>

#include <memory>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"

namespace cowblk::rpc {

enum class Access { kRead, kWrite, kAdmin };

class Authorizer {
 public:
  // An authorizer that allows everything.
  Authorizer() = default;
  static absl::StatusOr<std::unique_ptr<Authorizer>> FromFile(const std::string& path);

  // OK when the call may do `access` on `volume` (empty for calls that are
  // not about one volume: those need admin when `access` is kAdmin).
  absl::Status Check(const grpc::ServerContextBase& ctx, Access access,
                     absl::string_view volume) const;
  // OK when the call carries a valid token (or tokens are off).
  absl::Status Authenticate(const grpc::ServerContextBase& ctx) const;
  // Whether the call may see `volume` at all (list filtering).
  bool CanSee(const grpc::ServerContextBase& ctx, absl::string_view volume) const;
  bool enabled() const { return enabled_; }

 private:
  struct Scope {
    Access access;
    std::string pattern;  // glob; unused for admin
  };
  struct Token {
    std::string secret;
    std::vector<Scope> scopes;
  };
  const Token* Find(const grpc::ServerContextBase& ctx) const;

  bool enabled_ = false;
  std::vector<Token> tokens_;
};

}  // namespace cowblk::rpc

#endif  // COWBLK_SERVER_TRANSPORT_GRPC_AUTH_H_
