#include "server/store/client_text.h"

#include <algorithm>
#include <cctype>
#include <filesystem>
#include <vector>

namespace cowblk::store {
namespace {

// Longest first, so a root inside another (a symlinked data directory
// beneath its target's parent) is not cut in half.
std::vector<std::string>& Roots() {
  static std::vector<std::string> roots;
  return roots;
}

// A root ends where a path component ends, not in "/data/dir2".
bool EndsComponent(absl::string_view text, size_t pos) {
  if (pos == text.size()) return true;
  const char c = text[pos];
  return !(std::isalnum(static_cast<unsigned char>(c)) || c == '.' || c == '_' || c == '-');
}

}  // namespace

void SetClientTextDataDir(const std::string& root) {
  std::vector<std::string>& roots = Roots();
  roots.clear();
  std::error_code ec;
  const std::string real = std::filesystem::canonical(root, ec).string();
  for (const std::string& r : {root, ec ? std::string() : real}) {
    // "/" as the data directory would turn every path relative: keep them.
    if (r.size() > 1 && std::find(roots.begin(), roots.end(), r) == roots.end()) {
      roots.push_back(r);
    }
  }
  std::sort(roots.begin(), roots.end(),
            [](const std::string& a, const std::string& b) { return a.size() > b.size(); });
}

std::string ForClients(absl::string_view text) {
  std::string out(text);
  for (const std::string& root : Roots()) {
    std::string next;
    size_t from = 0;
    for (size_t at = out.find(root); at != std::string::npos; at = out.find(root, from)) {
      const size_t end = at + root.size();
      next.append(out, from, at - from);
      if (end < out.size() && out[end] == '/') {
        from = end + 1;
      } else if (EndsComponent(out, end)) {
        next.push_back('.');
        from = end;
      } else {
        next.append(root);
        from = end;
      }
    }
    next.append(out, from, std::string::npos);
    out = std::move(next);
  }
  return out;
}

absl::Status ForClients(const absl::Status& status) {
  if (status.ok()) return status;
  absl::Status out(status.code(), ForClients(status.message()));
  status.ForEachPayload(
      [&](absl::string_view url, const absl::Cord& payload) { out.SetPayload(url, payload); });
  return out;
}

}  // namespace cowblk::store
