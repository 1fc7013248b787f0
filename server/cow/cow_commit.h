// Merging a COW volume into a new raw image: what `uml_moo COW NEW_IMAGE`
// does, byte for byte for images whose size is a multiple of 512.

#ifndef COWBLK_SERVER_COW_COW_COMMIT_H_
#define COWBLK_SERVER_COW_COW_COMMIT_H_

#include <cstdint>
#include <string>

#include "absl/status/statusor.h"
#include "server/cow/cow_file.h"

namespace cowblk::cow {

struct CommitStats {
  uint64_t image_size = 0;      // bytes of the new image (the header's size)
  uint64_t bytes_from_cow = 0;  // allocated sectors copied from the COW file
  uint64_t bytes_written = 0;   // non-zero bytes written (the rest are holes)
};

// Writes the merged view of `cow` to a new sparse file `image_path`: sectors
// with the bit set from the COW file, the rest from the backing file; zero
// blocks are left as holes. The image is exactly header().size bytes (uml_moo
// drops a partial last sector; we keep it). Never overwrites (AlreadyExists);
// removes the partial image on failure; fsyncs the image before returning.
// (The server commits a live volume through server/store's CopySnapshot,
// with the same ImageWriter, image_writer.h.)
// REQUIRES: `cow` was opened with its backing file.
absl::StatusOr<CommitStats> CommitToImage(const CowFile& cow,
                                          const std::string& image_path);

}  // namespace cowblk::cow

#endif  // COWBLK_SERVER_COW_COW_COMMIT_H_
