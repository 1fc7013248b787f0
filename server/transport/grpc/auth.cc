#include "server/transport/grpc/auth.h"

#include <fnmatch.h>

#include <fstream>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "absl/strings/strip.h"

namespace cowblk::rpc {

absl::StatusOr<std::unique_ptr<Authorizer>> Authorizer::FromFile(const std::string& path) {
  std::ifstream in(path);
  if (!in) return absl::NotFoundError(absl::StrCat("token file ", path, ": cannot open"));
  auto auth = std::make_unique<Authorizer>();
  auth->enabled_ = true;
  std::string line;
  int lineno = 0;
  while (std::getline(in, line)) {
    ++lineno;
    const std::string uncommented = line.substr(0, line.find('#'));
    absl::string_view text = absl::StripAsciiWhitespace(uncommented);
    if (text.empty()) continue;
    std::vector<absl::string_view> parts = absl::StrSplit(text, absl::ByAnyChar(" \t"), absl::SkipEmpty());
    if (parts.size() != 2) {
      return absl::InvalidArgumentError(
          absl::StrCat(path, ":", lineno, ": want `TOKEN SCOPE[,SCOPE...]`"));
    }
    Token token{std::string(parts[0]), {}};
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
    auth->tokens_.push_back(std::move(token));
  }
  return auth;
}

const Authorizer::Token* Authorizer::Find(const grpc::ServerContextBase& ctx) const {
  const auto& md = ctx.client_metadata();
  auto it = md.find("authorization");
  if (it == md.end()) return nullptr;
  absl::string_view value(it->second.data(), it->second.size());
  if (!absl::ConsumePrefix(&value, "Bearer ")) return nullptr;
  for (const Token& t : tokens_) {
    // Constant-time comparison: no early exit on the first differing byte.
    if (t.secret.size() != value.size()) continue;
    unsigned char diff = 0;
    for (size_t i = 0; i < value.size(); ++i) diff |= t.secret[i] ^ value[i];
    if (diff == 0) return &t;
  }
  return nullptr;
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
