#include "server/store/snapshot_record.h"

#include <fcntl.h>
#include <unistd.h>

#include <fstream>
#include <sstream>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "common/file_io.h"
#include "server/store/names.h"
#include "server/store/random_id.h"

namespace cowblk::store {

std::string SnapshotRecordPath(const std::string& images_dir, const std::string& name) {
  return absl::StrCat(images_dir, "/", name, kSnapshotRecordExt);
}

std::string HiddenSnapshotRecordPath(const std::string& images_dir, const std::string& name) {
  return absl::StrCat(images_dir, "/", name, kHiddenSnapshotRecordExt);
}

std::string FormatSnapshotRecord(const SnapshotRecord& record) {
  return absl::StrCat("cowblk-snapshot 1\nsource ", record.source, "\ncreated_unix_nanos ",
                      record.created_unix_nanos, "\n");
}

absl::StatusOr<SnapshotRecord> ReadSnapshotRecord(const std::string& path) {
  std::ifstream in(path);
  if (!in) return absl::NotFoundError(absl::StrCat("snapshot record ", path, " not readable"));
  std::string text(4096, '\0');
  in.read(text.data(), static_cast<std::streamsize>(text.size()));
  text.resize(static_cast<size_t>(in.gcount()));
  const std::vector<std::string> lines = absl::StrSplit(text, '\n', absl::SkipEmpty());
  SnapshotRecord r;
  bool magic = false, source = false, created = false;
  for (const std::string& line : lines) {
    const std::pair<std::string, std::string> kv = absl::StrSplit(line, absl::MaxSplits(' ', 1));
    if (kv.first == "cowblk-snapshot") {
      magic = kv.second == "1";
    } else if (kv.first == "source") {
      r.source = kv.second;
      source = IsValidName(r.source);
    } else if (kv.first == "created_unix_nanos") {
      created = absl::SimpleAtoi(kv.second, &r.created_unix_nanos);
    }
  }
  if (!magic || !source || !created) {
    return absl::InvalidArgumentError(absl::StrCat("snapshot record ", path, " is malformed"));
  }
  return r;
}

absl::Status WriteSnapshotRecord(const std::string& dir, const std::string& path,
                                 const std::string& content) {
  const std::string tmp = absl::StrCat(dir, "/.commit-record-", RandomHexId());
  const int fd = open(tmp.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0644);
  if (fd < 0) return ErrnoStatus(errno, absl::StrCat("create ", tmp));
  absl::Status s = PWriteFull(fd, content.data(), content.size(), 0, tmp);
  if (s.ok() && fsync(fd) != 0) s = ErrnoStatus(errno, absl::StrCat("fsync ", tmp));
  close(fd);
  // Replaces only a record left without its image (the image's name was
  // reserved and found free by the caller).
  if (s.ok() && rename(tmp.c_str(), path.c_str()) != 0) {
    s = ErrnoStatus(errno, absl::StrCat("publish ", path));
  }
  if (!s.ok()) {
    unlink(tmp.c_str());
    return s;
  }
  return FsyncDir(dir);
}

}  // namespace cowblk::store
