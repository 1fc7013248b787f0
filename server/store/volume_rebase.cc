// Store::RebaseVolume: a volume out of service because its image's mtime
// changed or its recorded path moved, taken back (issue #24; cow_rebase.h).

#include <unistd.h>

#include <cerrno>
#include <filesystem>

#include "absl/strings/str_cat.h"
#include "common/file_io.h"
#include "common/log.h"
#include "server/cow/cow_rebase.h"
#include "server/store/names.h"
#include "server/store/store.h"

namespace cowblk::store {
namespace {

namespace fs = std::filesystem;

// The file a rebase records: `image`'s, or, when empty, the file in
// `images_dir` the recorded path names by its file name: an image
// (NAME.img), or a blank base (.blank/SIZE.img). Only that file name
// counts, so a data directory copied elsewhere finds its own images.
absl::StatusOr<std::string> RebaseTarget(const std::string& images_dir,
                                         const std::string& volume,
                                         const std::string& recorded,
                                         const std::string& image) {
  std::string path;
  if (!image.empty()) {
    path = absl::StrCat(images_dir, "/", image, ".img");
    if (access(path.c_str(), F_OK) != 0 && errno == ENOENT) {
      return absl::NotFoundError(absl::StrCat("image ", image, " not found"));
    }
    return path;
  }
  const fs::path p(recorded);
  if (p.parent_path().filename() == ".blank") {
    return absl::StrCat(images_dir, "/.blank/", p.filename().string());
  }
  if (p.extension() == ".img" && ValidateName("image", p.stem().string()).ok()) {
    return absl::StrCat(images_dir, "/", p.stem().string(), ".img");
  }
  return absl::FailedPreconditionError(
      absl::StrCat("volume ", volume, ": its header names no image (", recorded,
                   "); name the image to record"));
}

}  // namespace

absl::StatusOr<VolumeInfo> Store::RebaseVolume(const std::string& name, const std::string& image) {
  if (absl::Status s = ValidateName("name", name); !s.ok()) return s;
  if (!image.empty()) {
    if (absl::Status s = ValidateName("image", image); !s.ok()) return s;
  }
  std::lock_guard<std::mutex> lock(mu_);
  auto it = volumes_.find(name);
  if (it == volumes_.end()) return absl::NotFoundError(absl::StrCat("volume ", name, " not found"));
  if (it->second.handle) {
    return absl::FailedPreconditionError(absl::StrCat(
        "volume ", name, " is open (serving); only a volume that is not servable is rebased"));
  }
  auto target = RebaseTarget(images_dir_, name, it->second.backing, image);
  if (!target.ok()) return target.status();
  // Confined as every backing file is, before the rebase opens it.
  if (auto real = ConfineBacking(*target); !real.ok()) return real.status();
  auto rebased = cow::RebaseUnsafe(VolumePath(name), *target);
  if (!rebased.ok()) return rebased.status();
  Log(LogLevel::kInfo, "volume_rebased",
      {{"volume", name},
       {"backing", rebased->after.backing_file},
       {"mtime", std::to_string(rebased->after.mtime)},
       {"old_backing", rebased->before.backing_file},
       {"old_mtime", std::to_string(rebased->before.mtime)}});
  it->second = Entry{};
  OpenExisting(name);
  return InfoOf(name, volumes_[name]);
}

}  // namespace cowblk::store
