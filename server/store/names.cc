#include "server/store/names.h"

#include "absl/strings/str_cat.h"

namespace cowblk::store {
namespace {
constexpr size_t kMaxNameLen = 63;
}  // namespace

bool IsValidName(absl::string_view name) {
  if (name.empty() || name.size() > kMaxNameLen) return false;
  auto alnum = [](char c) { return (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9'); };
  if (!alnum(name[0])) return false;
  for (char c : name) {
    if (!alnum(c) && c != '.' && c != '_' && c != '-') return false;
  }
  return true;
}

absl::Status ValidateName(absl::string_view field, absl::string_view name) {
  if (IsValidName(name)) return absl::OkStatus();
  return absl::InvalidArgumentError(absl::StrCat(
      field, ": \"", name.substr(0, 80), "\" is not a valid name ([a-z0-9][a-z0-9._-]{0,62})"));
}

}  // namespace cowblk::store
