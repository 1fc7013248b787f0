// Server reflection, v1 and v1alpha, over a descriptor pool that keeps the
// .proto comments, so `grpcurl describe` shows the API's documentation.
// Debian's libgrpc++_reflection serves only v1alpha and only the generated
// descriptors (which have no comments); this replaces it.
//
// Callback (reactor) services: a reflection stream holds no thread while it
// waits for its client's next request.
//
// Thread-safety: the pool is immutable after construction; each call has
// its own stream state.

#ifndef COWBLK_SERVER_TRANSPORT_GRPC_REFLECTION_SERVICE_H_
#define COWBLK_SERVER_TRANSPORT_GRPC_REFLECTION_SERVICE_H_

#include <google/protobuf/descriptor.h>

#include <memory>

#include "grpc/reflection/v1/reflection.grpc.pb.h"
#include "grpc/reflection/v1alpha/reflection.grpc.pb.h"

namespace cowblk::rpc {

// The pool built from the embedded descriptor set (every served file).
const google::protobuf::DescriptorPool& ServedDescriptors();

class ReflectionV1 final : public grpc::reflection::v1::ServerReflection::CallbackService {
 public:
  grpc::ServerBidiReactor<grpc::reflection::v1::ServerReflectionRequest,
                          grpc::reflection::v1::ServerReflectionResponse>*
  ServerReflectionInfo(grpc::CallbackServerContext* ctx) override;
};

class ReflectionV1Alpha final
    : public grpc::reflection::v1alpha::ServerReflection::CallbackService {
 public:
  grpc::ServerBidiReactor<grpc::reflection::v1alpha::ServerReflectionRequest,
                          grpc::reflection::v1alpha::ServerReflectionResponse>*
  ServerReflectionInfo(grpc::CallbackServerContext* ctx) override;
};

}  // namespace cowblk::rpc

#endif  // COWBLK_SERVER_TRANSPORT_GRPC_REFLECTION_SERVICE_H_
