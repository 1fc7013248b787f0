// An image being uploaded: written to a hidden temporary file in the images
// directory and published under its name only by Finish, with
// RenameNoReplace (file_io.h), which never replaces an existing image (a
// concurrent upload of the same name loses cleanly). The file is sparse:
// zero bytes and 4 KiB blocks of zeros in the data are holes.
//
// Thread-safety: one caller at a time.

#ifndef COWBLK_SERVER_STORE_IMAGE_UPLOAD_H_
#define COWBLK_SERVER_STORE_IMAGE_UPLOAD_H_

#include <cstdint>
#include <memory>
#include <string>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"

namespace cowblk::store {

struct ImageInfo {
  std::string name;
  uint64_t size_bytes = 0;
  uint32_t volume_count = 0;
};

class ImageUpload {
 public:
  // Starts the upload of image `name` (valid) into `images_dir`, at most
  // `max_size` bytes. AlreadyExists if the image exists. `declared_size`
  // (0: unknown) is what the client says it will send: ResourceExhausted at
  // once past `max_size`, and Finish refuses any other size.
  static absl::StatusOr<std::unique_ptr<ImageUpload>> Start(const std::string& images_dir,
                                                            const std::string& name,
                                                            uint64_t max_size,
                                                            uint64_t declared_size = 0);
  ~ImageUpload();  // removes the temporary file unless finished
  ImageUpload(const ImageUpload&) = delete;
  ImageUpload& operator=(const ImageUpload&) = delete;

  // Appends the next bytes; ResourceExhausted past the size limit.
  absl::Status Append(absl::string_view data);
  // Appends `count` zero bytes (a hole); ResourceExhausted past the limit.
  absl::Status AppendZeros(uint64_t count);
  // Syncs and publishes the image. InvalidArgument for an empty one or one
  // of another size than declared, AlreadyExists if another upload or
  // commit published the name first.
  absl::StatusOr<ImageInfo> Finish();

 private:
  ImageUpload() = default;
  // OK if `count` more bytes stay within the size limit.
  absl::Status CheckLimit(uint64_t count) const;

  std::string name_, tmp_path_, final_path_;
  int fd_ = -1;
  uint64_t size_ = 0;
  uint64_t max_size_ = 0;
  uint64_t declared_size_ = 0;
  uint64_t data_bytes_ = 0;  // written (not holes)
  bool finished_ = false;
};

}  // namespace cowblk::store

#endif  // COWBLK_SERVER_STORE_IMAGE_UPLOAD_H_
