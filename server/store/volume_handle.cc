#include "server/store/volume_handle.h"

#include <fcntl.h>
#include <unistd.h>

#include <future>

#include "absl/strings/str_cat.h"
#include "common/file_io.h"

namespace cowblk::store {
namespace {

// New open file descriptions of the very files `v` has open, whatever their
// paths became (through /proc); the COW file with O_DIRECT when `direct`.
// Engine thread.
absl::StatusOr<std::unique_ptr<VolumeFiles>> ReopenFiles(engine::Volume& v, bool writable,
                                                         bool direct = false) {
  const int cow = open(absl::StrCat("/proc/self/fd/", v.cow_fd()).c_str(),
                       (writable ? O_RDWR : O_RDONLY) | (direct ? O_DIRECT : 0) | O_CLOEXEC);
  if (cow < 0) return ErrnoStatus(errno, absl::StrCat("reopen ", v.file().path()));
  const int backing =
      open(absl::StrCat("/proc/self/fd/", v.backing_fd()).c_str(), O_RDONLY | O_CLOEXEC);
  if (backing < 0) {
    const int err = errno;
    close(cow);
    return ErrnoStatus(err, absl::StrCat("reopen the backing file of ", v.file().path()));
  }
  return std::make_unique<VolumeFiles>(cow, backing);
}

}  // namespace

VolumeHandle::VolumeHandle(std::string name, engine::Engine* engine, engine::Volume* volume,
                           std::string epoch)
    : name_(std::move(name)),
      engine_(engine),
      volume_(volume),
      size_(volume->size()),
      data_offset_(volume->file().geometry().data_offset),
      write_split_(volume->options().write_split_bytes),
      epoch_(std::move(epoch)) {}

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
  bool inline_write = write != nullptr && volume_->Validate(*req).ok() && !volume_->refuses_writes();
  if (inline_write) {
    inline_writers_.fetch_add(1);
    if (snapshot_open_.load()) {
      LeaveInlineWrite();
      inline_write = false;
    }
  }
  if (inline_write) {
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
    engine_->Submit(volume_, req, batch);
    LeaveInlineWrite();  // only once submitted: ahead of a snapshot's moment
    return true;
  }
  engine_->Submit(volume_, req, batch);
  return true;
}

void VolumeHandle::LeaveInlineWrite() {
  if (inline_writers_.fetch_sub(1) == 1 && snapshot_open_.load()) inline_writers_.notify_all();
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
    result = ReopenFiles(v, writable);
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

absl::StatusOr<VolumeHandle::SnapshotSource> VolumeHandle::BeginSnapshot() {
  if (snapshot_open_.exchange(true)) {
    return absl::FailedPreconditionError(
        absl::StrCat("volume ", name_, ": another commit of it is running"));
  }
  for (int n = inline_writers_.load(); n != 0; n = inline_writers_.load()) {
    inline_writers_.wait(n);
  }
  std::shared_lock<std::shared_mutex> lock(mu_);
  if (closed_) {
    snapshot_open_ = false;
    return absl::UnavailableError(absl::StrCat("volume ", name_, " is closed"));
  }
  // Behind every request submitted so far, inline writes included: the
  // moment comes after them (Engine::PostAfterSubmitted).
  std::promise<absl::Status> taken;
  absl::StatusOr<SnapshotSource> source;
  engine_->PostAfterSubmitted([&] {
    // A volume written with O_DIRECT is read so too: a page-cache read
    // racing an O_DIRECT write of a neighbouring sector (one that writes
    // may change) could leave a stale page for a later snapshot to read.
    auto files = ReopenFiles(*volume_, /*writable=*/false,
                             volume_->options().cache == engine::CacheMode::kNone);
    if (!files.ok()) {
      source = files.status();
      taken.set_value(files.status());
      return;
    }
    source = SnapshotSource{*std::move(files), data_offset_, volume_->file().header().size};
    absl::Status s = volume_->BeginSnapshot([&taken](absl::Status s) { taken.set_value(s); });
    if (!s.ok()) taken.set_value(s);
  });
  absl::Status s = taken.get_future().get();
  if (s.ok()) return source;
  snapshot_open_ = false;
  return s;
}

absl::StatusOr<bool> VolumeHandle::NextSnapshotChunk(const uint64_t* copied,
                                                     engine::SnapshotChunk* out) {
  std::shared_lock<std::shared_mutex> lock(mu_);
  if (closed_) return absl::UnavailableError(absl::StrCat("volume ", name_, " is closed"));
  absl::StatusOr<bool> more;
  RunOnEngine([&](engine::Volume& v) { more = v.NextSnapshotChunk(copied, out); });
  return more;
}

engine::SnapshotStats VolumeHandle::EndSnapshot() {
  engine::SnapshotStats stats;
  {
    std::shared_lock<std::shared_mutex> lock(mu_);
    // A closed volume ended its snapshot itself (Volume::BeginClose).
    if (!closed_) RunOnEngine([&](engine::Volume& v) { stats = v.EndSnapshot(); });
  }
  snapshot_open_ = false;
  return stats;
}

}  // namespace cowblk::store
