#include "server/store/epoch.h"

#include <fcntl.h>
#include <unistd.h>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "common/file_io.h"
#include "common/log.h"
#include "server/store/random_id.h"

namespace cowblk::store {
namespace {

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

struct EpochState {
  std::string epoch, boot, durability;
  bool open = false;
};

bool ReadEpochState(const std::string& path, EpochState* st) {
  const std::string line = ReadSmallFile(path);
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

}  // namespace

std::string EpochRecords::PathOf(const std::string& name) const {
  return absl::StrCat(volumes_dir_, "/", name, ".state");
}

absl::Status EpochRecords::Save(const std::string& name, const std::string& epoch, bool open) {
  EpochState st;
  st.epoch = epoch;
  st.open = open;
  st.boot = BootId();
  st.durability = engine::DurabilityName(durability_);
  return WriteEpochState(volumes_dir_, PathOf(name), st);
}

std::string EpochRecords::Open(const std::string& name) {
  EpochState st;
  std::string reason;
  if (!ReadEpochState(PathOf(name), &st)) {
    reason = "new";  // a new volume, or one from before epochs
  } else if (st.open && st.boot != BootId()) {
    reason = "not closed before a reboot";
  } else if (st.open && st.durability != "ordered" && st.durability != "unordered") {
    reason = absl::StrCat("not closed cleanly, ", st.durability, " durability");
  }
  if (!reason.empty()) {
    const std::string old = st.epoch;
    st.epoch = RandomHexId();
    if (!old.empty()) {
      changes_.fetch_add(1, std::memory_order_relaxed);
      Log(LogLevel::kWarning, "volume_epoch_changed",
          {{"volume", name}, {"from", old}, {"to", st.epoch}, {"reason", reason},
           {"effect", "acknowledged writes that no flush covered may be lost; "
                      "clients that had such writes fail their next flush DATA_LOSS"}});
    }
  }
  if (absl::Status s = Save(name, st.epoch, /*open=*/true); !s.ok()) {
    st.epoch = absl::StrCat("unrecorded-", RandomHexId());
    Log(LogLevel::kWarning, "volume_epoch_unrecorded",
        {{"volume", name}, {"error", std::string(s.message())}, {"epoch", st.epoch}});
  }
  return st.epoch;
}

void EpochRecords::Close(const std::string& name, const std::string& epoch) {
  if (absl::Status s = Save(name, epoch, /*open=*/false); !s.ok()) {
    // The record still says open: the next start renews the epoch, and a
    // client's next flush may fail needlessly. Never wrongly succeed.
    Log(LogLevel::kWarning, "volume_epoch_unsaved",
        {{"volume", name}, {"error", std::string(s.message())}});
  }
}

}  // namespace cowblk::store
