#include "server/store/leftovers.h"

#include <filesystem>

#include "absl/strings/match.h"
#include "common/log.h"
#include "server/store/file_size_limit.h"

namespace cowblk::store {
namespace {
namespace fs = std::filesystem;

enum class Dir { kImages, kBlank, kVolumes };

bool IsTemporary(Dir dir, const std::string& file) {
  if (absl::StartsWith(file, kProbePrefix)) return true;
  switch (dir) {
    case Dir::kImages:
      return absl::StartsWith(file, ".upload-") || absl::StartsWith(file, ".commit-");
    case Dir::kBlank:
      // Blank bases are SIZE.img: no image name lives here.
      return absl::StartsWith(file, kBlankTempPrefix) || absl::StrContains(file, ".img.tmp-");
    case Dir::kVolumes:
      return absl::StartsWith(file, kCloneTempPrefix) || absl::StartsWith(file, kResizeTempPrefix);
  }
  return false;
}

void Remove(const fs::path& path, const char* event) {
  std::error_code ec;
  fs::remove(path, ec);
  if (ec) {
    Log(LogLevel::kWarning, event, {{"file", path.string()}, {"error", ec.message()}});
    return;
  }
  Log(LogLevel::kInfo, event, {{"file", path.string()}});
}

}  // namespace

void RemoveLeftovers(const std::string& images_dir, const std::string& volumes_dir) {
  const std::pair<Dir, std::string> dirs[] = {
      {Dir::kImages, images_dir}, {Dir::kBlank, images_dir + "/.blank"}, {Dir::kVolumes, volumes_dir}};
  for (const auto& [kind, dir] : dirs) {
    std::error_code ec;
    for (const auto& entry : fs::directory_iterator(dir, ec)) {
      const fs::path& p = entry.path();
      const std::string file = p.filename().string();
      if (IsTemporary(kind, file)) {
        Remove(p, "temporary_removed");
      } else if (kind == Dir::kVolumes && p.extension() == ".state" &&
                 fs::symlink_status(fs::path(p).replace_extension(".cow"), ec).type() ==
                     fs::file_type::not_found) {
        Remove(p, "orphan_state_removed");
      }
    }
  }
}

}  // namespace cowblk::store
