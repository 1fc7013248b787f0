#include "server/store/file_size_limit.h"

#include <fcntl.h>
#include <unistd.h>

#include <algorithm>

#include "absl/strings/str_cat.h"
#include "common/file_io.h"
#include "common/log.h"
#include "common/sector.h"
#include "server/cow/cow_header.h"
#include "server/store/random_id.h"

namespace cowblk::store {
namespace {

constexpr uint64_t RoundDownToSector(uint64_t bytes) { return bytes & ~(kSectorSize - 1); }

}  // namespace

absl::StatusOr<uint64_t> ProbeMaxFileSize(const std::string& dir) {
  const std::string path = absl::StrCat(dir, "/", kProbePrefix, RandomHexId());
  const int fd = open(path.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
  if (fd < 0) return ErrnoStatus(errno, absl::StrCat("create ", path));
  unlink(path.c_str());  // the descriptor is enough
  // Invariant: `good` can be set, `bad` cannot (off_t ends below 2^63).
  uint64_t good = 0;
  uint64_t bad = uint64_t{1} << 63;
  while (bad - good > 1) {
    const uint64_t mid = good + (bad - good) / 2;
    (ftruncate(fd, static_cast<off_t>(mid)) == 0 ? good : bad) = mid;
  }
  close(fd);
  return good;
}

uint64_t MaxVolumeSizeForFile(uint64_t max_file_size) {
  // The data area starts after the header and bitmap, which grow with the
  // size: those of a volume as large as the file bound those of any that fits.
  cow::Header h;
  h.backing_file = "/";
  h.alignment = cow::kDefaultAlignment;
  h.size = RoundDownToSector(std::min(max_file_size, cow::kMaxDeviceSize));
  auto geometry = cow::ComputeGeometry(h);
  if (!geometry.ok() || geometry->data_offset >= max_file_size) return 0;
  return RoundDownToSector(max_file_size - geometry->data_offset);
}

uint64_t MaxVolumeSizeIn(const std::vector<std::string>& dirs) {
  uint64_t max = UINT64_MAX;
  for (const std::string& dir : dirs) {
    auto max_file = ProbeMaxFileSize(dir);
    if (!max_file.ok()) {
      Log(LogLevel::kWarning, "volume_size_unprobed",
          {{"dir", dir}, {"error", std::string(max_file.status().message())}});
      continue;
    }
    max = std::min(max, MaxVolumeSizeForFile(*max_file));
  }
  return max;
}

}  // namespace cowblk::store
