// cowblk.v1.VolumeService: administrative calls, on gRPC's synchronous
// thread pool (a commit or an upload may take a while; no I/O path waits).

#ifndef COWBLK_SERVER_TRANSPORT_GRPC_VOLUME_SERVICE_H_
#define COWBLK_SERVER_TRANSPORT_GRPC_VOLUME_SERVICE_H_

#include "cowblk/v1/volume.grpc.pb.h"
#include "server/store/store.h"
#include "server/transport/grpc/auth.h"
#include "server/transport/grpc/call_tracker.h"

namespace cowblk::rpc {

struct VolumeServiceOptions {
  // The port of the server's NBD export, told in every answer about a
  // servable volume (Volume.nbd_port); 0: the server has none.
  uint32_t nbd_port = 0;
  // The NBD export's address as bound ("HOST:PORT"), for GetServerInfo;
  // empty: none.
  std::string nbd_address;
};

class VolumeServiceImpl final : public cowblk::v1::VolumeService::Service {
 public:
  // `store` and `auth` must outlive the service.
  VolumeServiceImpl(store::Store* store, const Authorizer* auth, CallTracker* calls,
                    const VolumeServiceOptions& options = {})
      : store_(store), auth_(auth), calls_(calls), options_(options) {}

  grpc::Status CreateVolume(grpc::ServerContext* ctx, const cowblk::v1::CreateVolumeRequest* req,
                            cowblk::v1::Volume* resp) override;
  grpc::Status GetVolume(grpc::ServerContext* ctx, const cowblk::v1::GetVolumeRequest* req,
                         cowblk::v1::Volume* resp) override;
  grpc::Status ListVolumes(grpc::ServerContext* ctx, const cowblk::v1::ListVolumesRequest* req,
                           cowblk::v1::ListVolumesResponse* resp) override;
  grpc::Status DeleteVolume(grpc::ServerContext* ctx, const cowblk::v1::DeleteVolumeRequest* req,
                            cowblk::v1::DeleteVolumeResponse* resp) override;
  grpc::Status CommitVolume(grpc::ServerContext* ctx, const cowblk::v1::CommitVolumeRequest* req,
                            cowblk::v1::Image* resp) override;
  grpc::Status GetAllocation(grpc::ServerContext* ctx, const cowblk::v1::GetAllocationRequest* req,
                             cowblk::v1::GetAllocationResponse* resp) override;
  grpc::Status RebaseVolume(grpc::ServerContext* ctx, const cowblk::v1::RebaseVolumeRequest* req,
                            cowblk::v1::Volume* resp) override;
  grpc::Status CloneVolume(grpc::ServerContext* ctx, const cowblk::v1::CloneVolumeRequest* req,
                           cowblk::v1::Volume* resp) override;
  grpc::Status ResizeVolume(grpc::ServerContext* ctx, const cowblk::v1::ResizeVolumeRequest* req,
                            cowblk::v1::Volume* resp) override;
  grpc::Status GetServerInfo(grpc::ServerContext* ctx, const cowblk::v1::GetServerInfoRequest* req,
                             cowblk::v1::ServerInfo* resp) override;
  grpc::Status CreateSnapshot(grpc::ServerContext* ctx,
                              const cowblk::v1::CreateSnapshotRequest* req,
                              cowblk::v1::Snapshot* resp) override;
  grpc::Status GetSnapshot(grpc::ServerContext* ctx, const cowblk::v1::GetSnapshotRequest* req,
                           cowblk::v1::Snapshot* resp) override;
  grpc::Status ListSnapshots(grpc::ServerContext* ctx, const cowblk::v1::ListSnapshotsRequest* req,
                             cowblk::v1::ListSnapshotsResponse* resp) override;
  grpc::Status DeleteSnapshot(grpc::ServerContext* ctx,
                              const cowblk::v1::DeleteSnapshotRequest* req,
                              cowblk::v1::DeleteSnapshotResponse* resp) override;
  grpc::Status UploadImage(grpc::ServerContext* ctx,
                           grpc::ServerReader<cowblk::v1::UploadImageRequest>* reader,
                           cowblk::v1::Image* resp) override;
  grpc::Status ListImages(grpc::ServerContext* ctx, const cowblk::v1::ListImagesRequest* req,
                          cowblk::v1::ListImagesResponse* resp) override;
  grpc::Status GetImage(grpc::ServerContext* ctx, const cowblk::v1::GetImageRequest* req,
                        cowblk::v1::Image* resp) override;
  grpc::Status DeleteImage(grpc::ServerContext* ctx, const cowblk::v1::DeleteImageRequest* req,
                           cowblk::v1::DeleteImageResponse* resp) override;

 private:
  // A volume as the API describes it, with what a client needs to reach it
  // over the NBD export (port, epoch) when it is servable.
  void FillVolume(const store::VolumeInfo& info, cowblk::v1::Volume* out) const;

  store::Store* const store_;
  const Authorizer* const auth_;
  CallTracker* const calls_;
  const VolumeServiceOptions options_;
};

}  // namespace cowblk::rpc

#endif  // COWBLK_SERVER_TRANSPORT_GRPC_VOLUME_SERVICE_H_
