#include "server/transport/grpc/volume_service.h"

#include "absl/strings/str_cat.h"
#include "common/sector.h"
#include "common/version.h"
#include "server/store/client_text.h"
#include "server/store/names.h"
#include "server/transport/grpc/status_util.h"

namespace cowblk::rpc {
namespace {

using namespace cowblk::v1;  // NOLINT: the generated messages

constexpr uint32_t kMaxPage = 1000;
constexpr uint32_t kMaxAllocationPage = 10000;  // ranges in one GetAllocation answer

void Fill(const store::ImageInfo& info, Image* out) {
  out->set_name(info.name);
  out->set_size_bytes(info.size_bytes);
  out->set_volume_count(info.volume_count);
}

void Fill(const store::SnapshotInfo& info, Snapshot* out) {
  out->set_name(info.name);
  out->set_source_volume(info.source);
  out->set_size_bytes(info.size_bytes);
  out->set_created_unix_nanos(info.created_unix_nanos);
  out->set_volume_count(info.volume_count);
}

uint32_t PageSize(uint32_t requested, uint32_t max = kMaxPage) {
  return requested == 0 || requested > max ? max : requested;
}

}  // namespace

void VolumeServiceImpl::FillVolume(const store::VolumeInfo& info, Volume* out) const {
  out->set_name(info.name);
  out->set_size_bytes(info.size_bytes);
  out->set_sector_size(kSectorSize);
  out->set_allocated_bytes(info.allocated_bytes);
  out->set_image(info.image);
  out->set_state(info.ready ? VOLUME_STATE_READY : VOLUME_STATE_ERROR);
  out->set_error(store::ForClients(info.error));
  if (!info.ready) return;
  out->set_nbd_port(options_.nbd_port);
  out->set_epoch(info.epoch);
}

grpc::Status VolumeServiceImpl::CreateVolume(grpc::ServerContext* ctx,
                                             const CreateVolumeRequest* req, Volume* resp) {
  CallScope call(calls_);
  if (!call.ok()) return CallTracker::Refusal();
  if (absl::Status s = auth_->Check(*ctx, Access::kAdmin, ""); !s.ok()) return ToGrpc(s);
  auto info = store_->CreateVolume(req->name(), req->image(), req->size_bytes());
  if (!info.ok()) return ToGrpc(info.status());
  FillVolume(*info, resp);
  return grpc::Status::OK;
}

grpc::Status VolumeServiceImpl::GetVolume(grpc::ServerContext* ctx, const GetVolumeRequest* req,
                                          Volume* resp) {
  CallScope call(calls_);
  if (!call.ok()) return CallTracker::Refusal();
  if (absl::Status s = store::ValidateName("name", req->name()); !s.ok()) return ToGrpc(s);
  if (absl::Status s = auth_->Check(*ctx, Access::kRead, req->name()); !s.ok()) return ToGrpc(s);
  auto info = store_->GetVolume(req->name());
  if (!info.ok()) return ToGrpc(info.status());
  FillVolume(*info, resp);
  return grpc::Status::OK;
}

grpc::Status VolumeServiceImpl::ListVolumes(grpc::ServerContext* ctx, const ListVolumesRequest* req,
                                            ListVolumesResponse* resp) {
  CallScope call(calls_);
  if (!call.ok()) return CallTracker::Refusal();
  if (absl::Status s = auth_->Authenticate(*ctx); !s.ok()) return ToGrpc(s);
  const uint32_t limit = PageSize(req->page_size());
  std::string after = req->page_token();
  // Volumes the caller may not see are skipped, not counted.
  while (resp->volumes_size() < static_cast<int>(limit)) {
    std::vector<store::VolumeInfo> page = store_->ListVolumes(after, limit);
    if (page.empty()) {
      after.clear();
      break;
    }
    for (const store::VolumeInfo& v : page) {
      after = v.name;
      if (!auth_->CanSee(*ctx, v.name)) continue;
      FillVolume(v, resp->add_volumes());
      if (resp->volumes_size() == static_cast<int>(limit)) break;
    }
  }
  // A next page only if a volume the caller may see remains: the token must
  // not reveal that hidden volumes exist.
  if (resp->volumes_size() == static_cast<int>(limit)) {
    std::string probe = after;
    for (;;) {
      std::vector<store::VolumeInfo> rest = store_->ListVolumes(probe, kMaxPage);
      if (rest.empty()) break;
      bool visible = false;
      for (const store::VolumeInfo& v : rest) visible |= auth_->CanSee(*ctx, v.name);
      if (visible) {
        resp->set_next_page_token(after);
        break;
      }
      probe = rest.back().name;
    }
  }
  return grpc::Status::OK;
}

grpc::Status VolumeServiceImpl::CloneVolume(grpc::ServerContext* ctx, const CloneVolumeRequest* req,
                                            Volume* resp) {
  CallScope call(calls_);
  if (!call.ok()) return CallTracker::Refusal();
  if (absl::Status s = auth_->Check(*ctx, Access::kAdmin, ""); !s.ok()) return ToGrpc(s);
  // As CommitVolume: a clone whose caller went away stops, leaving nothing.
  auto info = store_->CloneVolume(req->source(), req->name(), [ctx] { return ctx->IsCancelled(); });
  if (!info.ok()) return ToGrpc(info.status());
  FillVolume(*info, resp);
  return grpc::Status::OK;
}

grpc::Status VolumeServiceImpl::ResizeVolume(grpc::ServerContext* ctx,
                                             const ResizeVolumeRequest* req, Volume* resp) {
  CallScope call(calls_);
  if (!call.ok()) return CallTracker::Refusal();
  if (absl::Status s = auth_->Check(*ctx, Access::kAdmin, ""); !s.ok()) return ToGrpc(s);
  auto info = store_->ResizeVolume(req->name(), req->size_bytes());
  if (!info.ok()) return ToGrpc(info.status());
  FillVolume(*info, resp);
  return grpc::Status::OK;
}

grpc::Status VolumeServiceImpl::GetServerInfo(grpc::ServerContext* ctx,
                                              const GetServerInfoRequest*, ServerInfo* resp) {
  CallScope call(calls_);
  if (!call.ok()) return CallTracker::Refusal();
  if (absl::Status s = auth_->Authenticate(*ctx); !s.ok()) return ToGrpc(s);
  auto stats = store_->Stats();
  if (!stats.ok()) return ToGrpc(stats.status());
  resp->set_version(Version());
  resp->set_commit(GitCommit());
  resp->set_capacity_bytes(stats->capacity_bytes);
  resp->set_free_bytes(stats->free_bytes);
  resp->set_volume_count(stats->volume_count);
  resp->set_provisioned_bytes(stats->provisioned_bytes);
  resp->set_allocated_bytes(stats->allocated_bytes);
  resp->set_max_volume_size_bytes(store_->max_volume_size());
  resp->set_nbd_address(options_.nbd_address);
  resp->set_nbd_port(options_.nbd_port);
  return grpc::Status::OK;
}

grpc::Status VolumeServiceImpl::DeleteVolume(grpc::ServerContext* ctx,
                                             const DeleteVolumeRequest* req,
                                             DeleteVolumeResponse*) {
  CallScope call(calls_);
  if (!call.ok()) return CallTracker::Refusal();
  if (absl::Status s = auth_->Check(*ctx, Access::kAdmin, ""); !s.ok()) return ToGrpc(s);
  return ToGrpc(store_->DeleteVolume(req->name()));
}

grpc::Status VolumeServiceImpl::CommitVolume(grpc::ServerContext* ctx,
                                             const CommitVolumeRequest* req, Image* resp) {
  CallScope call(calls_);
  if (!call.ok()) return CallTracker::Refusal();
  if (absl::Status s = auth_->Check(*ctx, Access::kAdmin, ""); !s.ok()) return ToGrpc(s);
  if (absl::Status s = store::ValidateName("name", req->name()); !s.ok()) return ToGrpc(s);
  // Asked between chunks: a commit whose caller went away (deadline or
  // cancellation) stops and leaves nothing behind.
  auto info = store_->CommitVolume(req->name(), req->image(), [ctx] { return ctx->IsCancelled(); });
  if (!info.ok()) return ToGrpc(info.status());
  Fill(*info, resp);
  return grpc::Status::OK;
}

grpc::Status VolumeServiceImpl::RebaseVolume(grpc::ServerContext* ctx,
                                             const RebaseVolumeRequest* req, Volume* resp) {
  CallScope call(calls_);
  if (!call.ok()) return CallTracker::Refusal();
  if (absl::Status s = auth_->Check(*ctx, Access::kAdmin, ""); !s.ok()) return ToGrpc(s);
  auto info = store_->RebaseVolume(req->name(), req->image());
  if (!info.ok()) return ToGrpc(info.status());
  FillVolume(*info, resp);
  return grpc::Status::OK;
}

grpc::Status VolumeServiceImpl::GetAllocation(grpc::ServerContext* ctx,
                                              const GetAllocationRequest* req,
                                              GetAllocationResponse* resp) {
  CallScope call(calls_);
  if (!call.ok()) return CallTracker::Refusal();
  if (absl::Status s = store::ValidateName("name", req->name()); !s.ok()) return ToGrpc(s);
  if (absl::Status s = auth_->Check(*ctx, Access::kRead, req->name()); !s.ok()) return ToGrpc(s);
  auto page = store_->GetAllocation(req->name(), req->offset(), req->length(),
                                   PageSize(req->page_size(), kMaxAllocationPage), req->zeros());
  if (!page.ok()) return ToGrpc(page.status());
  resp->set_next_offset(page->next_offset);
  for (const store::AllocationPage::Extent& e : page->extents) {  // asked with `zeros`
    AllocationRange* out = resp->add_ranges();
    out->set_offset(e.offset);
    out->set_length(e.length);
    out->set_allocated(e.allocated);
    out->set_zero(e.zero);
  }
  if (req->zeros()) return grpc::Status::OK;
  for (const cow::SectorRun& r : page->runs) {
    AllocationRange* out = resp->add_ranges();
    out->set_offset(r.first * kSectorSize);
    out->set_length(r.count * kSectorSize);
    out->set_allocated(r.allocated);
  }
  return grpc::Status::OK;
}

grpc::Status VolumeServiceImpl::CreateSnapshot(grpc::ServerContext* ctx,
                                               const CreateSnapshotRequest* req, Snapshot* resp) {
  CallScope call(calls_);
  if (!call.ok()) return CallTracker::Refusal();
  if (absl::Status s = auth_->Check(*ctx, Access::kAdmin, ""); !s.ok()) return ToGrpc(s);
  // As CommitVolume: a snapshot whose caller went away leaves nothing.
  auto info = store_->CreateSnapshot(req->volume(), req->name(),
                                     [ctx] { return ctx->IsCancelled(); });
  if (!info.ok()) return ToGrpc(info.status());
  Fill(*info, resp);
  return grpc::Status::OK;
}

grpc::Status VolumeServiceImpl::GetSnapshot(grpc::ServerContext* ctx, const GetSnapshotRequest* req,
                                            Snapshot* resp) {
  CallScope call(calls_);
  if (!call.ok()) return CallTracker::Refusal();
  if (absl::Status s = auth_->Check(*ctx, Access::kAdmin, ""); !s.ok()) return ToGrpc(s);
  auto info = store_->GetSnapshot(req->name());
  if (!info.ok()) return ToGrpc(info.status());
  Fill(*info, resp);
  return grpc::Status::OK;
}

grpc::Status VolumeServiceImpl::ListSnapshots(grpc::ServerContext* ctx,
                                              const ListSnapshotsRequest* req,
                                              ListSnapshotsResponse* resp) {
  CallScope call(calls_);
  if (!call.ok()) return CallTracker::Refusal();
  if (absl::Status s = auth_->Check(*ctx, Access::kAdmin, ""); !s.ok()) return ToGrpc(s);
  if (!req->source_volume().empty()) {
    if (absl::Status s = store::ValidateName("source_volume", req->source_volume()); !s.ok()) {
      return ToGrpc(s);
    }
  }
  const uint32_t limit = PageSize(req->page_size());
  std::vector<store::SnapshotInfo> page =
      store_->ListSnapshots(req->source_volume(), req->page_token(), limit);
  for (const store::SnapshotInfo& i : page) Fill(i, resp->add_snapshots());
  if (page.size() == limit &&
      !store_->ListSnapshots(req->source_volume(), page.back().name, 1).empty()) {
    resp->set_next_page_token(page.back().name);
  }
  return grpc::Status::OK;
}

grpc::Status VolumeServiceImpl::DeleteSnapshot(grpc::ServerContext* ctx,
                                               const DeleteSnapshotRequest* req,
                                               DeleteSnapshotResponse*) {
  CallScope call(calls_);
  if (!call.ok()) return CallTracker::Refusal();
  if (absl::Status s = auth_->Check(*ctx, Access::kAdmin, ""); !s.ok()) return ToGrpc(s);
  return ToGrpc(store_->DeleteSnapshot(req->name()));
}

grpc::Status VolumeServiceImpl::UploadImage(grpc::ServerContext* ctx,
                                            grpc::ServerReader<UploadImageRequest>* reader,
                                            Image* resp) {
  CallScope call(calls_);
  if (!call.ok()) return CallTracker::Refusal();
  if (absl::Status s = auth_->Check(*ctx, Access::kAdmin, ""); !s.ok()) return ToGrpc(s);
  UploadImageRequest msg;
  if (!reader->Read(&msg)) {
    return grpc::Status(grpc::StatusCode::INVALID_ARGUMENT, "name: no message received");
  }
  auto upload = store_->StartUpload(msg.name(), msg.size_bytes());
  if (!upload.ok()) return ToGrpc(upload.status());
  const std::string name = msg.name();
  do {
    if (!msg.name().empty() && msg.name() != name) {
      return grpc::Status(grpc::StatusCode::INVALID_ARGUMENT,
                          "name: one UploadImage call uploads one image");
    }
    if (absl::Status s = (*upload)->Append(msg.data()); !s.ok()) return ToGrpc(s);
    if (absl::Status s = (*upload)->AppendZeros(msg.zero_bytes()); !s.ok()) return ToGrpc(s);
  } while (reader->Read(&msg));
  if (ctx->IsCancelled()) return grpc::Status::CANCELLED;
  auto info = (*upload)->Finish();
  if (!info.ok()) return ToGrpc(info.status());
  Fill(*info, resp);
  return grpc::Status::OK;
}

grpc::Status VolumeServiceImpl::ListImages(grpc::ServerContext* ctx, const ListImagesRequest* req,
                                           ListImagesResponse* resp) {
  CallScope call(calls_);
  if (!call.ok()) return CallTracker::Refusal();
  if (absl::Status s = auth_->Check(*ctx, Access::kAdmin, ""); !s.ok()) return ToGrpc(s);
  const uint32_t limit = PageSize(req->page_size());
  std::vector<store::ImageInfo> page = store_->ListImages(req->page_token(), limit);
  for (const store::ImageInfo& i : page) Fill(i, resp->add_images());
  if (page.size() == limit && !store_->ListImages(page.back().name, 1).empty()) {
    resp->set_next_page_token(page.back().name);
  }
  return grpc::Status::OK;
}

grpc::Status VolumeServiceImpl::GetImage(grpc::ServerContext* ctx, const GetImageRequest* req,
                                         Image* resp) {
  CallScope call(calls_);
  if (!call.ok()) return CallTracker::Refusal();
  if (absl::Status s = auth_->Check(*ctx, Access::kAdmin, ""); !s.ok()) return ToGrpc(s);
  auto info = store_->GetImage(req->name());
  if (!info.ok()) return ToGrpc(info.status());
  Fill(*info, resp);
  return grpc::Status::OK;
}

grpc::Status VolumeServiceImpl::DeleteImage(grpc::ServerContext* ctx, const DeleteImageRequest* req,
                                            DeleteImageResponse*) {
  CallScope call(calls_);
  if (!call.ok()) return CallTracker::Refusal();
  if (absl::Status s = auth_->Check(*ctx, Access::kAdmin, ""); !s.ok()) return ToGrpc(s);
  return ToGrpc(store_->DeleteImage(req->name()));
}

}  // namespace cowblk::rpc
