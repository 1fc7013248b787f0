// What the copies of a cowblk::Client share: the options, the channel pool,
// the stubs and the ticker. Volumes keep it alive while they are open.
//
// Thread-safety: immutable after Create(), except the round-robin counter
// (atomic); gRPC stubs and channels are thread-safe.

#ifndef COWBLK_CLIENT_SRC_CLIENT_CORE_H_
#define COWBLK_CLIENT_SRC_CLIENT_CORE_H_

#include <grpcpp/grpcpp.h>

#include <atomic>
#include <chrono>
#include <memory>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "client/src/ticker.h"
#include "cowblk/client.h"
#include "cowblk/v1/block.grpc.pb.h"
#include "cowblk/v1/volume.grpc.pb.h"
#include "grpc/health/v1/health.grpc.pb.h"

namespace cowblk::internal {

// grpc::Status and absl::Status share their code numbers.
inline absl::Status FromGrpc(const grpc::Status& s) {
  if (s.ok()) return absl::OkStatus();
  return absl::Status(static_cast<absl::StatusCode>(s.error_code()), s.error_message());
}

class ClientCore {
 public:
  static absl::StatusOr<std::shared_ptr<ClientCore>> Create(const ClientOptions& options);
  ClientCore(const ClientCore&) = delete;
  ClientCore& operator=(const ClientCore&) = delete;

  const ClientOptions& options() const { return options_; }
  int channel_count() const { return static_cast<int>(channels_.size()); }
  // Channel `i` modulo the pool size.
  const std::shared_ptr<grpc::Channel>& channel(int i) const {
    return channels_[static_cast<size_t>(i) % channels_.size()];
  }
  v1::BlockService::Stub* blocks(int i) const {
    return blocks_[static_cast<size_t>(i) % blocks_.size()].get();
  }
  // The next channel's stubs, round robin: unary calls spread too.
  v1::VolumeService::Stub* volumes() { return volumes_[Next() % volumes_.size()].get(); }
  grpc::health::v1::Health::Stub* health() { return health_[Next() % health_.size()].get(); }
  // A starting channel index for a new volume's lanes.
  size_t Next() { return next_.fetch_add(1, std::memory_order_relaxed); }

  // Sets the call's deadline (`timeout`, or the default when zero) and token.
  void Prepare(grpc::ClientContext* ctx, std::chrono::milliseconds timeout = {}) const;
  // Sets the token only (long-lived streams whose requests have deadlines).
  void PrepareStream(grpc::ClientContext* ctx) const;

  Ticker* ticker() { return &ticker_; }

 private:
  explicit ClientCore(const ClientOptions& options);

  const ClientOptions options_;
  std::vector<std::shared_ptr<grpc::Channel>> channels_;
  std::vector<std::unique_ptr<v1::VolumeService::Stub>> volumes_;
  std::vector<std::unique_ptr<v1::BlockService::Stub>> blocks_;
  std::vector<std::unique_ptr<grpc::health::v1::Health::Stub>> health_;
  std::atomic<size_t> next_{0};
  Ticker ticker_;
};

// Whether `options` ask for TLS (`tls`, or any of the TLS files).
inline bool UsesTls(const ClientOptions& o) {
  return o.tls || !o.tls_ca_file.empty() || !o.tls_cert_file.empty() || !o.tls_key_file.empty();
}

// VolumeService.GetAllocation, shared by Client and Volume, every page;
// `zeros`: asked with GetAllocationRequest.zeros (Volume::GetExtents).
absl::StatusOr<std::vector<AllocationRange>> GetAllocation(ClientCore& client,
                                                           const std::string& name, uint64_t offset,
                                                           uint64_t length,
                                                           std::chrono::milliseconds timeout,
                                                           bool zeros = false);

}  // namespace cowblk::internal

#endif  // COWBLK_CLIENT_SRC_CLIENT_CORE_H_
