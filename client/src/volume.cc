#include "cowblk/volume.h"

#include <utility>

#include "client/src/client_core.h"
#include "client/src/volume_core.h"
#include "common/block_range.h"

namespace cowblk {
namespace {

using internal::Chunk;
using internal::IoCall;
using internal::OpKind;

// A call of one or more chunks; a read or write is cut at `chunk_size`.
std::unique_ptr<IoCall> MakeCall(OpKind kind, uint64_t offset, uint64_t length, char* dest,
                                 const char* src, const IoOptions& options,
                                 std::chrono::milliseconds default_deadline, uint64_t chunk_size,
                                 IoCallback done) {
  auto call = std::make_unique<IoCall>();
  call->done = std::move(done);
  const auto timeout =
      options.deadline > std::chrono::milliseconds(0) ? options.deadline : default_deadline;
  call->deadline = internal::Clock::now() + timeout;
  const bool split = kind == OpKind::kRead || kind == OpKind::kWrite;
  uint64_t done_bytes = 0;
  do {
    const uint64_t n = split ? std::min(chunk_size, length - done_bytes) : length;
    auto c = std::make_unique<Chunk>();
    c->kind = kind;
    c->offset = offset + done_bytes;
    c->length = n;
    if (dest != nullptr) c->dest = dest + done_bytes;
    if (src != nullptr) c->src = src + done_bytes;
    c->fua = options.fua && kind != OpKind::kRead && kind != OpKind::kFlush;
    call->chunks.push_back(std::move(c));
    done_bytes += n;
  } while (done_bytes < length);
  return call;
}

// Adapts a callback call into a future.
std::pair<IoCallback, std::future<absl::Status>> Promise() {
  auto promise = std::make_shared<std::promise<absl::Status>>();
  std::future<absl::Status> future = promise->get_future();
  return {[promise](absl::Status s) { promise->set_value(std::move(s)); }, std::move(future)};
}

}  // namespace

Volume::Volume(std::shared_ptr<internal::ClientCore> client, VolumeInfo info,
               const internal::ServedVolume& served, const VolumeOptions& options)
    : client_(std::move(client)), info_(std::move(info)) {
  VolumeOptions resolved = options;
  if (resolved.deadline <= std::chrono::milliseconds(0))
    resolved.deadline = client_->options().deadline;
  options_ = resolved;
  core_ = std::make_unique<internal::VolumeCore>(client_, info_.name, info_.size_bytes, served,
                                                 resolved);
}

Volume::~Volume() { Close(); }

void Volume::Close() { core_->Close(); }

VolumeStats Volume::stats() const { return core_->stats(); }

void Volume::Submit(OpKind op, uint64_t offset, uint64_t length, void* dest, const void* src,
                    IoCallback done, const IoOptions& options) {
  if (op != OpKind::kFlush) {
    // Empty ranges are valid here (answered at once); the server's limit
    // per request does not apply to a call, which is cut into chunks.
    if (absl::Status s =
            CheckBlockRange(offset, length, info_.size_bytes, RangeRules{.allow_empty = true});
        !s.ok()) {
      done(s);
      return;
    }
    if (length == 0) {
      done(absl::OkStatus());
      return;
    }
  }
  core_->Submit(MakeCall(op, offset, length, static_cast<char*>(dest),
                         static_cast<const char*>(src), options, options_.deadline,
                         options_.chunk_size, std::move(done)));
}

// ---- Callbacks ---------------------------------------------------------

void Volume::ReadAsync(uint64_t offset, void* buf, size_t length, IoCallback done,
                       const IoOptions& options) {
  Submit(OpKind::kRead, offset, length, buf, nullptr, std::move(done), options);
}

void Volume::WriteAsync(uint64_t offset, const void* data, size_t length, IoCallback done,
                        const IoOptions& options) {
  Submit(OpKind::kWrite, offset, length, nullptr, data, std::move(done), options);
}

void Volume::FlushAsync(IoCallback done, const IoOptions& options) {
  Submit(OpKind::kFlush, 0, 0, nullptr, nullptr, std::move(done), options);
}

void Volume::TrimAsync(uint64_t offset, uint64_t length, IoCallback done,
                       const IoOptions& options) {
  Submit(OpKind::kTrim, offset, length, nullptr, nullptr, std::move(done), options);
}

void Volume::WriteZeroesAsync(uint64_t offset, uint64_t length, IoCallback done,
                              const IoOptions& options) {
  Submit(OpKind::kWriteZeroes, offset, length, nullptr, nullptr, std::move(done), options);
}

// ---- Futures -----------------------------------------------------------

std::future<absl::Status> Volume::ReadAsync(uint64_t offset, void* buf, size_t length,
                                            const IoOptions& options) {
  auto [done, future] = Promise();
  ReadAsync(offset, buf, length, std::move(done), options);
  return std::move(future);
}

std::future<absl::Status> Volume::WriteAsync(uint64_t offset, const void* data, size_t length,
                                             const IoOptions& options) {
  auto [done, future] = Promise();
  WriteAsync(offset, data, length, std::move(done), options);
  return std::move(future);
}

std::future<absl::Status> Volume::FlushAsync(const IoOptions& options) {
  auto [done, future] = Promise();
  FlushAsync(std::move(done), options);
  return std::move(future);
}

std::future<absl::Status> Volume::TrimAsync(uint64_t offset, uint64_t length,
                                            const IoOptions& options) {
  auto [done, future] = Promise();
  TrimAsync(offset, length, std::move(done), options);
  return std::move(future);
}

std::future<absl::Status> Volume::WriteZeroesAsync(uint64_t offset, uint64_t length,
                                                   const IoOptions& options) {
  auto [done, future] = Promise();
  WriteZeroesAsync(offset, length, std::move(done), options);
  return std::move(future);
}

// ---- Synchronous -------------------------------------------------------

absl::Status Volume::Read(uint64_t offset, void* buf, size_t length, const IoOptions& options) {
  return ReadAsync(offset, buf, length, options).get();
}

absl::Status Volume::Write(uint64_t offset, const void* data, size_t length,
                           const IoOptions& options) {
  return WriteAsync(offset, data, length, options).get();
}

absl::Status Volume::Flush(const IoOptions& options) { return FlushAsync(options).get(); }

absl::Status Volume::Trim(uint64_t offset, uint64_t length, const IoOptions& options) {
  return TrimAsync(offset, length, options).get();
}

absl::Status Volume::WriteZeroes(uint64_t offset, uint64_t length, const IoOptions& options) {
  return WriteZeroesAsync(offset, length, options).get();
}

absl::StatusOr<std::vector<AllocationRange>> Volume::GetAllocation(uint64_t offset,
                                                                   uint64_t length) {
  return internal::GetAllocation(*client_, info_.name, offset, length, options_.deadline);
}

absl::StatusOr<std::vector<AllocationRange>> Volume::GetExtents(uint64_t offset,
                                                                uint64_t length) {
  return internal::GetAllocation(*client_, info_.name, offset, length, options_.deadline,
                                 /*zeros=*/true);
}

}  // namespace cowblk
