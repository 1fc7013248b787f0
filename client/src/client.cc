#include "cowblk/client.h"

#include <fstream>
#include <sstream>
#include <utility>

#include "absl/strings/str_cat.h"
#include "client/src/client_core.h"
#include "client/src/image_upload_impl.h"
#include "client/src/volume_core.h"

namespace cowblk {
namespace {

using internal::FromGrpc;

constexpr uint32_t kMaxChunk = 32u << 20;  // the server's limit per request

VolumeInfo ToInfo(const v1::Volume& v) {
  VolumeInfo info;
  info.name = v.name();
  info.size_bytes = v.size_bytes();
  info.sector_size = v.sector_size() != 0 ? v.sector_size() : 512;
  info.allocated_bytes = v.allocated_bytes();
  info.image = v.image();
  info.state = v.state() == v1::VOLUME_STATE_READY   ? VolumeState::kReady
               : v.state() == v1::VOLUME_STATE_ERROR ? VolumeState::kError
                                                     : VolumeState::kUnknown;
  info.error = v.error();
  return info;
}

absl::StatusOr<v1::Volume> FetchVolume(internal::ClientCore& core, const std::string& name) {
  grpc::ClientContext ctx;
  core.Prepare(&ctx);
  v1::GetVolumeRequest req;
  req.set_name(name);
  v1::Volume resp;
  grpc::Status s = core.volumes()->GetVolume(&ctx, req, &resp);
  if (!s.ok()) return FromGrpc(s);
  return resp;
}

ImageInfo ToInfo(const v1::Image& i) { return {i.name(), i.size_bytes(), i.volume_count()}; }

absl::Status CheckVolumeOptions(const VolumeOptions& o) {
  if (o.max_in_flight < 1 || o.max_in_flight > 65536) {
    return absl::InvalidArgumentError(
        absl::StrCat("max_in_flight: ", o.max_in_flight, " is not between 1 and 65536"));
  }
  if (o.chunk_size < 512 || o.chunk_size % 512 != 0 || o.chunk_size > kMaxChunk) {
    return absl::InvalidArgumentError(absl::StrCat(
        "chunk_size: ", o.chunk_size, " is not a multiple of 512 between 512 and ", kMaxChunk));
  }
  if (o.lanes < 0 || o.lanes > 64) {
    return absl::InvalidArgumentError(absl::StrCat("lanes: ", o.lanes, " is not between 0 and 64"));
  }
  if (o.max_batch < 1 || o.max_batch > 1024) {
    return absl::InvalidArgumentError(
        absl::StrCat("max_batch: ", o.max_batch, " is not between 1 and 1024"));
  }
  return absl::OkStatus();
}

}  // namespace

const char* VolumeStateName(VolumeState state) {
  switch (state) {
    case VolumeState::kReady:
      return "ready";
    case VolumeState::kError:
      return "error";
    case VolumeState::kUnknown:
      break;
  }
  return "unknown";
}

const char* HealthStateName(HealthState state) {
  switch (state) {
    case HealthState::kServing:
      return "SERVING";
    case HealthState::kNotServing:
      return "NOT_SERVING";
    case HealthState::kUnknown:
      break;
  }
  return "UNKNOWN";
}

absl::StatusOr<std::string> ReadTokenFile(const std::string& path) {
  std::ifstream in(path);
  if (!in) return absl::NotFoundError(absl::StrCat("token file ", path, ": cannot be read"));
  std::string line;
  std::getline(in, line);
  const size_t begin = line.find_first_not_of(" \t\r");
  const size_t end = line.find_last_not_of(" \t\r");
  if (begin == std::string::npos) {
    return absl::InvalidArgumentError(
        absl::StrCat("token file ", path, ": no token on its first line"));
  }
  return line.substr(begin, end - begin + 1);
}

absl::StatusOr<Client> Client::Create(const ClientOptions& options) {
  auto core = internal::ClientCore::Create(options);
  if (!core.ok()) return core.status();
  return Client(*std::move(core));
}

Client::Client(std::shared_ptr<internal::ClientCore> core) : core_(std::move(core)) {}
Client::~Client() = default;
Client::Client(const Client&) = default;
Client& Client::operator=(const Client&) = default;
Client::Client(Client&&) noexcept = default;
Client& Client::operator=(Client&&) noexcept = default;

const ClientOptions& Client::options() const { return core_->options(); }

absl::StatusOr<std::unique_ptr<Volume>> Client::OpenVolume(const std::string& name,
                                                           const VolumeOptions& options) {
  if (absl::Status s = CheckVolumeOptions(options); !s.ok()) return s;
  auto volume = FetchVolume(*core_, name);
  if (!volume.ok()) return volume.status();
  VolumeInfo info = ToInfo(*volume);
  if (info.state == VolumeState::kError) {
    return absl::FailedPreconditionError(
        absl::StrCat("volume ", name, " is not servable: ", info.error));
  }
  // How to reach it over the NBD export, learnt here rather than from a
  // Session stream, so that a volume that only writes needs none.
  const internal::ServedVolume served{.epoch = volume->epoch(), .nbd_port = volume->nbd_port()};
  return std::unique_ptr<Volume>(new Volume(core_, std::move(info), served, options));
}

// ---- Volumes -----------------------------------------------------------

absl::StatusOr<VolumeInfo> Client::CreateVolume(const std::string& name, uint64_t size_bytes) {
  grpc::ClientContext ctx;
  core_->Prepare(&ctx);
  v1::CreateVolumeRequest req;
  req.set_name(name);
  req.set_size_bytes(size_bytes);
  v1::Volume resp;
  grpc::Status s = core_->volumes()->CreateVolume(&ctx, req, &resp);
  if (!s.ok()) return FromGrpc(s);
  return ToInfo(resp);
}

absl::StatusOr<VolumeInfo> Client::CreateVolumeFromImage(const std::string& name,
                                                         const std::string& image) {
  grpc::ClientContext ctx;
  core_->Prepare(&ctx);
  v1::CreateVolumeRequest req;
  req.set_name(name);
  req.set_image(image);
  v1::Volume resp;
  grpc::Status s = core_->volumes()->CreateVolume(&ctx, req, &resp);
  if (!s.ok()) return FromGrpc(s);
  return ToInfo(resp);
}

absl::StatusOr<VolumeInfo> Client::GetVolume(const std::string& name) {
  auto volume = FetchVolume(*core_, name);
  if (!volume.ok()) return volume.status();
  return ToInfo(*volume);
}

absl::StatusOr<std::vector<VolumeInfo>> Client::ListVolumes() {
  std::vector<VolumeInfo> out;
  std::string token;
  do {
    grpc::ClientContext ctx;
    core_->Prepare(&ctx);
    v1::ListVolumesRequest req;
    req.set_page_token(token);
    v1::ListVolumesResponse resp;
    grpc::Status s = core_->volumes()->ListVolumes(&ctx, req, &resp);
    if (!s.ok()) return FromGrpc(s);
    for (const auto& v : resp.volumes()) out.push_back(ToInfo(v));
    token = resp.next_page_token();
  } while (!token.empty());
  return out;
}

// ---- Snapshots ---------------------------------------------------------

namespace {
SnapshotInfo ToInfo(const v1::Snapshot& s) {
  return {s.name(), s.source_volume(), s.size_bytes(), s.created_unix_nanos(), s.volume_count()};
}
}  // namespace

absl::StatusOr<SnapshotInfo> Client::CreateSnapshot(const std::string& volume,
                                                    const std::string& name) {
  grpc::ClientContext ctx;
  core_->Prepare(&ctx);
  v1::CreateSnapshotRequest req;
  req.set_volume(volume);
  req.set_name(name);
  v1::Snapshot resp;
  grpc::Status s = core_->volumes()->CreateSnapshot(&ctx, req, &resp);
  if (!s.ok()) return FromGrpc(s);
  return ToInfo(resp);
}

absl::StatusOr<SnapshotInfo> Client::GetSnapshot(const std::string& name) {
  grpc::ClientContext ctx;
  core_->Prepare(&ctx);
  v1::GetSnapshotRequest req;
  req.set_name(name);
  v1::Snapshot resp;
  grpc::Status s = core_->volumes()->GetSnapshot(&ctx, req, &resp);
  if (!s.ok()) return FromGrpc(s);
  return ToInfo(resp);
}

absl::StatusOr<std::vector<SnapshotInfo>> Client::ListSnapshots(const std::string& volume) {
  std::vector<SnapshotInfo> out;
  std::string token;
  do {
    grpc::ClientContext ctx;
    core_->Prepare(&ctx);
    v1::ListSnapshotsRequest req;
    req.set_source_volume(volume);
    req.set_page_token(token);
    v1::ListSnapshotsResponse resp;
    grpc::Status s = core_->volumes()->ListSnapshots(&ctx, req, &resp);
    if (!s.ok()) return FromGrpc(s);
    for (const auto& v : resp.snapshots()) out.push_back(ToInfo(v));
    token = resp.next_page_token();
  } while (!token.empty());
  return out;
}

absl::Status Client::DeleteSnapshot(const std::string& name) {
  grpc::ClientContext ctx;
  core_->Prepare(&ctx);
  v1::DeleteSnapshotRequest req;
  req.set_name(name);
  v1::DeleteSnapshotResponse resp;
  grpc::Status s = core_->volumes()->DeleteSnapshot(&ctx, req, &resp);
  if (!s.ok()) return FromGrpc(s);
  return absl::OkStatus();
}

absl::Status Client::DeleteVolume(const std::string& name) {
  grpc::ClientContext ctx;
  core_->Prepare(&ctx);
  v1::DeleteVolumeRequest req;
  req.set_name(name);
  v1::DeleteVolumeResponse resp;
  return FromGrpc(core_->volumes()->DeleteVolume(&ctx, req, &resp));
}

absl::StatusOr<ImageInfo> Client::CommitVolume(const std::string& name, const std::string& image) {
  grpc::ClientContext ctx;
  core_->Prepare(&ctx);
  v1::CommitVolumeRequest req;
  req.set_name(name);
  req.set_image(image);
  v1::Image resp;
  grpc::Status s = core_->volumes()->CommitVolume(&ctx, req, &resp);
  if (!s.ok()) return FromGrpc(s);
  return ToInfo(resp);
}

absl::StatusOr<VolumeInfo> Client::RebaseVolume(const std::string& name, const std::string& image) {
  grpc::ClientContext ctx;
  core_->Prepare(&ctx);
  v1::RebaseVolumeRequest req;
  req.set_name(name);
  req.set_image(image);
  v1::Volume resp;
  grpc::Status s = core_->volumes()->RebaseVolume(&ctx, req, &resp);
  if (!s.ok()) return FromGrpc(s);
  return ToInfo(resp);
}

absl::StatusOr<std::vector<AllocationRange>> Client::GetAllocation(const std::string& name,
                                                                   uint64_t offset,
                                                                   uint64_t length) {
  return internal::GetAllocation(*core_, name, offset, length, {});
}

absl::StatusOr<VolumeInfo> Client::CloneVolume(const std::string& source, const std::string& name) {
  grpc::ClientContext ctx;
  core_->Prepare(&ctx);
  v1::CloneVolumeRequest req;
  req.set_name(name);
  req.set_source(source);
  v1::Volume resp;
  grpc::Status s = core_->volumes()->CloneVolume(&ctx, req, &resp);
  if (!s.ok()) return FromGrpc(s);
  return ToInfo(resp);
}

absl::StatusOr<VolumeInfo> Client::ResizeVolume(const std::string& name, uint64_t size_bytes) {
  grpc::ClientContext ctx;
  core_->Prepare(&ctx);
  v1::ResizeVolumeRequest req;
  req.set_name(name);
  req.set_size_bytes(size_bytes);
  v1::Volume resp;
  grpc::Status s = core_->volumes()->ResizeVolume(&ctx, req, &resp);
  if (!s.ok()) return FromGrpc(s);
  return ToInfo(resp);
}

absl::StatusOr<ServerInfo> Client::GetServerInfo() {
  grpc::ClientContext ctx;
  core_->Prepare(&ctx);
  v1::ServerInfo resp;
  grpc::Status s = core_->volumes()->GetServerInfo(&ctx, v1::GetServerInfoRequest(), &resp);
  if (!s.ok()) return FromGrpc(s);
  ServerInfo info;
  info.version = resp.version();
  info.commit = resp.commit();
  info.capacity_bytes = resp.capacity_bytes();
  info.free_bytes = resp.free_bytes();
  info.volume_count = resp.volume_count();
  info.provisioned_bytes = resp.provisioned_bytes();
  info.allocated_bytes = resp.allocated_bytes();
  info.max_volume_size_bytes = resp.max_volume_size_bytes();
  info.nbd_address = resp.nbd_address();
  info.nbd_port = resp.nbd_port();
  return info;
}

// ---- Images ------------------------------------------------------------

absl::StatusOr<ImageInfo> Client::GetImage(const std::string& name) {
  grpc::ClientContext ctx;
  core_->Prepare(&ctx);
  v1::GetImageRequest req;
  req.set_name(name);
  v1::Image resp;
  grpc::Status s = core_->volumes()->GetImage(&ctx, req, &resp);
  if (!s.ok()) return FromGrpc(s);
  return ToInfo(resp);
}

absl::StatusOr<std::vector<ImageInfo>> Client::ListImages() {
  std::vector<ImageInfo> out;
  std::string token;
  do {
    grpc::ClientContext ctx;
    core_->Prepare(&ctx);
    v1::ListImagesRequest req;
    req.set_page_token(token);
    v1::ListImagesResponse resp;
    grpc::Status s = core_->volumes()->ListImages(&ctx, req, &resp);
    if (!s.ok()) return FromGrpc(s);
    for (const auto& i : resp.images()) out.push_back(ToInfo(i));
    token = resp.next_page_token();
  } while (!token.empty());
  return out;
}

absl::Status Client::DeleteImage(const std::string& name) {
  grpc::ClientContext ctx;
  core_->Prepare(&ctx);
  v1::DeleteImageRequest req;
  req.set_name(name);
  v1::DeleteImageResponse resp;
  return FromGrpc(core_->volumes()->DeleteImage(&ctx, req, &resp));
}

absl::StatusOr<ImageInfo> Client::UploadImage(const std::string& name, const std::string& path,
                                              const ProgressFn& progress) {
  std::ifstream in(path, std::ios::binary);
  if (!in) return absl::NotFoundError(absl::StrCat(path, ": cannot be opened"));
  return UploadImageFrom(
      name,
      [&in, &path](char* buf, size_t size) -> absl::StatusOr<size_t> {
        in.read(buf, static_cast<std::streamsize>(size));
        if (in.bad()) return absl::DataLossError(absl::StrCat(path, ": read failed"));
        return static_cast<size_t>(in.gcount());
      },
      progress);
}

absl::StatusOr<std::unique_ptr<ImageUpload>> Client::StartImageUpload(const std::string& name,
                                                                      uint64_t size) {
  return std::make_unique<ImageUpload>(std::make_unique<ImageUpload::Impl>(core_, name, size));
}

absl::StatusOr<ImageInfo> Client::UploadImageFrom(const std::string& name, const ReadFn& read,
                                                  const ProgressFn& progress) {
  auto upload = StartImageUpload(name);
  if (!upload.ok()) return upload.status();
  std::string buf(1 << 20, '\0');
  while (true) {
    auto n = read(buf.data(), buf.size());
    if (!n.ok()) return n.status();  // the upload is dropped: no image
    if (*n == 0) break;
    if (absl::Status s = (*upload)->Write(buf.data(), *n); !s.ok()) return s;
    if (progress) progress((*upload)->sent());
  }
  return (*upload)->Finish();
}

// ---- Health ------------------------------------------------------------

absl::StatusOr<HealthState> Client::Health(const std::string& service) {
  grpc::ClientContext ctx;
  core_->Prepare(&ctx);
  grpc::health::v1::HealthCheckRequest req;
  req.set_service(service);
  grpc::health::v1::HealthCheckResponse resp;
  grpc::Status s = core_->health()->Check(&ctx, req, &resp);
  if (!s.ok()) return FromGrpc(s);
  switch (resp.status()) {
    case grpc::health::v1::HealthCheckResponse::SERVING:
      return HealthState::kServing;
    case grpc::health::v1::HealthCheckResponse::NOT_SERVING:
      return HealthState::kNotServing;
    default:
      return HealthState::kUnknown;
  }
}

namespace internal {

absl::StatusOr<std::vector<AllocationRange>> GetAllocation(ClientCore& client,
                                                           const std::string& name, uint64_t offset,
                                                           uint64_t length,
                                                           std::chrono::milliseconds timeout,
                                                           bool zeros) {
  std::vector<AllocationRange> out;
  // The server answers a page at a time; the end stays where it was asked.
  const uint64_t end = length == 0 ? 0 : offset + length;
  for (uint64_t from = offset;;) {
    grpc::ClientContext ctx;
    client.Prepare(&ctx, timeout);
    v1::GetAllocationRequest req;
    req.set_name(name);
    req.set_offset(from);
    req.set_length(end == 0 ? 0 : end - from);
    req.set_zeros(zeros);
    v1::GetAllocationResponse resp;
    grpc::Status s = client.volumes()->GetAllocation(&ctx, req, &resp);
    if (!s.ok()) return FromGrpc(s);
    for (const auto& r : resp.ranges()) {
      out.push_back({r.offset(), r.length(), r.allocated(), r.zero()});
    }
    if (resp.next_offset() <= from) return out;  // 0: the last page
    from = resp.next_offset();
  }
}

}  // namespace internal
}  // namespace cowblk
