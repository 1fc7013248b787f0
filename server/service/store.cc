#include "server/service/store.h"

#include <dirent.h>
#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <filesystem>
#include <future>
#include <random>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/strings/str_split.h"
#include "common/file_io.h"
#include "common/log.h"
#include "common/sector.h"
#include "server/cow/cow_commit.h"

namespace cowblk::service {
namespace {

namespace fs = std::filesystem;

constexpr size_t kMaxNameLen = 63;

// The first bytes (at most 511) of a small file; empty if it cannot be read.
std::string ReadSmallFile(const char* path) {
  std::string s;
  int fd = open(path, O_RDONLY | O_CLOEXEC);
  if (fd < 0) return s;
  char buf[512];
  ssize_t n = read(fd, buf, sizeof buf - 1);
  close(fd);
  if (n > 0) s.assign(buf, static_cast<size_t>(n));
  return s;
}

// The kernel's boot id: a reboot (or power loss) since a volume was last
// open means the page cache it wrote into is gone.
std::string BootId() {
  static const std::string id = [] {
    std::string s = ReadSmallFile("/proc/sys/kernel/random/boot_id");
    while (!s.empty() && (s.back() == '\n' || s.back() == ' ')) s.pop_back();
    return s.empty() ? std::string("unknown") : s;
  }();
  return id;
}

// <volumes>/<name>.state, one line: "epoch=HEX open=0|1 boot=ID durability=MODE".
struct EpochState {
  std::string epoch, boot, durability;
  bool open = false;
};

bool ReadEpochState(const std::string& path, EpochState* st) {
  const std::string line = ReadSmallFile(path.c_str());
  for (absl::string_view field : absl::StrSplit(line, absl::ByAnyChar(" \n"), absl::SkipEmpty())) {
    const size_t eq = field.find('=');
    if (eq == absl::string_view::npos) continue;
    const absl::string_view key = field.substr(0, eq);
    const std::string value(field.substr(eq + 1));
    if (key == "epoch") st->epoch = value;
    if (key == "open") st->open = value != "0";
    if (key == "boot") st->boot = value;
    if (key == "durability") st->durability = value;
  }
  return !st->epoch.empty();
}

absl::Status FsyncDir(const std::string& dir);

// Writes the state durably as one 256-byte record at offset 0, in place:
// within one sector (the disk writes it whole), and once the file exists an
// overwrite needs no new blocks, so a full file system cannot refuse it.
absl::Status WriteEpochState(const std::string& dir, const std::string& path,
                             const EpochState& st) {
  std::string record = absl::StrCat("epoch=", st.epoch, " open=", st.open ? 1 : 0,
                                    " boot=", st.boot, " durability=", st.durability);
  constexpr size_t kRecord = 256;
  if (record.size() >= kRecord) return absl::InternalError("epoch state too long");
  record.resize(kRecord - 1, ' ');
  record.push_back('\n');
  const bool existed = access(path.c_str(), F_OK) == 0;
  int fd = open(path.c_str(), O_WRONLY | O_CREAT | O_CLOEXEC, 0644);
  if (fd < 0) return ErrnoStatus(errno, absl::StrCat("open ", path));
  absl::Status s = PWriteFull(fd, record.data(), record.size(), 0, path);
  if (s.ok() && fdatasync(fd) != 0) s = ErrnoStatus(errno, absl::StrCat("fdatasync ", path));
  close(fd);
  if (s.ok() && !existed) s = FsyncDir(dir);
  return s;
}

absl::Status FsyncDir(const std::string& dir) {
  int fd = open(dir.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (fd < 0) return ErrnoStatus(errno, absl::StrCat("open ", dir));
  int rc = fsync(fd);
  int err = errno;
  close(fd);
  return rc == 0 ? absl::OkStatus() : ErrnoStatus(err, absl::StrCat("fsync ", dir));
}

std::string RandomSuffix() {
  static thread_local std::mt19937_64 rng(std::random_device{}());
  return absl::StrFormat("%016x", rng());
}

// Regular file (not a symlink) at `path`, or an error naming it.
absl::StatusOr<struct stat> StatRegular(const std::string& path, absl::string_view what) {
  struct stat st;
  if (lstat(path.c_str(), &st) != 0) return ErrnoStatus(errno, absl::StrCat(what, " ", path));
  if (!S_ISREG(st.st_mode)) {
    return absl::FailedPreconditionError(
        absl::StrCat(what, " ", path, " is not a regular file (symlinks are refused)"));
  }
  return st;
}

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

// ---- VolumeHandle --------------------------------------------------------

bool VolumeHandle::Submit(engine::Request* req, engine::SubmitBatch* batch) {
  std::shared_lock<std::shared_mutex> lock(mu_);
  if (closed_) return false;
  engine_->Submit(volume_, req, batch);
  return true;
}

absl::Status VolumeHandle::SubmitAndWait(engine::OpType op, uint64_t offset, uint64_t length,
                                         char* data) {
  std::promise<absl::Status> result;
  engine::Request req = engine::Request::Of(op, offset, length, data);
  req.done = [&result](absl::Status s) { result.set_value(std::move(s)); };
  if (!Submit(&req)) return absl::UnavailableError(absl::StrCat("volume ", name_, " is closed"));
  return result.get_future().get();
}

absl::Status VolumeHandle::Close() {
  // Set before the lock is taken: a writer waiting for it would starve
  // while inline writes from several connections keep the shared lock held;
  // callers that see closed_ let go at once.
  if (closed_.exchange(true)) return absl::OkStatus();
  { std::unique_lock<std::shared_mutex> lock(mu_); }  // submissions in progress end
  std::promise<absl::Status> flushed;
  engine::Request flush;
  flush.kind = engine::Flush{};
  flush.done = [&flushed](absl::Status s) { flushed.set_value(std::move(s)); };
  engine_->Submit(volume_, &flush);
  absl::Status s = flushed.get_future().get();
  engine_->CloseVolume(volume_);
  return s;
}

bool VolumeHandle::WriteAndSubmit(const VolumeFiles& files, engine::Request* req,
                                  engine::SubmitBatch* batch) {
  std::shared_lock<std::shared_mutex> lock(mu_);
  if (closed_) return false;
  // A request the engine refuses goes as a plain write, unwritten; so does
  // a write to a volume whose fdatasync failed (deferred durability),
  // whose sectors must not change any more.
  const auto* write = std::get_if<engine::Write>(&req->kind);
  if (write != nullptr && volume_->Validate(*req).ok() && !volume_->refuses_writes()) {
    const char* data = write->from;
    int write_errno = 0;
    // Pieces end where the engine's would.
    const uint64_t start = data_offset_ + req->offset;
    const uint64_t stop = start + req->length;
    for (uint64_t at = start; at < stop;) {
      const uint64_t piece_end = engine::WritePieceEnd(at, stop, write_split_);
      const ssize_t n = pwrite(files.cow_fd(), data + (at - start), piece_end - at,
                               static_cast<off_t>(at));
      if (n < 0 && errno == EINTR) continue;
      if (n <= 0) {  // no progress: cannot continue
        write_errno = n < 0 ? errno : ENOSPC;
        break;
      }
      at += static_cast<uint64_t>(n);
    }
    req->kind = engine::WrittenWrite{write_errno, write->fua};
  }
  engine_->Submit(volume_, req, batch);
  return true;
}

VolumeFiles::~VolumeFiles() {
  close(cow_);
  close(backing_);
}

absl::StatusOr<std::unique_ptr<VolumeFiles>> VolumeHandle::OpenFiles(bool writable) {
  // Holding the lock keeps the volume (and so its descriptors) open.
  std::shared_lock<std::shared_mutex> lock(mu_);
  if (closed_) return absl::UnavailableError(absl::StrCat("volume ", name_, " is closed"));
  absl::StatusOr<std::unique_ptr<VolumeFiles>> result;
  RunOnEngine([&](engine::Volume& v) {
    if (v.options().cache != engine::CacheMode::kWriteback) {
      result = absl::FailedPreconditionError("the volume's files need --cache writeback");
      return;
    }
    // Through /proc: the very files the volume has open, whatever their
    // paths became.
    const int cow = open(absl::StrCat("/proc/self/fd/", v.cow_fd()).c_str(),
                         (writable ? O_RDWR : O_RDONLY) | O_CLOEXEC);
    if (cow < 0) {
      result = ErrnoStatus(errno, absl::StrCat("reopen ", v.file().path()));
      return;
    }
    const int backing =
        open(absl::StrCat("/proc/self/fd/", v.backing_fd()).c_str(), O_RDONLY | O_CLOEXEC);
    if (backing < 0) {
      result = ErrnoStatus(errno, absl::StrCat("reopen the backing file of ", v.file().path()));
      close(cow);
      return;
    }
    result = std::make_unique<VolumeFiles>(cow, backing);
  });
  return result;
}

void VolumeHandle::RunOnEngine(const std::function<void(engine::Volume&)>& fn) {
  std::promise<void> done;
  engine_->Post([&] {
    fn(*volume_);
    done.set_value();
  });
  done.get_future().wait();
}

// ---- ImageUpload ---------------------------------------------------------

ImageUpload::~ImageUpload() {
  if (fd_ >= 0) close(fd_);
  if (!finished_) unlink(tmp_path_.c_str());
}

absl::Status ImageUpload::Append(absl::string_view data) {
  if (size_ + data.size() > max_size_) {
    return absl::ResourceExhaustedError(
        absl::StrFormat("image %s: larger than the limit of %u bytes", name_, max_size_));
  }
  absl::Status s = PWriteFull(fd_, data.data(), data.size(), size_, tmp_path_);
  if (s.ok()) size_ += data.size();
  return s;
}

absl::StatusOr<ImageInfo> ImageUpload::Finish() {
  if (size_ == 0) return absl::InvalidArgumentError(absl::StrCat("image ", name_, ": no data"));
  if (fsync(fd_) != 0) return ErrnoStatus(errno, absl::StrCat("fsync ", tmp_path_));
  // link(2) never replaces an existing name: a concurrent upload of the same
  // name loses cleanly.
  if (link(tmp_path_.c_str(), final_path_.c_str()) != 0) {
    if (errno == EEXIST) return absl::AlreadyExistsError(absl::StrCat("image ", name_, " exists"));
    return ErrnoStatus(errno, absl::StrCat("publish ", final_path_));
  }
  unlink(tmp_path_.c_str());
  finished_ = true;
  absl::Status s = FsyncDir(fs::path(final_path_).parent_path().string());
  if (!s.ok()) return s;
  Log(LogLevel::kInfo, "image_uploaded", {{"image", name_}, {"bytes", std::to_string(size_)}});
  return ImageInfo{name_, size_, 0};
}

// ---- Store ---------------------------------------------------------------

absl::StatusOr<std::unique_ptr<Store>> Store::Open(const StoreOptions& options,
                                                   engine::EngineGroup* engines) {
  std::unique_ptr<Store> store(new Store(options, engines));
  std::error_code ec;
  const fs::path root = fs::absolute(options.data_dir, ec).lexically_normal();
  store->images_dir_ = (root / "images").string();
  store->volumes_dir_ = (root / "volumes").string();
  for (const std::string& dir : {store->images_dir_ + "/.blank", store->volumes_dir_}) {
    fs::create_directories(dir, ec);
    if (ec) return absl::InternalError(absl::StrCat("create ", dir, ": ", ec.message()));
  }
  // Temporaries of uploads, commits and blank bases cut short by a crash.
  for (const std::string& dir : {store->images_dir_, store->images_dir_ + "/.blank"}) {
    for (const auto& entry : fs::directory_iterator(dir, ec)) {
      const std::string file = entry.path().filename().string();
      if (file.rfind(".upload-", 0) == 0 || file.rfind(".commit-", 0) == 0 ||
          file.find(".tmp-") != std::string::npos) {
        fs::remove(entry.path(), ec);
        Log(LogLevel::kInfo, "temporary_removed", {{"file", entry.path().string()}});
      }
    }
  }
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
  return store;
}

Store::~Store() { CloseAll().IgnoreError(); }

absl::Status Store::CloseAll() {
  std::lock_guard<std::mutex> lock(mu_);
  absl::Status first;
  for (auto& [name, e] : volumes_) {
    if (!e.handle) continue;
    absl::Status s = e.handle->Close();
    if (s.ok()) CloseEpoch(name, e.handle->epoch());  // nothing acknowledged was lost
    Log(s.ok() ? LogLevel::kInfo : LogLevel::kError, "volume_closed",
        {{"volume", name}, {"status", s.ok() ? "ok" : std::string(s.message())}});
    if (first.ok()) first = s;
    e.handle.reset();
    e.error = "closed";
  }
  return first;
}

std::string Store::ImagePath(const std::string& name) const {
  return absl::StrCat(images_dir_, "/", name, ".img");
}

std::string Store::VolumePath(const std::string& name) const {
  return absl::StrCat(volumes_dir_, "/", name, ".cow");
}

std::string Store::StatePath(const std::string& name) const {
  return absl::StrCat(volumes_dir_, "/", name, ".state");
}

absl::Status Store::SaveEpoch(const std::string& name, const std::string& epoch, bool open) {
  EpochState st;
  st.epoch = epoch;
  st.open = open;
  st.boot = BootId();
  st.durability = engine::DurabilityName(options_.volume_options.durability);
  return WriteEpochState(volumes_dir_, StatePath(name), st);
}

std::string Store::OpenEpoch(const std::string& name) {
  EpochState st;
  std::string reason;
  if (!ReadEpochState(StatePath(name), &st)) {
    reason = "new";  // a new volume, or one from before epochs
  } else if (st.open && st.boot != BootId()) {
    reason = "not closed before a reboot";
  } else if (st.open && st.durability != "ordered" && st.durability != "unordered") {
    reason = absl::StrCat("not closed cleanly, ", st.durability, " durability");
  }
  if (!reason.empty()) {
    const std::string old = st.epoch;
    st.epoch = RandomSuffix();
    if (!old.empty()) {
      Log(LogLevel::kWarning, "volume_epoch_changed",
          {{"volume", name}, {"from", old}, {"to", st.epoch}, {"reason", reason},
           {"effect", "acknowledged writes that no flush covered may be lost; "
                      "clients that had such writes fail their next flush DATA_LOSS"}});
    }
  }
  if (absl::Status s = SaveEpoch(name, st.epoch, /*open=*/true); !s.ok()) {
    // Without the record a crash cannot be told from a clean stop: serve
    // with an epoch of this process alone, so that any restart counts as a
    // possible loss (a flush may fail needlessly, never succeed wrongly).
    st.epoch = absl::StrCat("unrecorded-", RandomSuffix());
    Log(LogLevel::kWarning, "volume_epoch_unrecorded",
        {{"volume", name}, {"error", std::string(s.message())}, {"epoch", st.epoch}});
  }
  return st.epoch;
}

void Store::CloseEpoch(const std::string& name, const std::string& epoch) {
  if (absl::Status s = SaveEpoch(name, epoch, /*open=*/false); !s.ok()) {
    // The record still says open: the next start renews the epoch, and a
    // client's next flush may fail needlessly. Never wrongly succeed.
    Log(LogLevel::kWarning, "volume_epoch_unsaved",
        {{"volume", name}, {"error", std::string(s.message())}});
  }
}

std::string Store::ImageNameOf(const std::string& backing) const {
  const fs::path p(backing);
  if (p.parent_path() == fs::path(images_dir_) && p.extension() == ".img") return p.stem().string();
  return "";
}

void Store::OpenExisting(const std::string& name) {
  Entry& e = volumes_[name];
  const std::string path = VolumePath(name);
  auto st = StatRegular(path, "volume");
  absl::StatusOr<std::unique_ptr<cow::CowFile>> file =
      st.ok() ? cow::CowFile::Open(path, cow::OpenOptions{.writable = true}) : st.status();
  absl::Status s = file.ok() ? Serve(name, *std::move(file), e) : file.status();
  if (!s.ok()) {
    e.error = std::string(s.message());
    Log(LogLevel::kError, "volume_unavailable", {{"volume", name}, {"error", e.error}});
    return;
  }
  Log(LogLevel::kInfo, "volume_opened",
      {{"volume", name}, {"size", std::to_string(e.size_bytes)}, {"backing", e.backing}});
}

absl::Status Store::Serve(const std::string& name, std::unique_ptr<cow::CowFile> file, Entry& e) {
  e.backing = file->header().backing_file;
  e.size_bytes = file->geometry().device_size;
  // Every file we open lives beneath the data directory.
  std::error_code ec;
  const fs::path real_backing = fs::canonical(e.backing, ec);
  const fs::path real_images = fs::canonical(images_dir_, ec);
  e.backing_real = real_backing.string();
  const std::string prefix = real_images.string() + "/";
  if (ec || real_backing.string().compare(0, prefix.size(), prefix) != 0) {
    return absl::FailedPreconditionError(
        absl::StrCat("backing file ", e.backing, " is outside ", images_dir_));
  }
  const std::string epoch = OpenEpoch(name);
  engine::Engine* engine = engines_->Pick();
  auto volume = engine->OpenVolume(std::move(file), options_.volume_options);
  if (!volume.ok()) return volume.status();
  e.handle = std::make_shared<VolumeHandle>(name, engine, *volume, epoch);
  e.error.clear();
  return absl::OkStatus();
}

absl::StatusOr<std::string> Store::BlankBase(uint64_t size_bytes) {
  const std::string path = absl::StrCat(images_dir_, "/.blank/", size_bytes, ".img");
  if (access(path.c_str(), F_OK) == 0) return path;
  const std::string tmp = absl::StrCat(path, ".tmp-", RandomSuffix());
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
  if (e.handle) info.allocated_bytes = e.handle->stats().allocated_sectors.value() * kSectorSize;
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
    if (size_bytes > options_.max_volume_size) {
      return absl::InvalidArgumentError(absl::StrFormat(
          "size_bytes: %u is above the limit of %u", size_bytes, options_.max_volume_size));
    }
  }
  std::lock_guard<std::mutex> lock(mu_);
  if (volumes_.count(name) != 0) return absl::AlreadyExistsError(absl::StrCat("volume ", name, " exists"));
  if (!image.empty()) {
    backing = ImagePath(image);
    auto st = StatRegular(backing, "image");
    if (!st.ok()) {
      if (st.status().code() == absl::StatusCode::kNotFound) {
        return absl::NotFoundError(absl::StrCat("image ", image, " not found"));
      }
      return st.status();
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

absl::Status Store::DeleteVolume(const std::string& name) {
  if (absl::Status s = ValidateName("name", name); !s.ok()) return s;
  std::lock_guard<std::mutex> lock(mu_);
  auto it = volumes_.find(name);
  if (it == volumes_.end()) return absl::NotFoundError(absl::StrCat("volume ", name, " not found"));
  if (it->second.handle) it->second.handle->Close().IgnoreError();  // deleted anyway
  const std::string path = VolumePath(name);
  if (unlink(path.c_str()) != 0 && errno != ENOENT) {
    return ErrnoStatus(errno, absl::StrCat("delete ", path));
  }
  unlink(StatePath(name).c_str());
  volumes_.erase(it);
  FsyncDir(volumes_dir_).IgnoreError();
  Log(LogLevel::kInfo, "volume_deleted", {{"volume", name}});
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

absl::StatusOr<ImageInfo> Store::CommitVolume(const std::string& name, const std::string& image) {
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
  absl::Status s = (*handle)->SubmitAndWait(engine::OpType::kFlush, 0, 0, nullptr);
  // Our own write lock is held by the engine's descriptor: read unlocked.
  absl::StatusOr<std::unique_ptr<cow::CowFile>> file =
      s.ok() ? cow::CowFile::Open(VolumePath(name), cow::OpenOptions{.lock = false}) : s;
  if (!file.ok()) {
    release();
    return file.status();
  }
  const std::string tmp = absl::StrCat(images_dir_, "/.commit-", image, "-", RandomSuffix());
  auto stats = cow::CommitToImage(**file, tmp);
  if (!stats.ok()) {
    release();
    return stats.status();
  }
  const int rc = link(tmp.c_str(), final_path.c_str());
  const int err = errno;
  unlink(tmp.c_str());
  release();
  if (rc != 0) {
    if (err == EEXIST) return absl::AlreadyExistsError(absl::StrCat("image ", image, " exists"));
    return ErrnoStatus(err, absl::StrCat("publish ", final_path));
  }
  FsyncDir(images_dir_).IgnoreError();
  Log(LogLevel::kInfo, "volume_committed",
      {{"volume", name}, {"image", image}, {"bytes_from_cow", std::to_string(stats->bytes_from_cow)}});
  return ImageInfo{image, stats->image_size, 0};
}

absl::StatusOr<std::vector<cow::SectorRun>> Store::GetAllocation(const std::string& name,
                                                                 uint64_t offset, uint64_t length) {
  auto handle = FindVolume(name);
  if (!handle.ok()) return handle.status();
  const uint64_t size = (*handle)->size();
  if (!IsSectorAligned(offset)) {
    return absl::InvalidArgumentError(absl::StrFormat("offset: %u is not a multiple of 512", offset));
  }
  if (!IsSectorAligned(length)) {
    return absl::InvalidArgumentError(absl::StrFormat("length: %u is not a multiple of 512", length));
  }
  if (offset > size || (length != 0 && length > size - offset) || (length == 0 && offset == size)) {
    return absl::OutOfRangeError(absl::StrFormat(
        "offset %u length %u: beyond the volume size %u", offset, length, size));
  }
  if (length == 0) length = size - offset;
  std::vector<cow::SectorRun> runs;
  (*handle)->RunOnEngine([&](engine::Volume& v) {
    runs = cow::SplitRuns(v.file().bitmap(), offset / kSectorSize, length / kSectorSize);
  });
  return runs;
}

absl::StatusOr<std::unique_ptr<ImageUpload>> Store::StartUpload(const std::string& name) {
  if (absl::Status s = ValidateName("name", name); !s.ok()) return s;
  std::unique_ptr<ImageUpload> up(new ImageUpload);
  up->name_ = name;
  up->final_path_ = ImagePath(name);
  up->max_size_ = options_.max_volume_size;
  if (access(up->final_path_.c_str(), F_OK) == 0) {
    return absl::AlreadyExistsError(absl::StrCat("image ", name, " exists"));
  }
  up->tmp_path_ = absl::StrCat(images_dir_, "/.upload-", name, "-", RandomSuffix());
  up->fd_ = open(up->tmp_path_.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0444);
  if (up->fd_ < 0) return ErrnoStatus(errno, absl::StrCat("create ", up->tmp_path_));
  return up;
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
  FsyncDir(images_dir_).IgnoreError();
  Log(LogLevel::kInfo, "image_deleted", {{"image", name}});
  return absl::OkStatus();
}

}  // namespace cowblk::service
