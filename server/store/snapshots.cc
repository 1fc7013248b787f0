// Store's snapshots: an image of a volume at one moment (Store::Commit)
// plus its record (snapshot_record.h). docs/design.md, "Snapshots".

#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <filesystem>

#include "absl/strings/str_cat.h"
#include "common/file_io.h"
#include "common/log.h"
#include "server/store/names.h"
#include "server/store/snapshot_record.h"
#include "server/store/store.h"

namespace cowblk::store {
namespace {
namespace fs = std::filesystem;

bool Exists(const std::string& path) { return access(path.c_str(), F_OK) == 0; }

}  // namespace

uint32_t Store::UsersLocked(const std::string& image_path) const {
  std::error_code ec;
  const std::string real = fs::canonical(image_path, ec).string();
  uint32_t n = 0;
  for (const auto& [vname, e] : volumes_) {
    n += e.backing == image_path || (!ec && e.backing_real == real);
  }
  return n;
}

absl::StatusOr<SnapshotInfo> Store::SnapshotInfoLocked(const std::string& name) {
  auto image = ImageInfoLocked(name);
  const std::string record_path = SnapshotRecordPath(images_dir_, name);
  if (!image.ok() || !Exists(record_path)) {
    return absl::NotFoundError(absl::StrCat("snapshot ", name, " not found"));
  }
  auto record = ReadSnapshotRecord(record_path);
  if (!record.ok()) return record.status();
  return SnapshotInfo{name, record->source, image->size_bytes, record->created_unix_nanos,
                      image->volume_count};
}

absl::StatusOr<SnapshotInfo> Store::CreateSnapshot(const std::string& volume,
                                                   const std::string& name,
                                                   const std::function<bool()>& cancelled) {
  if (absl::Status s = ValidateName("volume", volume); !s.ok()) return s;
  if (absl::Status s = ValidateName("name", name); !s.ok()) return s;
  {
    // A hidden snapshot keeps its name until its image goes.
    std::lock_guard<std::mutex> lock(mu_);
    if (Exists(HiddenSnapshotRecordPath(images_dir_, name))) {
      return absl::AlreadyExistsError(absl::StrCat(
          "snapshot ", name, " was deleted but volumes still use its image: the name is taken"));
    }
  }
  SnapshotRecord record;
  record.source = volume;
  record.created_unix_nanos = std::chrono::duration_cast<std::chrono::nanoseconds>(
                                  std::chrono::system_clock::now().time_since_epoch())
                                  .count();
  const std::string content = FormatSnapshotRecord(record);
  auto image = Commit(volume, name, cancelled, &content);
  if (!image.ok()) {
    if (image.status().code() == absl::StatusCode::kAlreadyExists) {
      return absl::AlreadyExistsError(
          absl::StrCat("snapshot ", name, ": an image or snapshot of that name exists"));
    }
    return image.status();
  }
  Log(LogLevel::kInfo, "snapshot_created", {{"snapshot", name}, {"volume", volume}});
  return SnapshotInfo{name, volume, image->size_bytes, record.created_unix_nanos, 0};
}

absl::StatusOr<SnapshotInfo> Store::GetSnapshot(const std::string& name) {
  if (absl::Status s = ValidateName("name", name); !s.ok()) return s;
  std::lock_guard<std::mutex> lock(mu_);
  return SnapshotInfoLocked(name);
}

std::vector<SnapshotInfo> Store::ListSnapshots(const std::string& source, const std::string& after,
                                               size_t limit) {
  std::lock_guard<std::mutex> lock(mu_);
  std::vector<std::string> names;
  std::error_code ec;
  for (const auto& entry : fs::directory_iterator(images_dir_, ec)) {
    const fs::path& p = entry.path();
    if (p.extension() != kSnapshotRecordExt) continue;
    const std::string name = p.stem().string();
    if (IsValidName(name) && name > after) names.push_back(name);
  }
  std::sort(names.begin(), names.end());
  std::vector<SnapshotInfo> out;
  for (const std::string& n : names) {
    if (out.size() >= limit) break;
    auto info = SnapshotInfoLocked(n);
    if (info.ok() && (source.empty() || info->source == source)) out.push_back(*info);
  }
  return out;
}

absl::Status Store::DeleteSnapshot(const std::string& name) {
  if (absl::Status s = ValidateName("name", name); !s.ok()) return s;
  std::lock_guard<std::mutex> lock(mu_);
  auto info = SnapshotInfoLocked(name);
  if (!info.ok()) return info.status();
  const std::string record = SnapshotRecordPath(images_dir_, name);
  if (info->volume_count > 0) {
    if (rename(record.c_str(), HiddenSnapshotRecordPath(images_dir_, name).c_str()) != 0) {
      return ErrnoStatus(errno, absl::StrCat("hide snapshot ", name));
    }
    FsyncDir(images_dir_).IgnoreError();
    Log(LogLevel::kInfo, "snapshot_hidden",
        {{"snapshot", name}, {"volumes", std::to_string(info->volume_count)}});
    return absl::OkStatus();
  }
  // The image first: a crash between leaves a record without an image,
  // which Open removes, never an image nobody lists as a snapshot.
  if (unlink(ImagePath(name).c_str()) != 0) {
    return ErrnoStatus(errno, absl::StrCat("delete snapshot ", name));
  }
  unlink(record.c_str());
  FsyncDir(images_dir_).IgnoreError();
  Log(LogLevel::kInfo, "snapshot_deleted", {{"snapshot", name}});
  return absl::OkStatus();
}

void Store::ReapSnapshotsLocked() {
  std::error_code ec;
  std::vector<fs::path> records;
  for (const auto& entry : fs::directory_iterator(images_dir_, ec)) {
    const fs::path& p = entry.path();
    if (p.extension() == kSnapshotRecordExt || p.extension() == kHiddenSnapshotRecordExt) {
      records.push_back(p);
    }
  }
  for (const fs::path& p : records) {
    const std::string name = p.stem().string();
    const std::string image = ImagePath(name);
    const bool hidden = p.extension() == kHiddenSnapshotRecordExt;
    if (!Exists(image)) {
      unlink(p.c_str());
      Log(LogLevel::kInfo, "orphan_snapshot_record_removed", {{"file", p.string()}});
    } else if (hidden && UsersLocked(image) == 0) {
      if (unlink(image.c_str()) != 0) continue;  // tried again later
      unlink(p.c_str());
      Log(LogLevel::kInfo, "snapshot_deleted", {{"snapshot", name}, {"reason", "last volume gone"}});
    }
  }
  FsyncDir(images_dir_).IgnoreError();
}

}  // namespace cowblk::store
