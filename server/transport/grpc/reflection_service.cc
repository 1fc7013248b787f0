#include "server/transport/grpc/reflection_service.h"

#include <google/protobuf/descriptor.pb.h>

#include <cstdlib>
#include <set>
#include <string>
#include <vector>

#include "server/transport/grpc/status_util.h"

namespace cowblk::proto {
extern const unsigned char kDescriptorSet[];
extern const size_t kDescriptorSetSize;
}  // namespace cowblk::proto

namespace cowblk::rpc {
namespace {

using google::protobuf::DescriptorPool;
using google::protobuf::FileDescriptor;
using google::protobuf::FileDescriptorProto;

// Serialized FileDescriptorProtos of `file` and everything it imports,
// comments included.
void AddFileAndDeps(const FileDescriptor* file, std::set<std::string>* seen,
                    std::vector<std::string>* out) {
  if (!seen->insert(file->name()).second) return;
  FileDescriptorProto proto;
  file->CopyTo(&proto);
  file->CopySourceCodeInfoTo(&proto);
  out->push_back(proto.SerializeAsString());
  for (int i = 0; i < file->dependency_count(); ++i) AddFileAndDeps(file->dependency(i), seen, out);
}

// The answer to one request. The protocol is the same in v1 and v1alpha;
// only the generated types differ.
template <typename Request, typename Response>
void Answer(const Request& req, Response* out) {
  const DescriptorPool& pool = ServedDescriptors();
  Response& resp = *out;
  resp.Clear();
  resp.set_valid_host(req.host());
  *resp.mutable_original_request() = req;
  const FileDescriptor* file = nullptr;
  std::string missing;
  switch (req.message_request_case()) {
    case Request::kListServices: {
      std::set<std::string> names;
      for (const char* f : {"cowblk/v1/block.proto", "cowblk/v1/volume.proto",
                            "grpc/health/v1/health.proto", "grpc/reflection/v1/reflection.proto",
                            "grpc/reflection/v1alpha/reflection.proto"}) {
        const FileDescriptor* fd = pool.FindFileByName(f);
        for (int i = 0; fd != nullptr && i < fd->service_count(); ++i) {
          names.insert(fd->service(i)->full_name());
        }
      }
      for (const std::string& n : names) resp.mutable_list_services_response()->add_service()->set_name(n);
      break;
    }
    case Request::kFileByFilename:
      file = pool.FindFileByName(req.file_by_filename());
      missing = "file " + Abbreviated(req.file_by_filename());
      break;
    case Request::kFileContainingSymbol:
      file = pool.FindFileContainingSymbol(req.file_containing_symbol());
      missing = "symbol " + Abbreviated(req.file_containing_symbol());
      break;
    case Request::kAllExtensionNumbersOfType: {
      const auto* type = pool.FindMessageTypeByName(req.all_extension_numbers_of_type());
      if (type == nullptr) {
        missing = "type " + Abbreviated(req.all_extension_numbers_of_type());
        break;
      }
      resp.mutable_all_extension_numbers_response()->set_base_type_name(type->full_name());
      break;
    }
    case Request::kFileContainingExtension:
      missing = "extension " + Abbreviated(req.file_containing_extension().containing_type());
      break;
    default:
      resp.mutable_error_response()->set_error_code(grpc::StatusCode::INVALID_ARGUMENT);
      resp.mutable_error_response()->set_error_message("empty reflection request");
      break;
  }
  if (file != nullptr) {
    std::set<std::string> seen;
    std::vector<std::string> files;
    AddFileAndDeps(file, &seen, &files);
    for (std::string& f : files) {
      resp.mutable_file_descriptor_response()->add_file_descriptor_proto(std::move(f));
    }
  } else if (!missing.empty() && !resp.has_all_extension_numbers_response()) {
    resp.mutable_error_response()->set_error_code(grpc::StatusCode::NOT_FOUND);
    resp.mutable_error_response()->set_error_message(missing + " not found");
  }
}

// One reflection stream: read a request, write its answer, again, one
// operation at a time (so no lock). Frees itself in OnDone.
template <typename Request, typename Response>
class Reactor final : public grpc::ServerBidiReactor<Request, Response> {
 public:
  Reactor() { this->StartRead(&request_); }
  void OnReadDone(bool ok) override {
    if (!ok) {  // the client half-closed, or the call ended
      this->Finish(grpc::Status::OK);
      return;
    }
    Answer(request_, &response_);
    this->StartWrite(&response_);
  }
  void OnWriteDone(bool ok) override {
    if (!ok) {
      this->Finish(grpc::Status::OK);
      return;
    }
    this->StartRead(&request_);
  }
  void OnDone() override { delete this; }

 private:
  Request request_;
  Response response_;
};

}  // namespace

const DescriptorPool& ServedDescriptors() {
  static const DescriptorPool* pool = [] {
    google::protobuf::FileDescriptorSet set;
    if (!set.ParseFromArray(proto::kDescriptorSet, static_cast<int>(proto::kDescriptorSetSize))) {
      abort();  // built into the binary: cannot fail unless the build is broken
    }
    auto* p = new DescriptorPool;
    for (const FileDescriptorProto& f : set.file()) {
      if (p->BuildFile(f) == nullptr) abort();
    }
    return p;
  }();
  return *pool;
}

grpc::ServerBidiReactor<grpc::reflection::v1::ServerReflectionRequest,
                        grpc::reflection::v1::ServerReflectionResponse>*
ReflectionV1::ServerReflectionInfo(grpc::CallbackServerContext*) {
  return new Reactor<grpc::reflection::v1::ServerReflectionRequest,
                     grpc::reflection::v1::ServerReflectionResponse>;
}

grpc::ServerBidiReactor<grpc::reflection::v1alpha::ServerReflectionRequest,
                        grpc::reflection::v1alpha::ServerReflectionResponse>*
ReflectionV1Alpha::ServerReflectionInfo(grpc::CallbackServerContext*) {
  return new Reactor<grpc::reflection::v1alpha::ServerReflectionRequest,
                     grpc::reflection::v1alpha::ServerReflectionResponse>;
}

}  // namespace cowblk::rpc
