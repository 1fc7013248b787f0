// Bearer-token authorization with scopes.
//
// The token file has one token per line: `TOKEN SCOPE[,SCOPE...]`, separated
// by spaces, where a scope is `admin` (everything), `rw:PATTERN` (read and
// write volumes whose name matches the glob PATTERN) or `read:PATTERN`. `#`
// starts a comment. Tabs and other control characters are refused with the
// line's number.
// A line `x509:CN=NAME SCOPE[,SCOPE...]` is no token: it gives those scopes
// to the NBD clients whose verified TLS certificate has the subject common
// name NAME (IdentityAccess; the NBD export has no bearer tokens).
// Clients send `authorization: Bearer TOKEN`. Without a token file every
// call is allowed (loopback development); with one, calls without a valid
// token are UNAUTHENTICATED and calls outside the token's scopes are
// PERMISSION_DENIED or, for volumes the token cannot see, NOT_FOUND, so a
// client learns nothing about other volumes.
//
// Only SHA-256 digests of the tokens are kept, and a presented token is
// compared by its digest with CRYPTO_memcmp against every token: the time
// taken depends on neither the tokens' lengths nor their contents.
//
// Thread-safety: immutable after construction; safe from any thread.

#ifndef COWBLK_SERVER_TRANSPORT_GRPC_AUTH_H_
#define COWBLK_SERVER_TRANSPORT_GRPC_AUTH_H_

#include <grpcpp/server_context.h>

#include <array>
#include <memory>
#include <optional>
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
  // What the client with the certificate identity `identity` ("CN=NAME")
  // may do with `volume` by the `x509:` lines: kRead or kWrite (an admin
  // scope writes every volume); nullopt: nothing (no line for it, or no
  // scope covering the volume). Tokens off: kWrite.
  std::optional<Access> IdentityAccess(absl::string_view identity,
                                       absl::string_view volume) const;

 private:
  struct Scope {
    Access access;
    std::string pattern;  // glob; unused for admin
  };
  using Digest = std::array<unsigned char, 32>;  // SHA-256
  struct Token {
    Digest digest;
    std::vector<Scope> scopes;
  };
  static Digest DigestOf(absl::string_view token);
  const Token* Find(const grpc::ServerContextBase& ctx) const;

  struct Identity {
    std::string name;  // "CN=NAME"
    std::vector<Scope> scopes;
  };

  bool enabled_ = false;
  std::vector<Token> tokens_;
  std::vector<Identity> identities_;
};

}  // namespace cowblk::rpc

#endif  // COWBLK_SERVER_TRANSPORT_GRPC_AUTH_H_
