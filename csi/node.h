// cowblk-csi's Node service (csi.v1): a cowblk volume as a filesystem or a
// block device on this node, without the kernel's nbd module, by the path
// docs/attach.md documents and tests:
//
//   cowblk nbd (a gateway process: NBD on a Unix socket, gRPC to cowblkd)
//     -> nbdfuse (the volume as one file in a FUSE mount)
//     -> losetup (that file as /dev/loopN)
//     -> mkfs on first use (ext4 or xfs), mount at the staging path
//
// NodeStageVolume builds that chain, NodePublishVolume bind-mounts the
// staged filesystem (or the loop device, for volumeMode: Block) at the
// target path, and the Unstage/Unpublish calls take it apart in reverse:
// unmount, loop device off, FUSE off, gateway stopped with SIGTERM (which
// answers what is in flight and flushes every volume before it exits).
//
// Every staged volume has a directory under the state directory,
// SERVER_VOLUME/ (server names have no '_'), with the gateway's socket and
// pid file, the FUSE mount point, nbdfuse's log and state.json (what was
// staged where). The gateway and nbdfuse run in sessions of their own, so
// they outlive a restart of the plugin process: a new plugin with the same
// state directory finds the staged volumes there and unpublishes and
// unstages them as its predecessor would have.
//
// Each call is idempotent as the CSI spec requires: staging a staged volume
// at the same path, or unstaging one that is not staged, succeeds. Calls on
// one volume are serialized; a second call while one runs fails ABORTED,
// which the kubelet retries.
//
// Thread-safety: every method may be called from any thread.

#ifndef COWBLK_CSI_NODE_H_
#define COWBLK_CSI_NODE_H_

#include <mutex>
#include <set>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "client/cli/connection.h"
#include "csi/controller.h"
#include "csi/v1/csi.grpc.pb.h"

namespace cowblk::csi {

struct NodeOptions {
  std::string node_id;
  std::string zone;  // "" : none
  // Where staged volumes keep their gateway, FUSE mount and state.
  std::string state_dir = "/var/lib/cowblk-csi";
  // The cowblk CLI that runs the gateway (`cowblk nbd`).
  std::string cowblk_bin = "cowblk";
  std::string nbdfuse_bin = "nbdfuse";
  // How the gateway connects to cowblkd: the plugin's own connection flags
  // (the cowblk CLI's global flags; `server` is unused: each volume's
  // server comes from its id). The secrets of a NodeStageVolume request
  // (the StorageClass's node-stage secret) replace them key by key:
  // `ca.crt` (--tls-ca), `tls.crt` and `tls.key` (--tls-cert, --tls-key),
  // `token` (the bearer token itself).
  cli::ConnectionFlags gateway;
  // Seconds a gateway or nbdfuse may take to start or stop.
  int step_timeout_seconds = 60;
};

class NodeService final : public ::csi::v1::Node::Service {
 public:
  // `driver` resolves the server of a volume id; it must outlive this.
  NodeService(Driver* driver, NodeOptions options);

  grpc::Status NodeStageVolume(grpc::ServerContext*, const ::csi::v1::NodeStageVolumeRequest* req,
                               ::csi::v1::NodeStageVolumeResponse*) override;
  grpc::Status NodeUnstageVolume(grpc::ServerContext*,
                                 const ::csi::v1::NodeUnstageVolumeRequest* req,
                                 ::csi::v1::NodeUnstageVolumeResponse*) override;
  grpc::Status NodePublishVolume(grpc::ServerContext*,
                                 const ::csi::v1::NodePublishVolumeRequest* req,
                                 ::csi::v1::NodePublishVolumeResponse*) override;
  grpc::Status NodeUnpublishVolume(grpc::ServerContext*,
                                   const ::csi::v1::NodeUnpublishVolumeRequest* req,
                                   ::csi::v1::NodeUnpublishVolumeResponse*) override;
  grpc::Status NodeGetVolumeStats(grpc::ServerContext*,
                                  const ::csi::v1::NodeGetVolumeStatsRequest* req,
                                  ::csi::v1::NodeGetVolumeStatsResponse* resp) override;
  // Grows the staged filesystem to its device. Expansion is offline (the
  // plugin capability): the volume grew on its server while not staged, so
  // the stage that follows sees the new size, and grows an ext4 filesystem
  // before mounting it (e2fsck -f, resize2fs); xfs grows here, mounted
  // (xfs_growfs). A device still smaller than asked is FAILED_PRECONDITION.
  grpc::Status NodeExpandVolume(grpc::ServerContext*, const ::csi::v1::NodeExpandVolumeRequest* req,
                                ::csi::v1::NodeExpandVolumeResponse* resp) override;
  grpc::Status NodeGetCapabilities(grpc::ServerContext*,
                                   const ::csi::v1::NodeGetCapabilitiesRequest*,
                                   ::csi::v1::NodeGetCapabilitiesResponse* resp) override;
  grpc::Status NodeGetInfo(grpc::ServerContext*, const ::csi::v1::NodeGetInfoRequest*,
                           ::csi::v1::NodeGetInfoResponse* resp) override;

 private:
  // Marks `volume_id` busy for the scope of one call; ABORTED if it is.
  class Busy;

  absl::Status Stage(const ::csi::v1::NodeStageVolumeRequest& req);
  absl::Status Unstage(const std::string& volume_id, const std::string& staging_path);

  Driver* const driver_;
  const NodeOptions options_;
  std::mutex mu_;
  std::set<std::string> busy_;  // guarded by mu_
};

}  // namespace cowblk::csi

#endif  // COWBLK_CSI_NODE_H_
