#include "server/store/store.h"

#include <dirent.h>
#include <fcntl.h>
#include <sys/stat.h>
#include <sys/statvfs.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <filesystem>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "common/block_range.h"
#include "common/file_io.h"
#include "common/log.h"
#include "common/sector.h"
#include "server/store/client_text.h"
#include "server/store/file_size_limit.h"
#include "server/store/header_facts.h"
#include "server/store/leftovers.h"
#include "server/store/names.h"
#include "server/store/random_id.h"
#include "server/store/snapshot_copy.h"
#include "server/store/snapshot_record.h"

namespace cowblk::store {
namespace {
namespace fs = std::filesystem;

absl::Status LinkCountError(absl::string_view what, const std::string& path, nlink_t links) {
  return absl::FailedPreconditionError(absl::StrCat(
      what, " ", path, " has ", links, " hard links (one is required: a link may lead anywhere)"));
}

// A regular file, not a symlink, with one name.
absl::Status StatSingleLink(const std::string& path, absl::string_view what) {
  auto st = StatRegular(path, what);
  if (!st.ok()) return st.status();
  if (st->st_nlink > 1) return LinkCountError(what, path, st->st_nlink);
  return absl::OkStatus();
}

}  // namespace


absl::StatusOr<std::unique_ptr<Store>> Store::Open(const StoreOptions& options,
                                                   engine::EngineGroup* engines) {
  std::error_code ec;
  const fs::path root = fs::absolute(options.data_dir, ec).lexically_normal();
  std::unique_ptr<Store> store(
      new Store(options, engines, (root / "images").string(), (root / "volumes").string()));
  for (const std::string& dir : {store->images_dir_ + "/.blank", store->volumes_dir_}) {
    fs::create_directories(dir, ec);
    if (ec) return absl::InternalError(absl::StrCat("create ", dir, ": ", ec.message()));
  }
  SetClientTextDataDir(root.string());
  RemoveLeftovers(store->images_dir_, store->volumes_dir_);
  // The largest file that fits where images and volumes live bounds the
  // largest volume (and so image) below the configured limit.
  store->fs_max_volume_size_ = MaxVolumeSizeIn({store->images_dir_ + "/.blank", store->volumes_dir_});
  Log(LogLevel::kInfo, "volume_size_limit",
      {{"bytes", std::to_string(store->max_volume_size())},
       {"file_system_bytes", std::to_string(store->fs_max_volume_size_)}});
  std::vector<std::string> names;
  for (const auto& entry : fs::directory_iterator(store->volumes_dir_, ec)) {
    const fs::path& p = entry.path();
    if (p.extension() != ".cow") continue;
    const std::string name = p.stem().string();
    if (!IsValidName(name)) {
      Log(LogLevel::kWarning, "volume_skipped", {{"file", p.string()}, {"reason", "invalid name"}});
      continue;
    }
    names.push_back(name);
  }
  if (ec) return absl::InternalError(absl::StrCat("list ", store->volumes_dir_, ": ", ec.message()));
  std::sort(names.begin(), names.end());
  std::lock_guard<std::mutex> lock(store->mu_);
  for (const std::string& name : names) store->OpenExisting(name);
  store->ReapSnapshotsLocked();
  return store;
}

Store::~Store() { CloseAll().IgnoreError(); }

absl::Status Store::CloseAll() {
  std::lock_guard<std::mutex> lock(mu_);
  absl::Status first;
  for (auto& [name, e] : volumes_) {
    if (!e.handle) continue;
    absl::Status s = e.handle->Close();
    if (s.ok()) epochs_.Close(name, e.handle->epoch());  // nothing acknowledged was lost
    Log(s.ok() ? LogLevel::kInfo : LogLevel::kError, "volume_closed",
        {{"volume", name}, {"status", s.ok() ? "ok" : std::string(s.message())}});
    if (first.ok()) first = s;
    e.handle.reset();
    e.error = "closed";
  }
  return first;
}

uint64_t Store::max_volume_size() const {
  return std::min(options_.max_volume_size, fs_max_volume_size_);
}

std::string Store::LimitReason() const {
  return fs_max_volume_size_ < options_.max_volume_size
             ? " (the data directory's file system holds no larger COW file)"
             : "";
}

std::string Store::ImagePath(const std::string& name) const {
  return absl::StrCat(images_dir_, "/", name, ".img");
}

std::string Store::VolumePath(const std::string& name) const {
  return absl::StrCat(volumes_dir_, "/", name, ".cow");
}

std::string Store::ImageNameOf(const std::string& backing) const {
  const fs::path p(backing);
  if (p.parent_path() == fs::path(images_dir_) && p.extension() == ".img") return p.stem().string();
  return "";
}

void Store::OpenExisting(const std::string& name) {
  Entry& e = volumes_[name];
  const std::string path = VolumePath(name);
  absl::Status st = StatSingleLink(path, "volume");
  // The backing file is confined before it is opened: opening a FIFO
  // elsewhere would block start-up.
  cow::OpenOptions open_options;
  open_options.writable = true;
  open_options.check_backing = [this](const std::string& backing) {
    return ConfineBacking(backing).status();
  };
  absl::StatusOr<std::unique_ptr<cow::CowFile>> file =
      st.ok() ? cow::CowFile::Open(path, open_options) : st;
  absl::Status s = file.ok() ? Serve(name, *std::move(file), e) : file.status();
  if (!s.ok()) {
    e.error = std::string(s.message());
    // Not served, but listed with the size and image its header names.
    if (st.ok() && e.size_bytes == 0) {
      if (auto facts = ReadHeaderFacts(path); facts.ok()) {
        e.size_bytes = facts->size_bytes;
        e.backing = facts->backing;
      }
    }
    Log(LogLevel::kError, "volume_unavailable", {{"volume", name}, {"error", e.error}});
    return;
  }
  Log(LogLevel::kInfo, "volume_opened",
      {{"volume", name}, {"size", std::to_string(e.size_bytes)}, {"backing", e.backing}});
}

absl::Status Store::Serve(const std::string& name, std::unique_ptr<cow::CowFile> file, Entry& e) {
  e.backing = file->header().backing_file;
  e.size_bytes = file->geometry().device_size;
  auto real_backing = ConfineBacking(e.backing);
  if (!real_backing.ok()) return real_backing.status();
  e.backing_real = *std::move(real_backing);
  const std::string epoch = epochs_.Open(name);
  engine::Engine* engine = engines_->Pick();
  auto volume = engine->OpenVolume(std::move(file), options_.volume_options);
  if (!volume.ok()) return volume.status();
  e.handle = std::make_shared<VolumeHandle>(name, engine, *volume, epoch);
  e.error.clear();
  return absl::OkStatus();
}

absl::StatusOr<std::string> Store::ConfineBacking(const std::string& backing) const {
  // Every file we open lives beneath the data directory.
  std::error_code ec;
  const fs::path real_backing = fs::canonical(backing, ec);
  const fs::path real_images = fs::canonical(images_dir_, ec);
  const std::string prefix = real_images.string() + "/";
  if (ec || real_backing.string().compare(0, prefix.size(), prefix) != 0) {
    return absl::FailedPreconditionError(
        absl::StrCat("backing file ", backing, " is outside ", images_dir_));
  }
  // A hard link makes any file of the file system look like one beneath it.
  struct stat st;
  if (stat(real_backing.c_str(), &st) != 0) {
    return ErrnoStatus(errno, absl::StrCat("backing file ", backing));
  }
  if (!S_ISREG(st.st_mode)) {
    return absl::FailedPreconditionError(
        absl::StrCat("backing file ", backing, " is not a regular file"));
  }
  if (st.st_nlink > 1) return LinkCountError("backing file", backing, st.st_nlink);
  return real_backing.string();
}

absl::StatusOr<std::string> Store::BlankBase(uint64_t size_bytes) {
  const std::string path = absl::StrCat(images_dir_, "/.blank/", size_bytes, ".img");
  if (access(path.c_str(), F_OK) == 0) return path;
  const std::string tmp =
      absl::StrCat(images_dir_, "/.blank/", kBlankTempPrefix, size_bytes, "-", RandomHexId());
  int fd = open(tmp.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0444);
  if (fd < 0) return ErrnoStatus(errno, absl::StrCat("create ", tmp));
  const bool ok = ftruncate(fd, static_cast<off_t>(size_bytes)) == 0 && fsync(fd) == 0;
  const int err = errno;
  close(fd);
  if (!ok || rename(tmp.c_str(), path.c_str()) != 0) {
    unlink(tmp.c_str());
    return ErrnoStatus(ok ? errno : err, absl::StrCat("create ", path));
  }
  absl::Status s = FsyncDir(images_dir_ + "/.blank");
  if (!s.ok()) return s;
  return path;
}

VolumeInfo Store::InfoOf(const std::string& name, const Entry& e) const {
  VolumeInfo info;
  info.name = name;
  info.size_bytes = e.size_bytes;
  info.image = ImageNameOf(e.backing);
  info.ready = e.handle != nullptr;
  info.error = e.error;
  if (e.handle) {
    info.allocated_bytes = e.handle->stats().allocated_sectors.value() * kSectorSize;
    info.epoch = e.handle->epoch();
  }
  return info;
}

absl::StatusOr<VolumeInfo> Store::CreateVolume(const std::string& name, const std::string& image,
                                               uint64_t size_bytes) {
  if (absl::Status s = ValidateName("name", name); !s.ok()) return s;
  std::string backing;
  if (!image.empty()) {
    if (absl::Status s = ValidateName("image", image); !s.ok()) return s;
    if (size_bytes != 0) {
      return absl::InvalidArgumentError("size_bytes: must be 0 for a volume over an image");
    }
  } else {
    if (size_bytes == 0) {
      return absl::InvalidArgumentError("size_bytes: required (> 0) for a blank volume");
    }
    if (!IsSectorAligned(size_bytes)) {
      return absl::InvalidArgumentError(
          absl::StrFormat("size_bytes: %u is not a multiple of 512", size_bytes));
    }
    if (size_bytes > max_volume_size()) {
      return absl::InvalidArgumentError(absl::StrFormat(
          "size_bytes: %u is above the limit of %u%s", size_bytes, max_volume_size(),
          LimitReason()));
    }
  }
  std::lock_guard<std::mutex> lock(mu_);
  if (volumes_.count(name) != 0 || clones_.count(name) != 0) {
    return absl::AlreadyExistsError(absl::StrCat("volume ", name, " exists"));
  }
  if (!image.empty()) {
    backing = ImagePath(image);
    auto st = StatRegular(backing, "image");
    if (!st.ok()) {
      if (st.status().code() == absl::StatusCode::kNotFound) {
        return absl::NotFoundError(absl::StrCat("image ", image, " not found"));
      }
      return st.status();
    }
    if (static_cast<uint64_t>(st->st_size) > max_volume_size()) {
      return absl::OutOfRangeError(absl::StrFormat(
          "image %s: %u bytes, above the volume size limit of %u%s", image, st->st_size,
          max_volume_size(), LimitReason()));
    }
  } else {
    auto base = BlankBase(size_bytes);
    if (!base.ok()) return base.status();
    backing = *base;
  }
  const std::string path = VolumePath(name);
  auto file = cow::CowFile::Create(path, cow::CreateOptions{backing});
  if (!file.ok()) return file.status();
  Entry e;
  if (absl::Status s = Serve(name, *std::move(file), e); !s.ok()) {
    unlink(path.c_str());
    return s;
  }
  FsyncDir(volumes_dir_).IgnoreError();  // the file itself was synced by Create
  auto [it, inserted] = volumes_.emplace(name, std::move(e));
  Log(LogLevel::kInfo, "volume_created",
      {{"volume", name}, {"image", image}, {"size", std::to_string(it->second.size_bytes)}});
  return InfoOf(name, it->second);
}

absl::StatusOr<VolumeInfo> Store::GetVolume(const std::string& name) {
  if (absl::Status s = ValidateName("name", name); !s.ok()) return s;
  std::lock_guard<std::mutex> lock(mu_);
  auto it = volumes_.find(name);
  if (it == volumes_.end()) return absl::NotFoundError(absl::StrCat("volume ", name, " not found"));
  return InfoOf(name, it->second);
}

std::vector<VolumeInfo> Store::ListVolumes(const std::string& after, size_t limit) {
  std::lock_guard<std::mutex> lock(mu_);
  std::vector<VolumeInfo> out;
  for (auto it = volumes_.upper_bound(after); it != volumes_.end() && out.size() < limit; ++it) {
    out.push_back(InfoOf(it->first, it->second));
  }
  return out;
}

absl::StatusOr<StoreStats> Store::Stats() {
  struct statvfs fs {};
  if (statvfs(options_.data_dir.c_str(), &fs) != 0) {
    return ErrnoStatus(errno, absl::StrCat("statvfs ", options_.data_dir));
  }
  StoreStats stats;
  stats.capacity_bytes = static_cast<uint64_t>(fs.f_blocks) * fs.f_frsize;
  stats.free_bytes = static_cast<uint64_t>(fs.f_bavail) * fs.f_frsize;
  std::lock_guard<std::mutex> lock(mu_);
  stats.volume_count = static_cast<uint32_t>(volumes_.size());
  for (const auto& [name, e] : volumes_) {
    stats.provisioned_bytes += e.size_bytes;
    if (e.handle) stats.allocated_bytes += e.handle->stats().allocated_sectors.value() * kSectorSize;
  }
  return stats;
}

absl::Status Store::DeleteVolume(const std::string& name) {
  if (absl::Status s = ValidateName("name", name); !s.ok()) return s;
  std::lock_guard<std::mutex> lock(mu_);
  auto it = volumes_.find(name);
  if (it == volumes_.end()) return absl::NotFoundError(absl::StrCat("volume ", name, " not found"));
  if (it->second.handle) it->second.handle->Close().IgnoreError();  // deleted anyway
  // The record first: a crash between the two leaves a volume that opens
  // with a new epoch, never a record a later volume of the name inherits.
  const std::string state = epochs_.PathOf(name);
  if (unlink(state.c_str()) != 0 && errno != ENOENT) {
    return ErrnoStatus(errno, absl::StrCat("delete ", state));
  }
  const std::string path = VolumePath(name);
  if (unlink(path.c_str()) != 0 && errno != ENOENT) {
    return ErrnoStatus(errno, absl::StrCat("delete ", path));
  }
  volumes_.erase(it);
  FsyncDir(volumes_dir_).IgnoreError();
  Log(LogLevel::kInfo, "volume_deleted", {{"volume", name}});
  ReapSnapshotsLocked();  // the last user of a deleted snapshot's image
  return absl::OkStatus();
}

absl::StatusOr<std::shared_ptr<VolumeHandle>> Store::FindVolume(const std::string& name) {
  if (absl::Status s = ValidateName("volume", name); !s.ok()) return s;
  std::lock_guard<std::mutex> lock(mu_);
  auto it = volumes_.find(name);
  if (it == volumes_.end()) return absl::NotFoundError(absl::StrCat("volume ", name, " not found"));
  if (!it->second.handle) {
    return absl::FailedPreconditionError(
        absl::StrCat("volume ", name, " is not servable: ", it->second.error));
  }
  return it->second.handle;
}

std::vector<std::shared_ptr<VolumeHandle>> Store::ReadyVolumes() {
  std::lock_guard<std::mutex> lock(mu_);
  std::vector<std::shared_ptr<VolumeHandle>> out;
  for (auto& [name, e] : volumes_) {
    if (e.handle) out.push_back(e.handle);
  }
  return out;
}

absl::StatusOr<ImageInfo> Store::CommitVolume(const std::string& name, const std::string& image,
                                              const std::function<bool()>& cancelled) {
  return Commit(name, image, cancelled, nullptr);
}

absl::StatusOr<ImageInfo> Store::Commit(const std::string& name, const std::string& image,
                                        const std::function<bool()>& cancelled,
                                        const std::string* record) {
  if (absl::Status s = ValidateName("image", image); !s.ok()) return s;
  auto handle = FindVolume(name);
  if (!handle.ok()) return handle.status();
  const std::string final_path = ImagePath(image);
  {
    // Reserve the name; the copy itself runs without the store lock, so
    // I/O and other calls go on meanwhile.
    std::lock_guard<std::mutex> lock(mu_);
    if (access(final_path.c_str(), F_OK) == 0 || !commits_.insert(image).second) {
      return absl::AlreadyExistsError(absl::StrCat("image ", image, " exists"));
    }
  }
  auto release = [&] {
    std::lock_guard<std::mutex> lock(mu_);
    commits_.erase(image);
  };
  const std::string tmp = absl::StrCat(images_dir_, "/.commit-", image, "-", RandomHexId());
  auto stats = CopySnapshot(**handle, tmp, cancelled);
  if (stats.ok() && cancelled && cancelled()) {
    unlink(tmp.c_str());
    stats = absl::CancelledError(absl::StrCat("commit of volume ", name, " cancelled"));
  }
  if (!stats.ok()) {
    release();
    Log(LogLevel::kWarning, "volume_commit_failed",
        {{"volume", name}, {"image", image}, {"error", std::string(stats.status().message())}});
    return stats.status();
  }
  // A snapshot's record first: a crash before the image is published
  // leaves a record without an image, which Open removes.
  const std::string record_path = SnapshotRecordPath(images_dir_, image);
  if (record != nullptr) {
    if (absl::Status r = WriteSnapshotRecord(images_dir_, record_path, *record); !r.ok()) {
      unlink(tmp.c_str());
      release();
      return r;
    }
  }
  const int err = RenameNoReplace(tmp, final_path);
  if (err != 0) {
    unlink(tmp.c_str());
    if (record != nullptr) unlink(record_path.c_str());
  }
  release();
  if (err != 0) {
    if (err == EEXIST) return absl::AlreadyExistsError(absl::StrCat("image ", image, " exists"));
    return ErrnoStatus(err, absl::StrCat("publish ", final_path));
  }
  FsyncDir(images_dir_).IgnoreError();
  const engine::SnapshotStats& held = stats->snapshot;
  Log(LogLevel::kInfo, "volume_committed",
      {{"volume", name},
       {"image", image},
       {"bytes_from_cow", std::to_string(stats->image.bytes_from_cow)},
       {"drain_us", std::to_string(held.drain_ns / 1000)},
       {"held_writes", std::to_string(held.held_writes)},
       {"max_hold_us", std::to_string(held.max_hold_ns / 1000)},
       {"chunks_early", std::to_string(held.chunks_early)}});
  return ImageInfo{image, stats->image.image_size, 0};
}

void SplitBackingZeros(int backing_fd, uint64_t first, uint64_t count, size_t max,
                       std::vector<AllocationPage::Extent>* out) {
  uint64_t at = first * kSectorSize;
  const uint64_t end = at + count * kSectorSize;
  // Appends [at, to) in state `zero` and moves `at` there; false once full.
  auto add = [&](uint64_t to, bool zero) {
    if (to <= at) return true;
    if (!out->empty() && !out->back().allocated && out->back().zero == zero &&
        out->back().offset + out->back().length == at) {
      out->back().length += to - at;
    } else if (out->size() < max) {
      out->push_back({at, to - at, false, zero});
    } else {
      return false;
    }
    at = to;
    return true;
  };
  auto down = [](uint64_t b) { return b / kSectorSize * kSectorSize; };
  auto up = [&](uint64_t b) { return down(b + kSectorSize - 1); };
  if (backing_fd < 0) {
    add(end, true);
    return;
  }
  while (at < end) {
    const off_t data = lseek(backing_fd, static_cast<off_t>(at), SEEK_DATA);
    if (data < 0) {
      // ENXIO: no data from `at` to the file's end (and beyond it, zeros).
      add(end, errno == ENXIO);
      return;
    }
    if (!add(std::min(down(static_cast<uint64_t>(data)), end), true)) return;
    const off_t hole = lseek(backing_fd, static_cast<off_t>(at), SEEK_HOLE);
    if (!add(hole < 0 ? end : std::min(up(static_cast<uint64_t>(hole)), end), false)) return;
  }
}

std::vector<AllocationPage::Extent> ExtentsOf(const engine::Volume& v,
                                              const std::vector<cow::SectorRun>& runs,
                                              size_t max) {
  std::vector<AllocationPage::Extent> out;
  for (const cow::SectorRun& r : runs) {
    if (out.size() >= max) break;
    if (r.allocated) {
      out.push_back({r.first * kSectorSize, r.count * kSectorSize, true, false});
    } else {
      SplitBackingZeros(v.backing_fd(), r.first, r.count, max, &out);
    }
  }
  return out;
}

absl::StatusOr<VolumeInfo> Store::CloneVolume(const std::string& source, const std::string& name,
                                              const std::function<bool()>& cancelled) {
  if (absl::Status s = ValidateName("name", name); !s.ok()) return s;
  if (absl::Status s = ValidateName("source", source); !s.ok()) return s;
  auto handle = FindVolume(source);
  if (!handle.ok()) return handle.status();
  std::string backing;
  {
    // Reserve the name; the copy runs without the store lock.
    std::lock_guard<std::mutex> lock(mu_);
    auto it = volumes_.find(source);
    if (it == volumes_.end() || it->second.handle != *handle) {
      return absl::NotFoundError(absl::StrCat("volume ", source, " not found"));
    }
    if (volumes_.count(name) != 0 || !clones_.insert(name).second) {
      return absl::AlreadyExistsError(absl::StrCat("volume ", name, " exists"));
    }
    backing = it->second.backing;
  }
  const std::string tmp = absl::StrCat(volumes_dir_, "/", kCloneTempPrefix, name, "-", RandomHexId());
  auto stats = CloneSnapshot(**handle, tmp, backing, cancelled);
  if (stats.ok() && cancelled && cancelled()) {
    unlink(tmp.c_str());
    stats = absl::CancelledError(absl::StrCat("clone of volume ", source, " cancelled"));
  }
  std::lock_guard<std::mutex> lock(mu_);
  clones_.erase(name);
  if (!stats.ok()) {
    Log(LogLevel::kWarning, "volume_clone_failed",
        {{"volume", name}, {"source", source}, {"error", std::string(stats.status().message())}});
    return stats.status();
  }
  const std::string path = VolumePath(name);
  if (const int err = RenameNoReplace(tmp, path); err != 0) {
    unlink(tmp.c_str());
    if (err == EEXIST) return absl::AlreadyExistsError(absl::StrCat("volume ", name, " exists"));
    return ErrnoStatus(err, absl::StrCat("publish ", path));
  }
  FsyncDir(volumes_dir_).IgnoreError();
  cow::OpenOptions open_options;
  open_options.writable = true;
  open_options.check_backing = [this](const std::string& b) { return ConfineBacking(b).status(); };
  auto file = cow::CowFile::Open(path, open_options);
  Entry e;
  absl::Status s = file.ok() ? Serve(name, *std::move(file), e) : file.status();
  if (!s.ok()) {
    unlink(path.c_str());
    FsyncDir(volumes_dir_).IgnoreError();
    return s;
  }
  auto [it, inserted] = volumes_.emplace(name, std::move(e));
  const engine::SnapshotStats& held = stats->snapshot;
  Log(LogLevel::kInfo, "volume_cloned",
      {{"volume", name},
       {"source", source},
       {"bytes_from_cow", std::to_string(stats->image.bytes_from_cow)},
       {"drain_us", std::to_string(held.drain_ns / 1000)},
       {"held_writes", std::to_string(held.held_writes)}});
  return InfoOf(name, it->second);
}

namespace {

// Copies the allocated sectors of `from` (its COW data area) into `to` at
// the same device offsets, 1 MiB at a time.
absl::Status CopyAllocated(const cow::CowFile& from, cow::CowFile& to) {
  constexpr uint64_t kChunkSectors = 2048;
  std::string buf(kChunkSectors * kSectorSize, '\0');
  const cow::Geometry& g = from.geometry();
  for (uint64_t first = 0; first < g.sectors;) {
    const uint64_t count = std::min(kChunkSectors, g.sectors - first);
    for (const cow::SectorRun& run : cow::SplitRuns(from.bitmap(), first, count)) {
      if (!run.allocated) continue;
      const uint64_t len = run.count * kSectorSize;
      if (absl::Status s = PReadFull(from.cow_fd(), buf.data(), len,
                                     g.data_offset + run.first * kSectorSize, "the COW file");
          !s.ok()) {
        return s;
      }
      if (absl::Status s = to.Write(run.first * kSectorSize, buf.data(), len); !s.ok()) return s;
    }
    first += count;
  }
  return to.Flush();
}

}  // namespace

absl::StatusOr<VolumeInfo> Store::ResizeVolume(const std::string& name, uint64_t size_bytes) {
  if (absl::Status s = ValidateName("name", name); !s.ok()) return s;
  if (size_bytes == 0 || !IsSectorAligned(size_bytes)) {
    return absl::InvalidArgumentError(
        absl::StrFormat("size_bytes: %u is not a positive multiple of 512", size_bytes));
  }
  if (size_bytes > max_volume_size()) {
    return absl::InvalidArgumentError(absl::StrFormat(
        "size_bytes: %u is above the limit of %u%s", size_bytes, max_volume_size(), LimitReason()));
  }
  std::lock_guard<std::mutex> lock(mu_);
  auto it = volumes_.find(name);
  if (it == volumes_.end()) return absl::NotFoundError(absl::StrCat("volume ", name, " not found"));
  Entry& e = it->second;
  if (!e.handle) {
    return absl::FailedPreconditionError(absl::StrCat("volume ", name, " is not ready: ", e.error));
  }
  if (size_bytes == e.size_bytes) return InfoOf(name, e);
  if (size_bytes < e.size_bytes) {
    return absl::FailedPreconditionError(absl::StrFormat(
        "volume %s has %u bytes: volumes do not shrink", name, e.size_bytes));
  }
  if (!absl::StartsWith(e.backing_real, absl::StrCat(images_dir_, "/.blank/"))) {
    return absl::FailedPreconditionError(absl::StrCat(
        "volume ", name, " is over image ", ImageNameOf(e.backing),
        ": only blank volumes grow (a larger volume needs a larger image)"));
  }
  auto base = BlankBase(size_bytes);
  if (!base.ok()) return base.status();
  const uint64_t old_size = e.size_bytes;
  const std::string path = VolumePath(name);
  const std::string tmp = absl::StrCat(volumes_dir_, "/", kResizeTempPrefix, name, "-", RandomHexId());
  // A clean close keeps the epoch: nothing acknowledged is lost here.
  if (absl::Status c = e.handle->Close(); c.ok()) {
    epochs_.Close(name, e.handle->epoch());
  } else {
    Log(LogLevel::kWarning, "volume_resize_flush_failed",
        {{"volume", name}, {"error", std::string(c.message())}});
  }
  cow::OpenOptions open_options;
  open_options.writable = true;
  open_options.check_backing = [this](const std::string& b) { return ConfineBacking(b).status(); };
  absl::Status s;
  {
    cow::OpenOptions read_options;
    read_options.open_backing = false;
    auto from = cow::CowFile::Open(path, read_options);
    auto to = from.ok() ? cow::CowFile::Create(tmp, cow::CreateOptions{*base})
                        : absl::StatusOr<std::unique_ptr<cow::CowFile>>(from.status());
    s = to.ok() ? CopyAllocated(**from, **to) : to.status();
  }
  if (s.ok() && rename(tmp.c_str(), path.c_str()) != 0) s = ErrnoStatus(errno, "replace " + path);
  if (!s.ok()) unlink(tmp.c_str());
  FsyncDir(volumes_dir_).IgnoreError();
  // Opened again either way: resized, or as it was.
  auto file = cow::CowFile::Open(path, open_options);
  absl::Status served = file.ok() ? Serve(name, *std::move(file), e) : file.status();
  if (!served.ok()) {
    e.handle.reset();
    e.error = std::string(served.message());
    Log(LogLevel::kError, "volume_unavailable", {{"volume", name}, {"error", e.error}});
  }
  if (!s.ok()) {
    Log(LogLevel::kWarning, "volume_resize_failed",
        {{"volume", name}, {"size", std::to_string(size_bytes)}, {"error", std::string(s.message())}});
    return s;
  }
  if (!served.ok()) return served;
  Log(LogLevel::kInfo, "volume_resized",
      {{"volume", name}, {"old_size", std::to_string(old_size)}, {"size", std::to_string(e.size_bytes)}});
  return InfoOf(name, e);
}

absl::StatusOr<AllocationPage> Store::GetAllocation(const std::string& name, uint64_t offset,
                                                    uint64_t length, size_t max_runs,
                                                    bool zeros) {
  auto handle = FindVolume(name);
  if (!handle.ok()) return handle.status();
  const uint64_t size = (*handle)->size();
  // Length 0 asks for everything from `offset` to the end.
  if (length == 0 && offset < size) length = size - offset;
  if (length == 0 && IsSectorAligned(offset)) {
    return absl::OutOfRangeError(
        absl::StrCat("offset ", offset, ": at or beyond the volume size ", size));
  }
  if (absl::Status s = CheckBlockRange(offset, length, size, RangeRules{}); !s.ok()) return s;
  AllocationPage page;
  (*handle)->RunOnEngine([&](engine::Volume& v) {
    page.runs =
        cow::SplitRuns(v.file().bitmap(), offset / kSectorSize, length / kSectorSize, max_runs);
    if (zeros) page.extents = ExtentsOf(v, page.runs, max_runs);
  });
  const cow::SectorRun& last = page.runs.back();
  uint64_t covered = (last.first + last.count) * kSectorSize;
  if (zeros) covered = page.extents.back().offset + page.extents.back().length;
  if (covered < offset + length) page.next_offset = covered;
  return page;
}

absl::StatusOr<std::unique_ptr<ImageUpload>> Store::StartUpload(const std::string& name,
                                                               uint64_t declared_size) {
  if (absl::Status s = ValidateName("name", name); !s.ok()) return s;
  return ImageUpload::Start(images_dir_, name, max_volume_size(), declared_size);
}

absl::StatusOr<ImageInfo> Store::ImageInfoLocked(const std::string& name) {
  const std::string path = ImagePath(name);
  auto st = StatRegular(path, "image");
  if (!st.ok()) {
    if (st.status().code() == absl::StatusCode::kNotFound) {
      return absl::NotFoundError(absl::StrCat("image ", name, " not found"));
    }
    return st.status();
  }
  ImageInfo info{name, static_cast<uint64_t>(st->st_size), 0};
  std::error_code ec;
  const std::string real = fs::canonical(path, ec).string();
  for (const auto& [vname, e] : volumes_) {
    info.volume_count += e.backing == path || (!ec && e.backing_real == real);
  }
  return info;
}

absl::StatusOr<ImageInfo> Store::GetImage(const std::string& name) {
  if (absl::Status s = ValidateName("name", name); !s.ok()) return s;
  std::lock_guard<std::mutex> lock(mu_);
  return ImageInfoLocked(name);
}

std::vector<ImageInfo> Store::ListImages(const std::string& after, size_t limit) {
  std::lock_guard<std::mutex> lock(mu_);
  std::vector<std::string> names;
  std::error_code ec;
  for (const auto& entry : fs::directory_iterator(images_dir_, ec)) {
    const fs::path& p = entry.path();
    if (p.extension() != ".img" || !IsValidName(p.stem().string())) continue;
    if (p.stem().string() > after) names.push_back(p.stem().string());
  }
  std::sort(names.begin(), names.end());
  std::vector<ImageInfo> out;
  for (const std::string& n : names) {
    if (out.size() >= limit) break;
    auto info = ImageInfoLocked(n);
    if (info.ok()) out.push_back(*info);
  }
  return out;
}

absl::Status Store::DeleteImage(const std::string& name) {
  if (absl::Status s = ValidateName("name", name); !s.ok()) return s;
  std::lock_guard<std::mutex> lock(mu_);
  auto info = ImageInfoLocked(name);
  if (!info.ok()) return info.status();
  if (info->volume_count > 0) {
    std::string users;
    const std::string path = ImagePath(name);
    std::error_code ec;
    const std::string real = fs::canonical(path, ec).string();
    for (const auto& [vname, e] : volumes_) {
      if (e.backing == path || (!ec && e.backing_real == real)) {
        absl::StrAppend(&users, users.empty() ? "" : ", ", vname);
      }
    }
    return absl::FailedPreconditionError(
        absl::StrCat("image ", name, " is used by volume(s) ", users));
  }
  if (unlink(ImagePath(name).c_str()) != 0) return ErrnoStatus(errno, absl::StrCat("delete image ", name));
  // A snapshot's image: its record (shown or hidden) goes with it.
  unlink(SnapshotRecordPath(images_dir_, name).c_str());
  unlink(HiddenSnapshotRecordPath(images_dir_, name).c_str());
  FsyncDir(images_dir_).IgnoreError();
  Log(LogLevel::kInfo, "image_deleted", {{"image", name}});
  return absl::OkStatus();
}

}  // namespace cowblk::store
