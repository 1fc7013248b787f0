// cowblk-csi's Identity and Controller services (csi.v1) over the cowblkd
// servers it is configured with. Each server is a name (the first part of
// every volume id on it), a gRPC address and optionally a zone (the
// topology segment topology.cowblk.io/zone of its volumes); all share the
// connection settings (TLS, token) of ClientOptions.
//
// The controller keeps no state of its own: the servers are the truth. A
// volume is found by asking each server for its cowblk name, so a restart
// loses nothing. Create and delete are serialized by one mutex, which
// makes two concurrent CreateVolume calls of one name yield one volume
// (the external-provisioner runs one leader).
//
// Thread-safety: every method may be called from any thread.

#ifndef COWBLK_CSI_CONTROLLER_H_
#define COWBLK_CSI_CONTROLLER_H_

#include <cstdint>
#include <mutex>
#include <string>
#include <vector>

#include "cowblk/client.h"
#include "csi/placement.h"
#include "csi/v1/csi.grpc.pb.h"

namespace cowblk::csi {

inline constexpr char kDefaultDriverName[] = "csi.cowblk.io";

struct ServerConfig {
  std::string name;     // [a-z0-9][a-z0-9.-]{0,62}: no '/'
  std::string address;  // HOST:PORT
  std::string zone;     // "" : none
};

struct DriverOptions {
  std::string driver_name = kDefaultDriverName;
  std::vector<ServerConfig> servers;
  // The connection settings for every server (target is ignored).
  ClientOptions client;
  // The size of a volume whose capacity_range requires nothing.
  uint64_t default_size = uint64_t{1} << 30;
};

// Parses "NAME=HOST:PORT" or "NAME=HOST:PORT@ZONE". InvalidArgument with
// the reason.
absl::StatusOr<ServerConfig> ParseServer(const std::string& text);

class Driver {
 public:
  // InvalidArgument for no servers, a bad or repeated server name.
  static absl::StatusOr<std::unique_ptr<Driver>> Create(const DriverOptions& options);

  const DriverOptions& options() const { return options_; }
  bool has_zones() const;

  // One server by name; nullptr when none has it.
  Client* server(const std::string& name);
  const ServerConfig* config(const std::string& name) const;

  // The placement's view of every server, asking each for its ServerInfo.
  std::vector<Candidate> Candidates();

  // Serializes CreateVolume and DeleteVolume.
  std::mutex& admin_mutex() { return admin_mu_; }

 private:
  explicit Driver(const DriverOptions& options) : options_(options) {}
  DriverOptions options_;
  std::vector<Client> clients_;  // one per options_.servers, same order
  std::mutex admin_mu_;
};

class IdentityService final : public ::csi::v1::Identity::Service {
 public:
  // `controller`: whether this process serves the Controller service (a
  // node plugin started with --no-controller does not, and must not say so).
  explicit IdentityService(Driver* driver, bool controller = true)
      : driver_(driver), controller_(controller) {}
  grpc::Status GetPluginInfo(grpc::ServerContext*, const ::csi::v1::GetPluginInfoRequest*,
                             ::csi::v1::GetPluginInfoResponse* resp) override;
  grpc::Status GetPluginCapabilities(grpc::ServerContext*,
                                     const ::csi::v1::GetPluginCapabilitiesRequest*,
                                     ::csi::v1::GetPluginCapabilitiesResponse* resp) override;
  // Ready when at least one server answers.
  grpc::Status Probe(grpc::ServerContext*, const ::csi::v1::ProbeRequest*,
                     ::csi::v1::ProbeResponse* resp) override;

 private:
  Driver* const driver_;
  const bool controller_;
};

class ControllerService final : public ::csi::v1::Controller::Service {
 public:
  explicit ControllerService(Driver* driver) : driver_(driver) {}
  grpc::Status CreateVolume(grpc::ServerContext*, const ::csi::v1::CreateVolumeRequest* req,
                            ::csi::v1::CreateVolumeResponse* resp) override;
  grpc::Status DeleteVolume(grpc::ServerContext*, const ::csi::v1::DeleteVolumeRequest* req,
                            ::csi::v1::DeleteVolumeResponse* resp) override;
  grpc::Status ValidateVolumeCapabilities(
      grpc::ServerContext*, const ::csi::v1::ValidateVolumeCapabilitiesRequest* req,
      ::csi::v1::ValidateVolumeCapabilitiesResponse* resp) override;
  grpc::Status ListVolumes(grpc::ServerContext*, const ::csi::v1::ListVolumesRequest* req,
                           ::csi::v1::ListVolumesResponse* resp) override;
  grpc::Status GetCapacity(grpc::ServerContext*, const ::csi::v1::GetCapacityRequest* req,
                           ::csi::v1::GetCapacityResponse* resp) override;
  grpc::Status ControllerGetCapabilities(
      grpc::ServerContext*, const ::csi::v1::ControllerGetCapabilitiesRequest*,
      ::csi::v1::ControllerGetCapabilitiesResponse* resp) override;
  // Grows the volume with ResizeVolume (blank volumes only: a volume over
  // an image is FAILED_PRECONDITION); a range it already satisfies is
  // answered with its size. node_expansion_required unless it is used as a
  // block device.
  grpc::Status ControllerExpandVolume(grpc::ServerContext*,
                                      const ::csi::v1::ControllerExpandVolumeRequest* req,
                                      ::csi::v1::ControllerExpandVolumeResponse* resp) override;
  // Snapshots: a cowblk snapshot (an image of the volume at one moment) on
  // the source volume's server; the snapshot id is "SERVER/NAME" with NAME
  // as VolumeNameFor maps the CSI name. Idempotent by name: the same
  // source gives the same snapshot, another ALREADY_EXISTS.
  grpc::Status CreateSnapshot(grpc::ServerContext*, const ::csi::v1::CreateSnapshotRequest* req,
                              ::csi::v1::CreateSnapshotResponse* resp) override;
  // Idempotent: an unknown id is deleted already. While volumes made from
  // it live, the server hides it and removes its image with the last.
  grpc::Status DeleteSnapshot(grpc::ServerContext*, const ::csi::v1::DeleteSnapshotRequest* req,
                              ::csi::v1::DeleteSnapshotResponse* resp) override;
  // By snapshot id, by source volume id, or all; in snapshot id order,
  // paged as ListVolumes (ABORTED for a token this plugin did not give).
  grpc::Status ListSnapshots(grpc::ServerContext*, const ::csi::v1::ListSnapshotsRequest* req,
                             ::csi::v1::ListSnapshotsResponse* resp) override;

 private:
  // CreateVolume from a volume (CloneVolume on the source's server), with
  // the lock held and the name known to be free.
  grpc::Status CreateClone(const ::csi::v1::CreateVolumeRequest& req, const std::string& name,
                           const ParsedId& source, const TopologyRequirement& topology,
                           ::csi::v1::CreateVolumeResponse* resp);
  // CreateVolume from a snapshot: a volume over the snapshot's image on
  // its server, with the lock held and the name known to be free.
  grpc::Status CreateFromSnapshot(const ::csi::v1::CreateVolumeRequest& req,
                                  const std::string& name, const ParsedId& snapshot,
                                  const TopologyRequirement& topology,
                                  ::csi::v1::CreateVolumeResponse* resp);
  // The CSI Volume of a cowblk volume on `server`.
  void Fill(const std::string& server, const VolumeInfo& v, ::csi::v1::Volume* out) const;
  Driver* const driver_;
};

}  // namespace cowblk::csi

#endif  // COWBLK_CSI_CONTROLLER_H_
