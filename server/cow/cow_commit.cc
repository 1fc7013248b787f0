#include "server/cow/cow_commit.h"

#include <algorithm>
#include <vector>

#include "absl/strings/str_cat.h"
#include "common/sector.h"
#include "server/cow/image_writer.h"

namespace cowblk::cow {
namespace {

constexpr uint64_t kChunk = 1 << 20;

}  // namespace

absl::StatusOr<CommitStats> CommitToImage(const CowFile& cow,
                                          const std::string& image_path) {
  if (cow.backing_fd() < 0) {
    return absl::FailedPreconditionError(
        absl::StrCat(cow.path(), ": commit needs the backing file"));
  }
  auto image = ImageWriter::Create(image_path, cow.header().size);
  if (!image.ok()) return image.status();
  CommitStats stats;
  stats.image_size = cow.header().size;
  stats.bytes_from_cow = cow.bitmap().CountSet() * kSectorSize;
  const uint64_t device_size = cow.geometry().device_size;
  std::vector<char> buf(kChunk);
  for (uint64_t pos = 0; pos < device_size; pos += kChunk) {
    const uint64_t len = std::min(kChunk, device_size - pos);
    if (absl::Status s = cow.Read(pos, buf.data(), len); !s.ok()) return s;
    if (absl::Status s = (*image)->Write(pos, buf.data(), len); !s.ok()) return s;
  }
  if (absl::Status s = (*image)->Finish(); !s.ok()) return s;
  stats.bytes_written = (*image)->bytes_written();
  return stats;
}

}  // namespace cowblk::cow
