// ImageWriter: a new raw image written chunk by chunk, in any order, as a
// sparse file: zero blocks of 4 KiB are left as holes. What a commit writes
// (CommitToImage, and the server's point-in-time commit, which copies the
// chunks in the order its snapshot hands them out).
//
// Thread-safety: none; one owner.

#ifndef COWBLK_SERVER_COW_IMAGE_WRITER_H_
#define COWBLK_SERVER_COW_IMAGE_WRITER_H_

#include <cstdint>
#include <memory>
#include <string>

#include "absl/status/statusor.h"

namespace cowblk::cow {

class ImageWriter {
  struct Passkey {
    explicit Passkey() = default;
  };

 public:
  // Creates `path` for an image of `size` bytes. Never overwrites:
  // AlreadyExists if it exists.
  static absl::StatusOr<std::unique_ptr<ImageWriter>> Create(const std::string& path,
                                                             uint64_t size);
  ImageWriter(Passkey, std::string path, int fd, uint64_t size)
      : path_(std::move(path)), fd_(fd), size_(size) {}
  ImageWriter(const ImageWriter&) = delete;
  ImageWriter& operator=(const ImageWriter&) = delete;
  // An image not finished is removed: a failed or cancelled commit leaves
  // nothing behind.
  ~ImageWriter();

  // Writes `len` bytes at `pos` (a multiple of 4096), clipped to the
  // image's size; blocks of zeros are skipped.
  absl::Status Write(uint64_t pos, const char* data, uint64_t len);
  // Sets the size, makes the file and its name durable (fsync of the file
  // and of its directory) and closes it; the image stays from then on. On
  // failure the file is removed.
  absl::Status Finish();

  uint64_t size() const { return size_; }
  uint64_t bytes_written() const { return bytes_written_; }  // non-zero bytes

 private:
  const std::string path_;
  int fd_;  // -1 once finished
  const uint64_t size_;
  uint64_t bytes_written_ = 0;
};

}  // namespace cowblk::cow

#endif  // COWBLK_SERVER_COW_IMAGE_WRITER_H_
