#include "client/cli/output.h"

#include <algorithm>
#include <cctype>
#include <cstdio>

#include "absl/strings/cord.h"
#include "absl/strings/str_cat.h"

namespace cowblk::cli {

namespace {
constexpr char kStdoutClosedPayload[] = "cowblk.cli/stdout-closed";
}  // namespace

absl::Status StdoutClosed() {
  absl::Status s = absl::CancelledError("stdout: the reader closed the pipe");
  s.SetPayload(kStdoutClosedPayload, absl::Cord("1"));
  return s;
}

bool IsStdoutClosed(const absl::Status& status) {
  return status.GetPayload(kStdoutClosedPayload).has_value();
}

int ExitCode(const absl::Status& status) {
  if (IsStdoutClosed(status)) return kExitClosedPipe;
  switch (status.code()) {
    case absl::StatusCode::kOk:
      return kExitOk;
    case absl::StatusCode::kInvalidArgument:
    case absl::StatusCode::kOutOfRange:
      return kExitUsage;
    case absl::StatusCode::kUnavailable:
    case absl::StatusCode::kDeadlineExceeded:
      return kExitUnavailable;
    case absl::StatusCode::kNotFound:
      return kExitNotFound;
    case absl::StatusCode::kAlreadyExists:
      return kExitExists;
    case absl::StatusCode::kUnauthenticated:
    case absl::StatusCode::kPermissionDenied:
      return kExitDenied;
    default:
      return kExitFailed;
  }
}

std::string ErrorLine(const std::string& context, const absl::Status& status) {
  std::string message(status.message());
  std::replace(message.begin(), message.end(), '\n', ' ');
  std::string line = "cowblk: ";
  if (!context.empty()) absl::StrAppend(&line, context, ": ");
  absl::StrAppend(&line, message, " (", absl::StatusCodeToString(status.code()), ")");
  return line;
}

absl::StatusOr<uint64_t> ParseSize(const std::string& text, const std::string& what) {
  auto bad = [&] {
    return absl::InvalidArgumentError(absl::StrCat(
        what, ": '", text, "' is not a size (bytes, or a number with K, M, G, T or P)"));
  };
  size_t i = 0;
  uint64_t value = 0;
  while (i < text.size() && std::isdigit(static_cast<unsigned char>(text[i]))) {
    const uint64_t digit = static_cast<uint64_t>(text[i] - '0');
    if (value > (UINT64_MAX - digit) / 10) return bad();
    value = value * 10 + digit;
    ++i;
  }
  if (i == 0) return bad();
  std::string suffix = text.substr(i);
  std::transform(suffix.begin(), suffix.end(), suffix.begin(),
                 [](unsigned char c) { return static_cast<char>(std::tolower(c)); });
  if (suffix.empty() || suffix == "b") return value;
  static const std::string kUnits = "kmgtp";
  const size_t unit = kUnits.find(suffix[0]);
  if (unit == std::string::npos) return bad();
  const std::string rest = suffix.substr(1);
  if (!rest.empty() && rest != "b" && rest != "ib") return bad();
  const unsigned shift = 10 * static_cast<unsigned>(unit + 1);
  if (value > (UINT64_MAX >> shift)) return bad();
  return value << shift;
}

std::string FormatSize(uint64_t bytes) {
  static const char* kUnits[] = {"B", "KiB", "MiB", "GiB", "TiB", "PiB"};
  if (bytes < 1024) return absl::StrCat(bytes, " B");
  double v = static_cast<double>(bytes);
  int unit = 0;
  while (v >= 1024 && unit < 5) {
    v /= 1024;
    ++unit;
  }
  char buf[32];
  if (v == static_cast<double>(static_cast<uint64_t>(v))) {
    std::snprintf(buf, sizeof buf, "%.0f %s", v, kUnits[unit]);
  } else {
    std::snprintf(buf, sizeof buf, "%.1f %s", v, kUnits[unit]);
  }
  return buf;
}

std::string Table(const std::vector<std::vector<std::string>>& rows) {
  std::vector<size_t> width;
  for (const auto& row : rows) {
    if (width.size() < row.size()) width.resize(row.size(), 0);
    for (size_t c = 0; c < row.size(); ++c) width[c] = std::max(width[c], row[c].size());
  }
  std::string out;
  for (const auto& row : rows) {
    std::string line;
    for (size_t c = 0; c < row.size(); ++c) {
      line += row[c];
      if (c + 1 < row.size()) line += std::string(width[c] - row[c].size() + 2, ' ');
    }
    out += line + "\n";
  }
  return out;
}

nlohmann::json ToJson(const VolumeInfo& v) {
  return {{"name", v.name},
          {"size_bytes", v.size_bytes},
          {"sector_size", v.sector_size},
          {"allocated_bytes", v.allocated_bytes},
          {"image", v.image},
          {"state", VolumeStateName(v.state)},
          {"error", v.error}};
}

nlohmann::json ToJson(const ImageInfo& i) {
  return {{"name", i.name}, {"size_bytes", i.size_bytes}, {"volume_count", i.volume_count}};
}

}  // namespace cowblk::cli
