#include "cowblk/image_upload.h"

#include <algorithm>
#include <string>
#include <utility>

#include "absl/strings/str_cat.h"
#include "client/src/client_core.h"
#include "client/src/image_upload_impl.h"

namespace cowblk {

using internal::FromGrpc;

namespace {

constexpr size_t kMessage = 1 << 20;  // data per message (the server takes 4 MiB)

}  // namespace

ImageUpload::Impl::Impl(std::shared_ptr<internal::ClientCore> c, const std::string& image,
                        uint64_t declared)
    : core(std::move(c)), name(image), size(declared) {
  core->Prepare(&ctx, core->options().upload_deadline);
  writer = core->volumes()->UploadImage(&ctx, &resp);
  next.set_name(name);
  next.set_size_bytes(size);
}

ImageUpload::ImageUpload(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}

ImageUpload::~ImageUpload() {
  if (impl_->done) return;
  // Abandon the upload: the server drops a partial image.
  impl_->ctx.TryCancel();
  impl_->writer->Finish();
}

absl::Status ImageUpload::Impl::Send() {
  if (!failed.ok()) return failed;
  const bool ok = writer->Write(next);
  next.Clear();
  if (ok) return absl::OkStatus();
  // The server ended the call: Finish says why.
  done = true;
  failed = FromGrpc(writer->Finish());
  if (failed.ok()) failed = absl::InternalError("the server ended the upload early");
  return failed;
}

absl::Status ImageUpload::Write(const char* data, size_t length) {
  Impl& u = *impl_;
  while (length > 0) {
    if (u.next.zero_bytes() != 0 || u.next.data().size() == kMessage) {
      if (absl::Status s = u.Send(); !s.ok()) return s;
    }
    const size_t n = std::min(length, kMessage - u.next.data().size());
    u.next.mutable_data()->append(data, n);
    u.sent += n;
    data += n;
    length -= n;
  }
  return u.failed;
}

absl::Status ImageUpload::Zero(uint64_t length) {
  Impl& u = *impl_;
  // After this message's data: one message carries both.
  u.next.set_zero_bytes(u.next.zero_bytes() + length);
  u.sent += length;
  u.zeros += length;
  return u.failed;
}

uint64_t ImageUpload::sent() const { return impl_->sent; }

absl::StatusOr<ImageInfo> ImageUpload::Finish() {
  Impl& u = *impl_;
  if (!u.next.data().empty() || u.next.zero_bytes() != 0 || u.sent == 0) {
    if (absl::Status s = u.Send(); !s.ok()) return s;  // an empty image still needs its name
  }
  if (!u.failed.ok()) return u.failed;
  u.done = true;
  u.writer->WritesDone();
  if (grpc::Status s = u.writer->Finish(); !s.ok()) return FromGrpc(s);
  ImageInfo info{u.resp.name(), u.resp.size_bytes(), u.resp.volume_count()};
  if (u.zeros != 0 && info.size_bytes != u.sent) {
    // A server without zero_bytes ignored them and published a short image.
    grpc::ClientContext ctx;
    u.core->Prepare(&ctx);
    v1::DeleteImageRequest req;
    req.set_name(u.name);
    v1::DeleteImageResponse resp;
    const grpc::Status deleted = u.core->volumes()->DeleteImage(&ctx, req, &resp);
    return absl::FailedPreconditionError(absl::StrCat(
        "the server does not take sparse uploads (zero ranges): it stored ", info.size_bytes,
        " of ", u.sent, " bytes; image ", u.name,
        deleted.ok() ? " deleted again" : " left behind, delete it: " + deleted.error_message(),
        "; upgrade cowblkd or upload from stdin"));
  }
  return info;
}

}  // namespace cowblk
