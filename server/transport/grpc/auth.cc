#include "server/transport/grpc/auth.h"

#include <fnmatch.h>
#include <openssl/crypto.h>
#include <openssl/sha.h>

#include <fstream>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/strings/str_split.h"
#include "absl/strings/strip.h"

namespace cowblk::rpc {
namespace {

// The first control character (tab, CR, ...) in `line`, or npos.
size_t FindControl(absl::string_view line) {
  for (size_t i = 0; i < line.size(); ++i) {
    const auto c = static_cast<unsigned char>(line[i]);
    if (c < 0x20 || c == 0x7f) return i;
  }
  return absl::string_view::npos;
}

}  // namespace

Authorizer::Digest Authorizer::DigestOf(absl::string_view token) {
  static_assert(SHA256_DIGEST_LENGTH == sizeof(Digest));
  Digest d;
  SHA256(reinterpret_cast<const unsigned char*>(token.data()), token.size(), d.data());
  return d;
}

absl::StatusOr<std::unique_ptr<Authorizer>> Authorizer::FromFile(const std::string& path) {
  std::ifstream in(path);
  if (!in) return absl::NotFoundError(absl::StrCat("token file ", path, ": cannot open"));
  auto auth = std::make_unique<Authorizer>();
  auth->enabled_ = true;
  std::string line;
  int lineno = 0;
  while (std::getline(in, line)) {
    ++lineno;
    if (const size_t at = FindControl(line); at != absl::string_view::npos) {
      return absl::InvalidArgumentError(absl::StrFormat(
          "%s:%d: control character 0x%02x at column %u (separate fields with spaces)", path,
          lineno, static_cast<unsigned char>(line[at]), at + 1));
    }
    const std::string uncommented = line.substr(0, line.find('#'));
    absl::string_view text = absl::StripAsciiWhitespace(uncommented);
    if (text.empty()) continue;
    std::vector<absl::string_view> parts = absl::StrSplit(text, ' ', absl::SkipEmpty());
    if (parts.size() != 2) {
      return absl::InvalidArgumentError(
          absl::StrCat(path, ":", lineno, ": want `TOKEN SCOPE[,SCOPE...]`"));
    }
    Token token{DigestOf(parts[0]), {}};
    absl::string_view identity = parts[0];
    const bool x509 = absl::ConsumePrefix(&identity, "x509:");
    if (x509 && (!absl::StartsWith(identity, "CN=") || identity.size() == 3)) {
      return absl::InvalidArgumentError(
          absl::StrCat(path, ":", lineno, ": want `x509:CN=NAME SCOPE[,SCOPE...]`"));
    }
    for (absl::string_view scope : absl::StrSplit(parts[1], ',')) {
      if (scope == "admin") {
        token.scopes.push_back({Access::kAdmin, ""});
      } else if (absl::ConsumePrefix(&scope, "rw:")) {
        token.scopes.push_back({Access::kWrite, std::string(scope)});
      } else if (absl::ConsumePrefix(&scope, "read:")) {
        token.scopes.push_back({Access::kRead, std::string(scope)});
      } else {
        return absl::InvalidArgumentError(absl::StrCat(
            path, ":", lineno, ": unknown scope \"", scope, "\" (admin, rw:GLOB, read:GLOB)"));
      }
    }
    if (x509) {
      auth->identities_.push_back({std::string(identity), std::move(token.scopes)});
    } else {
      auth->tokens_.push_back(std::move(token));
    }
  }
  return auth;
}

std::optional<Access> Authorizer::IdentityAccess(absl::string_view identity,
                                                 absl::string_view volume) const {
  if (!enabled_) return Access::kWrite;
  if (identity.empty()) return std::nullopt;
  const std::string name(volume);
  std::optional<Access> best;
  for (const Identity& id : identities_) {
    if (id.name != identity) continue;
    for (const Scope& s : id.scopes) {
      if (s.access == Access::kAdmin) return Access::kWrite;
      if (fnmatch(s.pattern.c_str(), name.c_str(), 0) != 0) continue;
      if (s.access == Access::kWrite) return Access::kWrite;
      best = Access::kRead;
    }
  }
  return best;
}

const Authorizer::Token* Authorizer::Find(const grpc::ServerContextBase& ctx) const {
  const auto& md = ctx.client_metadata();
  auto it = md.find("authorization");
  if (it == md.end()) return nullptr;
  absl::string_view value(it->second.data(), it->second.size());
  if (!absl::ConsumePrefix(&value, "Bearer ")) return nullptr;
  const Digest digest = DigestOf(value);
  const Token* found = nullptr;
  for (const Token& t : tokens_) {
    // Every token is compared, so the time does not tell which one matched.
    if (CRYPTO_memcmp(t.digest.data(), digest.data(), digest.size()) == 0 && found == nullptr) {
      found = &t;
    }
  }
  return found;
}

absl::Status Authorizer::Authenticate(const grpc::ServerContextBase& ctx) const {
  if (!enabled_ || Find(ctx) != nullptr) return absl::OkStatus();
  return absl::UnauthenticatedError("a valid bearer token is required");
}

bool Authorizer::CanSee(const grpc::ServerContextBase& ctx, absl::string_view volume) const {
  if (!enabled_) return true;
  const Token* t = Find(ctx);
  if (t == nullptr) return false;
  const std::string name(volume);
  for (const Scope& s : t->scopes) {
    if (s.access == Access::kAdmin) return true;
    if (fnmatch(s.pattern.c_str(), name.c_str(), 0) == 0) return true;
  }
  return false;
}

absl::Status Authorizer::Check(const grpc::ServerContextBase& ctx, Access access,
                               absl::string_view volume) const {
  if (!enabled_) return absl::OkStatus();
  const Token* t = Find(ctx);
  if (t == nullptr) return absl::UnauthenticatedError("a valid bearer token is required");
  const std::string name(volume);
  bool sees = false;
  for (const Scope& s : t->scopes) {
    if (s.access == Access::kAdmin) return absl::OkStatus();
    if (volume.empty() || fnmatch(s.pattern.c_str(), name.c_str(), 0) != 0) continue;
    sees = true;
    if (access == Access::kRead || s.access == Access::kWrite) {
      if (access != Access::kAdmin) return absl::OkStatus();
    }
  }
  if (!volume.empty() && !sees) {
    return absl::NotFoundError(absl::StrCat("volume ", volume, " not found"));
  }
  return absl::PermissionDeniedError("the token's scopes do not allow this call");
}

}  // namespace cowblk::rpc
