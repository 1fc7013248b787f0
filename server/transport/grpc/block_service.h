// cowblk.v1.BlockService over the request pipeline (server/core), with
// gRPC's callback API: no thread blocks on I/O. Session (session_reactor.h)
// is the streaming data path; Read, Write and Flush (unary_reactors.h) are
// the simple calls for small tools and grpcurl.

#ifndef COWBLK_SERVER_TRANSPORT_GRPC_BLOCK_SERVICE_H_
#define COWBLK_SERVER_TRANSPORT_GRPC_BLOCK_SERVICE_H_

#include <cstdint>
#include <memory>
#include <string>

#include "cowblk/v1/block.grpc.pb.h"
#include "server/core/budget.h"
#include "server/core/send_watchdog.h"
#include "server/store/store.h"
#include "server/transport/grpc/auth.h"
#include "server/transport/grpc/call_tracker.h"

namespace cowblk::rpc {

struct BlockServiceOptions {
  // Requests of one Session in progress (submitted, or answered but not yet
  // sent) before the server stops reading that stream.
  uint32_t max_in_flight = 256;
  // Request bytes one call may hold in flight (--max-stream-bytes), and the
  // server-wide budget every call's bytes come from (null: none; outlives
  // the service).
  uint64_t max_stream_bytes = uint64_t{64} << 20;
  core::Budget* budget = nullptr;
  // Cuts a Session or Read whose answer write is outstanding too long
  // (--grpc-send-timeout-seconds; null: none; outlives the service).
  core::SendWatchdog* send_watchdog = nullptr;
  // Chunk size of the Read RPC.
  uint32_t read_chunk = 1 << 20;
  // The port of the NBD export (--nbd-listen), told to Session clients in
  // the `cowblk-nbd-port` initial metadata; 0: no export.
  uint16_t nbd_port = 0;
};

// Session is a raw method (ByteBuffer in and out, see session_reactor.h);
// so is Write, which parses its messages itself (a message whose data
// cannot be allocated fails the call, see unary_reactors.h); the others use
// the generated message types.
using BlockServiceBase = cowblk::v1::BlockService::WithRawCallbackMethod_Session<
    cowblk::v1::BlockService::WithCallbackMethod_Read<cowblk::v1::BlockService::WithRawCallbackMethod_Write<
        cowblk::v1::BlockService::WithCallbackMethod_Flush<cowblk::v1::BlockService::Service>>>>;

class BlockServiceImpl final : public BlockServiceBase {
 public:
  // `store`, `auth` and `calls` must outlive the service.
  BlockServiceImpl(store::Store* store, const Authorizer* auth, CallTracker* calls,
                   const BlockServiceOptions& options)
      : store_(store), auth_(auth), calls_(calls), options_(options) {}

  grpc::ServerBidiReactor<grpc::ByteBuffer, grpc::ByteBuffer>* Session(
      grpc::CallbackServerContext* ctx) override;
  grpc::ServerWriteReactor<cowblk::v1::ReadResponse>* Read(
      grpc::CallbackServerContext* ctx, const cowblk::v1::ReadRequest* request) override;
  grpc::ServerReadReactor<grpc::ByteBuffer>* Write(grpc::CallbackServerContext* ctx,
                                                   grpc::ByteBuffer* response) override;
  grpc::ServerUnaryReactor* Flush(grpc::CallbackServerContext* ctx,
                                  const cowblk::v1::FlushRequest* request,
                                  cowblk::v1::FlushResponse* response) override;

  // Opens `name` for `access` by the caller of `ctx`: InvalidArgument for a
  // bad name, the token's refusal, NotFound, or the handle.
  absl::StatusOr<std::shared_ptr<store::VolumeHandle>> OpenVolume(
      const grpc::ServerContextBase& ctx, const std::string& name, Access access);
  const BlockServiceOptions& options() const { return options_; }
  CallTracker* calls() const { return calls_; }

 private:
  store::Store* const store_;
  const Authorizer* const auth_;
  CallTracker* const calls_;
  const BlockServiceOptions options_;
};

}  // namespace cowblk::rpc

#endif  // COWBLK_SERVER_TRANSPORT_GRPC_BLOCK_SERVICE_H_
