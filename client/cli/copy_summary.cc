#include "client/cli/copy_summary.h"

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "client/cli/output.h"

namespace cowblk::cli {
namespace {

double Rate(const CopySummary& s) {
  return s.seconds > 0 ? static_cast<double>(s.stats.bytes) / s.seconds : 0;
}

}  // namespace

CopySummary CopySummary::Since(const CopyStats& stats,
                               std::chrono::steady_clock::time_point start) {
  return {stats,
          std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count()};
}

std::string CopySummary::Bytes() const {
  return absl::StrCat(FormatSize(stats.bytes), " (", FormatSize(stats.data_bytes), " data, ",
                      FormatSize(stats.zero_bytes), " zeros)");
}

std::string CopySummary::Time() const {
  return absl::StrCat("in ", absl::StrFormat("%.2f", seconds), " s (",
                      FormatSize(static_cast<uint64_t>(Rate(*this))), "/s)");
}

void CopySummary::AddTo(nlohmann::json& j) const {
  j["bytes"] = stats.bytes;
  j["data_bytes"] = stats.data_bytes;
  j["zero_bytes"] = stats.zero_bytes;
  j["seconds"] = seconds;
  j["bytes_per_second"] = Rate(*this);
}

}  // namespace cowblk::cli
