// The state of one cowblk::ImageUpload: the gRPC call and the message being
// filled (data, then a count of zeros) until it is sent.

#ifndef COWBLK_CLIENT_SRC_IMAGE_UPLOAD_IMPL_H_
#define COWBLK_CLIENT_SRC_IMAGE_UPLOAD_IMPL_H_

#include <grpcpp/grpcpp.h>

#include <memory>
#include <string>

#include "cowblk/image_upload.h"
#include "cowblk/v1/volume.grpc.pb.h"

namespace cowblk {

namespace internal {
class ClientCore;
}

struct ImageUpload::Impl {
  // Starts the call; `declared` is the image's size (0: unknown).
  Impl(std::shared_ptr<internal::ClientCore> core, const std::string& name, uint64_t declared);
  // Sends `next` and clears it; the call's error once the server ended it.
  absl::Status Send();

  std::shared_ptr<internal::ClientCore> core;
  const std::string name;
  const uint64_t size;
  grpc::ClientContext ctx;
  v1::Image resp;
  std::unique_ptr<grpc::ClientWriter<v1::UploadImageRequest>> writer;
  v1::UploadImageRequest next;
  uint64_t sent = 0;   // data and zeros
  uint64_t zeros = 0;  // sent as counts
  absl::Status failed;
  bool done = false;  // the call is finished
};

}  // namespace cowblk

#endif  // COWBLK_CLIENT_SRC_IMAGE_UPLOAD_IMPL_H_
