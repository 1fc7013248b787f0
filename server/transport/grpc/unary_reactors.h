// BlockService's simple calls as codecs over the request pipeline, one
// request in flight each: Read (a server stream of chunks), Write (a client
// stream of data, optionally flushed at the end) and Flush. For small tools
// and grpcurl; Session is the data path.
//
// Lifetime (gRPC's callback API): each reactor frees itself in OnDone, and
// calls Finish only when its pipeline is idle.

#ifndef COWBLK_SERVER_TRANSPORT_GRPC_UNARY_REACTORS_H_
#define COWBLK_SERVER_TRANSPORT_GRPC_UNARY_REACTORS_H_

#include <grpcpp/grpcpp.h>

#include <cstdint>
#include <memory>

#include "cowblk/v1/block.pb.h"
#include "server/core/pipeline.h"
#include "server/core/send_watchdog.h"
#include "server/transport/grpc/call_tracker.h"

namespace cowblk::rpc {

class BlockServiceImpl;

// Reads [offset, offset + length) of `volume` in chunks of the service's
// read_chunk bytes; a chunk the client takes not within the send timeout
// cancels the call (the service's send_watchdog).
// REQUIRES: the range was checked; `service` counted this call (OnDone ends it).
grpc::ServerWriteReactor<v1::ReadResponse>* NewReadReactor(
    BlockServiceImpl* service, grpc::CallbackServerContext* ctx,
    std::shared_ptr<store::VolumeHandle> volume, uint64_t offset, uint64_t length);

// Reads WriteRequest messages, parsed here: one whose data cannot be
// allocated fails the call RESOURCE_EXHAUSTED (a `request_failed` line) and
// the process goes on. `response` gets the serialized WriteResponse.
// REQUIRES: `service` counted this call (OnDone ends it).
grpc::ServerReadReactor<grpc::ByteBuffer>* NewWriteReactor(BlockServiceImpl* service,
                                                           grpc::CallbackServerContext* ctx,
                                                           grpc::ByteBuffer* response);

// Flushes `volume` and answers with the result.
// REQUIRES: `calls` counted this call (OnDone ends it).
grpc::ServerUnaryReactor* NewFlushReactor(CallTracker* calls, core::Budget* budget,
                                          std::string peer,
                                          std::shared_ptr<store::VolumeHandle> volume);

}  // namespace cowblk::rpc

#endif  // COWBLK_SERVER_TRANSPORT_GRPC_UNARY_REACTORS_H_
