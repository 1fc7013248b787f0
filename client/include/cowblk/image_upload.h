// cowblk::ImageUpload: an image sent to the server in order, a piece at a
// time: data, and runs of zeros sent as a count (no bytes on the network,
// holes in the server's image file). Client::StartImageUpload makes one;
// `cowblk image upload` feeds it a file's data ranges (SEEK_DATA/SEEK_HOLE)
// and turns zero blocks into Zero().
//
//   auto up = client->StartImageUpload("disk", size);
//   up->Write(buf, n); up->Zero(1 << 20); ...
//   auto image = up->Finish();  // published once complete
//
// An upload dropped or failed before Finish is cancelled: no image.
//
// Thread-safety: one caller at a time.

#ifndef COWBLK_CLIENT_INCLUDE_COWBLK_IMAGE_UPLOAD_H_
#define COWBLK_CLIENT_INCLUDE_COWBLK_IMAGE_UPLOAD_H_

#include <cstddef>
#include <cstdint>
#include <memory>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "cowblk/export.h"
#include "cowblk/types.h"

namespace cowblk {

class COWBLK_EXPORT ImageUpload {
 public:
  struct Impl;
  explicit ImageUpload(std::unique_ptr<Impl> impl);
  ~ImageUpload();  // cancels an upload not finished
  ImageUpload(const ImageUpload&) = delete;
  ImageUpload& operator=(const ImageUpload&) = delete;

  // The next `length` bytes of the image (sent in messages of 1 MiB).
  // After a failure (the server ended the call: its error) the upload is
  // over and every later call returns that error.
  absl::Status Write(const char* data, size_t length);
  // The next `length` bytes of the image are zeros.
  absl::Status Zero(uint64_t length);
  // Ends the upload and returns the published image. INVALID_ARGUMENT
  // (and no image) when the bytes sent do not add up to the size given to
  // StartImageUpload; FAILED_PRECONDITION when the server is older than
  // zero ranges (it published an image short of them: deleted again).
  absl::StatusOr<ImageInfo> Finish();

  uint64_t sent() const;  // bytes of the image so far, data and zeros

 private:
  std::unique_ptr<Impl> impl_;
};

}  // namespace cowblk

#endif  // COWBLK_CLIENT_INCLUDE_COWBLK_IMAGE_UPLOAD_H_
