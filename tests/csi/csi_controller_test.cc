// cowblk-csi's Identity and Controller services over the plugin's real
// Unix socket, with two real cowblkd servers ("a" and "b") behind it: what
// the external-provisioner and kubelet rely on (idempotent create and
// delete by name, capacity ranges, placement by room, the spec's error
// codes).

#include <grpcpp/grpcpp.h>

#include <chrono>
#include <memory>
#include <set>
#include <algorithm>
#include <string>
#include <vector>

#include "cowblk/client.h"
#include "csi/v1/csi.grpc.pb.h"
#include "gtest/gtest.h"
#include "tests/support/child_process.h"
#include "tests/support/cowblkd_process.h"
#include "tests/support/scratch.h"

namespace cowblk {
namespace {

using namespace ::csi::v1;  // NOLINT: the generated messages
using testing::ChildProcess;
using testing::CowblkdProcess;
using testing::TempDir;

constexpr uint64_t kMiB = 1 << 20;

VolumeCapability MountCap(VolumeCapability::AccessMode::Mode mode =
                              VolumeCapability::AccessMode::SINGLE_NODE_WRITER) {
  VolumeCapability c;
  c.mutable_mount()->set_fs_type("ext4");
  c.mutable_access_mode()->set_mode(mode);
  return c;
}

class CsiControllerTest : public ::testing::Test {
 protected:
  void SetUp() override {
    ASSERT_TRUE(a_.Start(dir_a_.path()));
    ASSERT_TRUE(b_.Start(dir_b_.path()));
    StartPlugin({"--server", "a=" + a_.address(), "--server", "b=" + b_.address()});
    ClientOptions o;
    o.target = a_.address();
    auto ca = Client::Create(o);
    o.target = b_.address();
    auto cb = Client::Create(o);
    ASSERT_TRUE(ca.ok() && cb.ok());
    client_a_ = std::make_unique<Client>(*ca);
    client_b_ = std::make_unique<Client>(*cb);
  }

  // Starts cowblk-csi on a fresh socket with these flags; waits until its
  // socket accepts a connection.
  void StartPlugin(std::vector<std::string> flags) {
    identity_.reset();
    controller_.reset();
    channel_.reset();
    plugin_.Stop(SIGTERM);
    socket_ = sock_.File("csi-" + std::to_string(++plugins_) + ".sock");
    std::vector<std::string> argv = {COWBLK_CSI_BIN, "--endpoint", "unix://" + socket_,
                                     "--default-size", std::to_string(4 * kMiB), "--timeout",
                                     "10"};
    argv.insert(argv.end(), flags.begin(), flags.end());
    ASSERT_TRUE(plugin_.Start(argv));
    channel_ = grpc::CreateChannel("unix://" + socket_, grpc::InsecureChannelCredentials());
    ASSERT_TRUE(channel_->WaitForConnected(std::chrono::system_clock::now() +
                                           std::chrono::seconds(30)))
        << "cowblk-csi did not listen on " << socket_;
    identity_ = Identity::NewStub(channel_);
    controller_ = Controller::NewStub(channel_);
  }

  grpc::Status Create(const std::string& name, int64_t required, int64_t limit,
                      CreateVolumeResponse* resp) {
    CreateVolumeRequest req;
    req.set_name(name);
    if (required != 0 || limit != 0) {
      req.mutable_capacity_range()->set_required_bytes(required);
      req.mutable_capacity_range()->set_limit_bytes(limit);
    }
    *req.add_volume_capabilities() = MountCap();
    grpc::ClientContext ctx;
    return controller_->CreateVolume(&ctx, req, resp);
  }

  grpc::Status Delete(const std::string& id) {
    DeleteVolumeRequest req;
    req.set_volume_id(id);
    DeleteVolumeResponse resp;
    grpc::ClientContext ctx;
    return controller_->DeleteVolume(&ctx, req, &resp);
  }

  uint32_t VolumesOn(Client& c) {
    auto info = c.GetServerInfo();
    EXPECT_TRUE(info.ok()) << info.status();
    return info.ok() ? info->volume_count : 0;
  }

  // Provisions (without writing) a blank volume on `c` whose size is
  // `fraction` of the server's free bytes: the server then has that much
  // less room for new volumes.
  void Provision(Client& c, const std::string& name, double fraction) {
    auto info = c.GetServerInfo();
    ASSERT_TRUE(info.ok()) << info.status();
    uint64_t size = static_cast<uint64_t>(static_cast<double>(info->free_bytes) * fraction);
    size = std::min(size, info->max_volume_size_bytes) / 512 * 512;
    ASSERT_TRUE(c.CreateVolume(name, size).ok());
  }

  TempDir dir_a_, dir_b_, sock_;
  CowblkdProcess a_, b_;
  ChildProcess plugin_{SIGTERM};
  int plugins_ = 0;
  std::string socket_;
  std::shared_ptr<grpc::Channel> channel_;
  std::unique_ptr<Identity::Stub> identity_;
  std::unique_ptr<Controller::Stub> controller_;
  std::unique_ptr<Client> client_a_, client_b_;
};

TEST_F(CsiControllerTest, IdentityNamesTheDriverAndItsControllerAndIsReady) {
  GetPluginInfoResponse info;
  {
    grpc::ClientContext ctx;
    ASSERT_TRUE(identity_->GetPluginInfo(&ctx, GetPluginInfoRequest(), &info).ok());
  }
  EXPECT_EQ(info.name(), "csi.cowblk.io");
  EXPECT_FALSE(info.vendor_version().empty());
  GetPluginCapabilitiesResponse caps;
  {
    grpc::ClientContext ctx;
    ASSERT_TRUE(identity_->GetPluginCapabilities(&ctx, GetPluginCapabilitiesRequest(), &caps).ok());
  }
  // No zones configured: no topology; offline expansion.
  ASSERT_EQ(caps.capabilities_size(), 2);
  EXPECT_EQ(caps.capabilities(0).service().type(), PluginCapability::Service::CONTROLLER_SERVICE);
  EXPECT_EQ(caps.capabilities(1).volume_expansion().type(),
            PluginCapability::VolumeExpansion::OFFLINE);
  ProbeResponse probe;
  grpc::ClientContext ctx;
  ASSERT_TRUE(identity_->Probe(&ctx, ProbeRequest(), &probe).ok());
  EXPECT_TRUE(probe.ready().value());
}

TEST_F(CsiControllerTest, CreateTwiceWithTheSameNameAndSizeGivesTheSameVolume) {
  CreateVolumeResponse first, second;
  ASSERT_TRUE(Create("pvc-1", kMiB, 0, &first).ok());
  ASSERT_TRUE(Create("pvc-1", kMiB, 0, &second).ok());
  EXPECT_EQ(first.volume().volume_id(), second.volume().volume_id());
  EXPECT_EQ(second.volume().capacity_bytes(), static_cast<int64_t>(kMiB));
  EXPECT_EQ(VolumesOn(*client_a_) + VolumesOn(*client_b_), 1u);
  // The id names the server and the volume.
  const std::string& id = first.volume().volume_id();
  EXPECT_TRUE(id == "a/pvc-1" || id == "b/pvc-1") << id;
}

TEST_F(CsiControllerTest, CreateWithTheSameNameAndAnotherSizeIsAlreadyExists) {
  CreateVolumeResponse resp;
  ASSERT_TRUE(Create("pvc-1", kMiB, 0, &resp).ok());
  CreateVolumeResponse again;
  grpc::Status s = Create("pvc-1", 2 * kMiB, 0, &again);
  EXPECT_EQ(s.error_code(), grpc::StatusCode::ALREADY_EXISTS) << s.error_message();
  EXPECT_EQ(VolumesOn(*client_a_) + VolumesOn(*client_b_), 1u);
}

TEST_F(CsiControllerTest, CapacityRangesAreHonoured) {
  CreateVolumeResponse resp;
  // Rounded up to a whole sector.
  ASSERT_TRUE(Create("up", 1000, 0, &resp).ok());
  EXPECT_EQ(resp.volume().capacity_bytes(), 1024);
  // Nothing required: the default size (--default-size), within the limit.
  ASSERT_TRUE(Create("default", 0, 0, &resp).ok());
  EXPECT_EQ(resp.volume().capacity_bytes(), static_cast<int64_t>(4 * kMiB));
  ASSERT_TRUE(Create("limited", 0, 2 * kMiB, &resp).ok());
  EXPECT_EQ(resp.volume().capacity_bytes(), static_cast<int64_t>(2 * kMiB));
  // No multiple of 512 in [1000, 1000], a limit below the requirement,
  // negative bytes: refused, nothing made.
  EXPECT_EQ(Create("none", 1000, 1000, &resp).error_code(), grpc::StatusCode::OUT_OF_RANGE);
  EXPECT_EQ(Create("none", 4096, 2048, &resp).error_code(), grpc::StatusCode::OUT_OF_RANGE);
  EXPECT_EQ(Create("none", -1, 0, &resp).error_code(), grpc::StatusCode::INVALID_ARGUMENT);
  EXPECT_EQ(VolumesOn(*client_a_) + VolumesOn(*client_b_), 3u);
}

TEST_F(CsiControllerTest, PlacementGoesToTheServerWithMoreRoom) {
  // Both data directories share one file system: what differs is what
  // their volumes were promised.
  Provision(*client_a_, "big", 0.5);
  CreateVolumeResponse resp;
  ASSERT_TRUE(Create("pvc-1", kMiB, 0, &resp).ok());
  EXPECT_EQ(resp.volume().volume_id(), "b/pvc-1");
  Provision(*client_b_, "bigger", 0.75);
  ASSERT_TRUE(Create("pvc-2", kMiB, 0, &resp).ok());
  EXPECT_EQ(resp.volume().volume_id(), "a/pvc-2");
}

TEST_F(CsiControllerTest, CreateLargerThanAnyServerHoldsIsResourceExhausted) {
  auto info = client_a_->GetServerInfo();
  ASSERT_TRUE(info.ok());
  CreateVolumeResponse resp;
  const int64_t huge = static_cast<int64_t>(info->capacity_bytes) * 2 / 512 * 512;
  grpc::Status s = Create("huge", huge, 0, &resp);
  EXPECT_EQ(s.error_code(), grpc::StatusCode::RESOURCE_EXHAUSTED) << s.error_message();
  EXPECT_EQ(VolumesOn(*client_a_) + VolumesOn(*client_b_), 0u);
}

TEST_F(CsiControllerTest, DeleteIsIdempotent) {
  CreateVolumeResponse resp;
  ASSERT_TRUE(Create("pvc-1", kMiB, 0, &resp).ok());
  ASSERT_EQ(VolumesOn(*client_a_) + VolumesOn(*client_b_), 1u);
  EXPECT_TRUE(Delete(resp.volume().volume_id()).ok());
  EXPECT_EQ(VolumesOn(*client_a_) + VolumesOn(*client_b_), 0u);
  EXPECT_TRUE(Delete(resp.volume().volume_id()).ok());
  // Ids no cowblk-csi made name no volume: deleted already.
  EXPECT_TRUE(Delete("not-an-id").ok());
  EXPECT_TRUE(Delete("c/pvc-1").ok());
  EXPECT_EQ(Delete("").error_code(), grpc::StatusCode::INVALID_ARGUMENT);
}

TEST_F(CsiControllerTest, RequestsWithoutRequiredFieldsAreInvalidArgument) {
  CreateVolumeResponse resp;
  EXPECT_EQ(Create("", kMiB, 0, &resp).error_code(), grpc::StatusCode::INVALID_ARGUMENT);
  CreateVolumeRequest req;
  req.set_name("no-caps");
  grpc::ClientContext ctx;
  EXPECT_EQ(controller_->CreateVolume(&ctx, req, &resp).error_code(),
            grpc::StatusCode::INVALID_ARGUMENT);
  // A mode cowblk cannot serve (many writing nodes) is refused up front.
  *req.add_volume_capabilities() = MountCap(VolumeCapability::AccessMode::MULTI_NODE_MULTI_WRITER);
  grpc::ClientContext ctx2;
  EXPECT_EQ(controller_->CreateVolume(&ctx2, req, &resp).error_code(),
            grpc::StatusCode::INVALID_ARGUMENT);
  EXPECT_EQ(VolumesOn(*client_a_) + VolumesOn(*client_b_), 0u);
}

TEST_F(CsiControllerTest, ValidateVolumeCapabilitiesConfirmsOnlyWhatCowblkServes) {
  CreateVolumeResponse created;
  ASSERT_TRUE(Create("pvc-1", kMiB, 0, &created).ok());
  ValidateVolumeCapabilitiesRequest req;
  req.set_volume_id(created.volume().volume_id());
  *req.add_volume_capabilities() = MountCap();
  ValidateVolumeCapabilitiesResponse resp;
  {
    grpc::ClientContext ctx;
    ASSERT_TRUE(controller_->ValidateVolumeCapabilities(&ctx, req, &resp).ok());
  }
  EXPECT_TRUE(resp.has_confirmed());
  *req.add_volume_capabilities() = MountCap(VolumeCapability::AccessMode::MULTI_NODE_MULTI_WRITER);
  resp.Clear();
  {
    grpc::ClientContext ctx;
    ASSERT_TRUE(controller_->ValidateVolumeCapabilities(&ctx, req, &resp).ok());
  }
  EXPECT_FALSE(resp.has_confirmed());
  EXPECT_FALSE(resp.message().empty());
  req.set_volume_id("a/no-such-volume");
  grpc::ClientContext ctx;
  EXPECT_EQ(controller_->ValidateVolumeCapabilities(&ctx, req, &resp).error_code(),
            grpc::StatusCode::NOT_FOUND);
  req.clear_volume_capabilities();
  req.set_volume_id(created.volume().volume_id());
  grpc::ClientContext ctx2;
  EXPECT_EQ(controller_->ValidateVolumeCapabilities(&ctx2, req, &resp).error_code(),
            grpc::StatusCode::INVALID_ARGUMENT);
}

TEST_F(CsiControllerTest, ListVolumesPagesOverBothServers) {
  ASSERT_TRUE(client_a_->CreateVolume("x1", kMiB).ok());
  ASSERT_TRUE(client_b_->CreateVolume("x2", kMiB).ok());
  ASSERT_TRUE(client_b_->CreateVolume("x3", kMiB).ok());
  ListVolumesRequest req;
  req.set_max_entries(2);
  ListVolumesResponse page1, page2;
  {
    grpc::ClientContext ctx;
    ASSERT_TRUE(controller_->ListVolumes(&ctx, req, &page1).ok());
  }
  ASSERT_EQ(page1.entries_size(), 2);
  EXPECT_EQ(page1.entries(0).volume().volume_id(), "a/x1");
  EXPECT_EQ(page1.entries(1).volume().volume_id(), "b/x2");
  ASSERT_FALSE(page1.next_token().empty());
  req.set_starting_token(page1.next_token());
  {
    grpc::ClientContext ctx;
    ASSERT_TRUE(controller_->ListVolumes(&ctx, req, &page2).ok());
  }
  ASSERT_EQ(page2.entries_size(), 1);
  EXPECT_EQ(page2.entries(0).volume().volume_id(), "b/x3");
  EXPECT_TRUE(page2.next_token().empty());
  req.set_starting_token("garbage");
  grpc::ClientContext ctx;
  EXPECT_EQ(controller_->ListVolumes(&ctx, req, &page2).error_code(), grpc::StatusCode::ABORTED);
}

TEST_F(CsiControllerTest, GetCapacityIsWhatTheServersMayStillHold) {
  GetCapacityRequest req;
  *req.add_volume_capabilities() = MountCap();
  GetCapacityResponse resp;
  {
    grpc::ClientContext ctx;
    ASSERT_TRUE(controller_->GetCapacity(&ctx, req, &resp).ok());
  }
  EXPECT_GT(resp.available_capacity(), 0);
  EXPECT_GT(resp.maximum_volume_size().value(), 0);
  EXPECT_LE(resp.maximum_volume_size().value(), resp.available_capacity());
  // Capabilities cowblk cannot serve: no capacity for them.
  *req.add_volume_capabilities() = MountCap(VolumeCapability::AccessMode::MULTI_NODE_MULTI_WRITER);
  grpc::ClientContext ctx;
  ASSERT_TRUE(controller_->GetCapacity(&ctx, req, &resp).ok());
  EXPECT_EQ(resp.available_capacity(), 0);
}

TEST_F(CsiControllerTest, ExpandGrowsTheVolumeKeepingItsData) {
  CreateVolumeResponse created;
  ASSERT_TRUE(Create("pvc-1", kMiB, 0, &created).ok());
  const std::string server = created.volume().volume_id().substr(0, 1);
  Client& holder = server == "a" ? *client_a_ : *client_b_;
  const std::string data(4096, 'y');
  {
    auto v = holder.OpenVolume("pvc-1");
    ASSERT_TRUE(v.ok()) << v.status();
    ASSERT_TRUE((*v)->Write(kMiB - 4096, data.data(), data.size()).ok());
  }
  ControllerExpandVolumeRequest req;
  req.set_volume_id(created.volume().volume_id());
  *req.mutable_volume_capability() = MountCap();
  req.mutable_capacity_range()->set_required_bytes(kMiB);
  ControllerExpandVolumeResponse resp;
  {
    grpc::ClientContext ctx;
    ASSERT_TRUE(controller_->ControllerExpandVolume(&ctx, req, &resp).ok());
  }
  EXPECT_EQ(resp.capacity_bytes(), static_cast<int64_t>(kMiB));  // satisfied already
  req.mutable_capacity_range()->set_required_bytes(20 * kMiB);
  for (int i = 0; i < 2; ++i) {  // idempotent
    grpc::ClientContext ctx;
    grpc::Status s = controller_->ControllerExpandVolume(&ctx, req, &resp);
    ASSERT_TRUE(s.ok()) << s.error_message();
    EXPECT_EQ(resp.capacity_bytes(), static_cast<int64_t>(20 * kMiB));
  }
  auto info = holder.GetVolume("pvc-1");
  ASSERT_TRUE(info.ok());
  EXPECT_EQ(info->size_bytes, 20 * kMiB);
  auto v = holder.OpenVolume("pvc-1");
  ASSERT_TRUE(v.ok()) << v.status();
  std::string back(4096, '\0');
  ASSERT_TRUE((*v)->Read(kMiB - 4096, back.data(), back.size()).ok());
  EXPECT_EQ(back, data);
  // Shrinking, and no such volume.
  req.mutable_capacity_range()->set_required_bytes(kMiB);
  req.mutable_capacity_range()->set_limit_bytes(kMiB);
  {
    grpc::ClientContext ctx;
    EXPECT_EQ(controller_->ControllerExpandVolume(&ctx, req, &resp).error_code(),
              grpc::StatusCode::OUT_OF_RANGE);
  }
  req.set_volume_id("a/no-such-volume");
  grpc::ClientContext ctx;
  EXPECT_EQ(controller_->ControllerExpandVolume(&ctx, req, &resp).error_code(),
            grpc::StatusCode::NOT_FOUND);
}

TEST_F(CsiControllerTest, ExpandOfAMountedVolumeAsksTheNodeToGrowItsFilesystem) {
  CreateVolumeResponse created;
  ASSERT_TRUE(Create("pvc-1", kMiB, 0, &created).ok());
  ControllerExpandVolumeRequest req;
  req.set_volume_id(created.volume().volume_id());
  req.mutable_capacity_range()->set_required_bytes(2 * kMiB);
  *req.mutable_volume_capability() = MountCap();
  ControllerExpandVolumeResponse resp;
  {
    grpc::ClientContext ctx;
    ASSERT_TRUE(controller_->ControllerExpandVolume(&ctx, req, &resp).ok());
  }
  EXPECT_TRUE(resp.node_expansion_required());
  // A block device needs nothing on the node.
  req.mutable_capacity_range()->set_required_bytes(3 * kMiB);
  req.mutable_volume_capability()->mutable_block();
  grpc::ClientContext ctx;
  ASSERT_TRUE(controller_->ControllerExpandVolume(&ctx, req, &resp).ok());
  EXPECT_EQ(resp.capacity_bytes(), static_cast<int64_t>(3 * kMiB));
  EXPECT_FALSE(resp.node_expansion_required());
}

TEST_F(CsiControllerTest, CreateWhileAServerIsDownIsUnavailableAndMakesNothing) {
  // The name might exist on the server that does not answer: making it
  // elsewhere could give one claim two volumes.
  ASSERT_EQ(b_.Stop(SIGKILL), 128 + SIGKILL);
  CreateVolumeResponse resp;
  EXPECT_EQ(Create("pvc-1", kMiB, 0, &resp).error_code(), grpc::StatusCode::UNAVAILABLE);
  EXPECT_EQ(VolumesOn(*client_a_), 0u);
}

TEST_F(CsiControllerTest, CreateFromAVolumeClonesItOnItsServer) {
  CreateVolumeResponse src;
  ASSERT_TRUE(Create("pvc-src", kMiB, 0, &src).ok());
  const std::string server = src.volume().volume_id().substr(0, 1);
  Client& holder = server == "a" ? *client_a_ : *client_b_;
  const std::string data(4096, 'x');
  {
    auto v = holder.OpenVolume("pvc-src");
    ASSERT_TRUE(v.ok()) << v.status();
    ASSERT_TRUE((*v)->Write(8192, data.data(), data.size()).ok());
  }
  CreateVolumeRequest req;
  req.set_name("pvc-clone");
  *req.add_volume_capabilities() = MountCap();
  req.mutable_volume_content_source()->mutable_volume()->set_volume_id(src.volume().volume_id());
  CreateVolumeResponse clone, again;
  {
    grpc::ClientContext ctx;
    grpc::Status s = controller_->CreateVolume(&ctx, req, &clone);
    ASSERT_TRUE(s.ok()) << s.error_message();
  }
  EXPECT_EQ(clone.volume().volume_id(), server + "/pvc-clone");
  EXPECT_EQ(clone.volume().capacity_bytes(), static_cast<int64_t>(kMiB));
  EXPECT_EQ(clone.volume().content_source().volume().volume_id(), src.volume().volume_id());
  {
    grpc::ClientContext ctx;
    ASSERT_TRUE(controller_->CreateVolume(&ctx, req, &again).ok());  // idempotent
  }
  EXPECT_EQ(again.volume().volume_id(), clone.volume().volume_id());
  auto v = holder.OpenVolume("pvc-clone");
  ASSERT_TRUE(v.ok()) << v.status();
  std::string back(4096, '\0');
  ASSERT_TRUE((*v)->Read(8192, back.data(), back.size()).ok());
  EXPECT_EQ(back, data);
  // A clone asked larger grows (keeping the data); smaller is refused.
  req.set_name("pvc-bigger");
  req.mutable_capacity_range()->set_required_bytes(2 * kMiB);
  {
    grpc::ClientContext ctx;
    grpc::Status s = controller_->CreateVolume(&ctx, req, &again);
    ASSERT_TRUE(s.ok()) << s.error_message();
  }
  EXPECT_EQ(again.volume().capacity_bytes(), static_cast<int64_t>(2 * kMiB));
  {
    auto big = holder.OpenVolume("pvc-bigger");
    ASSERT_TRUE(big.ok()) << big.status();
    ASSERT_TRUE((*big)->Read(8192, back.data(), back.size()).ok());
    EXPECT_EQ(back, data);
  }
  req.set_name("pvc-smaller");
  req.mutable_capacity_range()->set_required_bytes(0);
  req.mutable_capacity_range()->set_limit_bytes(kMiB / 2);
  {
    grpc::ClientContext ctx;
    EXPECT_EQ(controller_->CreateVolume(&ctx, req, &again).error_code(),
              grpc::StatusCode::OUT_OF_RANGE);
  }
  req.clear_capacity_range();
  req.mutable_volume_content_source()->mutable_volume()->set_volume_id(server + "/no-such");
  grpc::ClientContext ctx;
  EXPECT_EQ(controller_->CreateVolume(&ctx, req, &again).error_code(), grpc::StatusCode::NOT_FOUND);
  EXPECT_EQ(VolumesOn(*client_a_) + VolumesOn(*client_b_), 3u);
}

TEST_F(CsiControllerTest, ZonesRestrictPlacementAndBecomeTopology) {
  StartPlugin({"--server", "a=" + a_.address() + "@z1", "--server", "b=" + b_.address() + "@z2"});
  // b has more room, but the claim requires z1.
  Provision(*client_a_, "big", 0.5);
  CreateVolumeRequest req;
  req.set_name("pvc-z");
  *req.add_volume_capabilities() = MountCap();
  (*req.mutable_accessibility_requirements()->add_requisite()->mutable_segments())
      ["topology.cowblk.io/zone"] = "z1";
  CreateVolumeResponse resp;
  grpc::ClientContext ctx;
  ASSERT_TRUE(controller_->CreateVolume(&ctx, req, &resp).ok());
  EXPECT_EQ(resp.volume().volume_id(), "a/pvc-z");
  ASSERT_EQ(resp.volume().accessible_topology_size(), 1);
  EXPECT_EQ(resp.volume().accessible_topology(0).segments().at("topology.cowblk.io/zone"), "z1");
  GetPluginCapabilitiesResponse caps;
  grpc::ClientContext ctx2;
  ASSERT_TRUE(identity_->GetPluginCapabilities(&ctx2, GetPluginCapabilitiesRequest(), &caps).ok());
  EXPECT_EQ(caps.capabilities_size(), 3);
}


// Snapshots: CreateSnapshot on the source's server, idempotent by name;
// ListSnapshots by id, by source, in pages; a volume from the snapshot holds
// the source as it was; DeleteSnapshot idempotent, also while a volume made
// from it lives (the volume keeps its data).
TEST_F(CsiControllerTest, SnapshotsAreTakenListedRestoredAndDeleted) {
  {
    ControllerGetCapabilitiesResponse caps;
    grpc::ClientContext ctx;
    ASSERT_TRUE(controller_->ControllerGetCapabilities(&ctx, {}, &caps).ok());
    std::set<int> types;
    for (const auto& c : caps.capabilities()) types.insert(c.rpc().type());
    EXPECT_TRUE(types.count(ControllerServiceCapability::RPC::CREATE_DELETE_SNAPSHOT));
    EXPECT_TRUE(types.count(ControllerServiceCapability::RPC::LIST_SNAPSHOTS));
  }
  CreateVolumeResponse src, other;
  ASSERT_TRUE(Create("pvc-src", kMiB, 0, &src).ok());
  ASSERT_TRUE(Create("pvc-other", kMiB, 0, &other).ok());
  const std::string server = src.volume().volume_id().substr(0, 1);
  Client& holder = server == "a" ? *client_a_ : *client_b_;
  const std::string before(4096, 'x'), after(4096, 'y');
  auto write = [&](const std::string& data) {
    auto v = holder.OpenVolume("pvc-src");
    ASSERT_TRUE(v.ok()) << v.status();
    ASSERT_TRUE((*v)->Write(8192, data.data(), data.size()).ok());
  };
  write(before);
  auto snapshot = [&](const std::string& name, const std::string& source,
                      CreateSnapshotResponse* resp) {
    CreateSnapshotRequest req;
    req.set_name(name);
    req.set_source_volume_id(source);
    grpc::ClientContext ctx;
    return controller_->CreateSnapshot(&ctx, req, resp);
  };
  const auto start = std::chrono::system_clock::now();
  CreateSnapshotResponse snap, again;
  {
    grpc::Status s = snapshot("snapshot-1", src.volume().volume_id(), &snap);
    ASSERT_TRUE(s.ok()) << s.error_message();
  }
  write(after);
  EXPECT_EQ(snap.snapshot().snapshot_id(), server + "/snapshot-1");
  EXPECT_EQ(snap.snapshot().source_volume_id(), src.volume().volume_id());
  EXPECT_EQ(snap.snapshot().size_bytes(), static_cast<int64_t>(kMiB));
  EXPECT_TRUE(snap.snapshot().ready_to_use());
  EXPECT_GE(snap.snapshot().creation_time().seconds(),
            std::chrono::duration_cast<std::chrono::seconds>(start.time_since_epoch()).count() - 1);
  // The same name and source: the same snapshot; another source: refused.
  ASSERT_TRUE(snapshot("snapshot-1", src.volume().volume_id(), &again).ok());
  EXPECT_EQ(again.snapshot().snapshot_id(), snap.snapshot().snapshot_id());
  EXPECT_EQ(again.snapshot().creation_time().nanos(), snap.snapshot().creation_time().nanos());
  EXPECT_EQ(snapshot("snapshot-1", other.volume().volume_id(), &again).error_code(),
            grpc::StatusCode::ALREADY_EXISTS);
  EXPECT_EQ(snapshot("", src.volume().volume_id(), &again).error_code(),
            grpc::StatusCode::INVALID_ARGUMENT);
  EXPECT_EQ(snapshot("snapshot-x", "", &again).error_code(), grpc::StatusCode::INVALID_ARGUMENT);
  EXPECT_EQ(snapshot("snapshot-x", server + "/no-such", &again).error_code(),
            grpc::StatusCode::NOT_FOUND);
  CreateSnapshotResponse snap2, snap3;
  ASSERT_TRUE(snapshot("snapshot-2", src.volume().volume_id(), &snap2).ok());
  ASSERT_TRUE(snapshot("snapshot-3", other.volume().volume_id(), &snap3).ok());

  auto list = [&](const std::string& id, const std::string& source, int max,
                  const std::string& token, ListSnapshotsResponse* resp) {
    ListSnapshotsRequest req;
    req.set_snapshot_id(id);
    req.set_source_volume_id(source);
    req.set_max_entries(max);
    req.set_starting_token(token);
    grpc::ClientContext ctx;
    return controller_->ListSnapshots(&ctx, req, resp);
  };
  auto ids = [](const ListSnapshotsResponse& r) {
    std::vector<std::string> out;
    for (const auto& e : r.entries()) out.push_back(e.snapshot().snapshot_id());
    return out;
  };
  std::vector<std::string> want = {snap.snapshot().snapshot_id(), snap2.snapshot().snapshot_id(),
                                   snap3.snapshot().snapshot_id()};
  std::sort(want.begin(), want.end());
  {
    ListSnapshotsResponse all;
    ASSERT_TRUE(list("", "", 0, "", &all).ok());
    EXPECT_EQ(ids(all), want);
    EXPECT_TRUE(all.next_token().empty());
    // Pages of two then one.
    ListSnapshotsResponse p1, p2;
    ASSERT_TRUE(list("", "", 2, "", &p1).ok());
    ASSERT_EQ(p1.entries_size(), 2);
    ASSERT_FALSE(p1.next_token().empty());
    ASSERT_TRUE(list("", "", 2, p1.next_token(), &p2).ok());
    std::vector<std::string> paged = ids(p1);
    for (const std::string& id : ids(p2)) paged.push_back(id);
    EXPECT_EQ(paged, want);
    EXPECT_TRUE(p2.next_token().empty());
    ListSnapshotsResponse bad;
    EXPECT_EQ(list("", "", 0, "no-token-of-ours", &bad).error_code(), grpc::StatusCode::ABORTED);
    EXPECT_EQ(list("", "", -1, "", &bad).error_code(), grpc::StatusCode::INVALID_ARGUMENT);
  }
  {
    ListSnapshotsResponse by_id, by_source, none;
    ASSERT_TRUE(list(snap2.snapshot().snapshot_id(), "", 0, "", &by_id).ok());
    EXPECT_EQ(ids(by_id), std::vector<std::string>{snap2.snapshot().snapshot_id()});
    EXPECT_EQ(by_id.entries(0).snapshot().source_volume_id(), src.volume().volume_id());
    ASSERT_TRUE(list("", src.volume().volume_id(), 0, "", &by_source).ok());
    EXPECT_EQ(ids(by_source), (std::vector<std::string>{snap.snapshot().snapshot_id(),
                                                         snap2.snapshot().snapshot_id()}));
    ASSERT_TRUE(list(server + "/no-such", "", 0, "", &none).ok());
    EXPECT_EQ(none.entries_size(), 0);
  }

  // A volume from the snapshot: on its server, the source as it was.
  CreateVolumeRequest req;
  req.set_name("pvc-restored");
  *req.add_volume_capabilities() = MountCap();
  req.mutable_volume_content_source()->mutable_snapshot()->set_snapshot_id(
      snap.snapshot().snapshot_id());
  CreateVolumeResponse restored, restored_again;
  {
    grpc::ClientContext ctx;
    grpc::Status s = controller_->CreateVolume(&ctx, req, &restored);
    ASSERT_TRUE(s.ok()) << s.error_message();
  }
  EXPECT_EQ(restored.volume().volume_id(), server + "/pvc-restored");
  EXPECT_EQ(restored.volume().capacity_bytes(), static_cast<int64_t>(kMiB));
  EXPECT_EQ(restored.volume().content_source().snapshot().snapshot_id(),
            snap.snapshot().snapshot_id());
  {
    grpc::ClientContext ctx;
    ASSERT_TRUE(controller_->CreateVolume(&ctx, req, &restored_again).ok());  // idempotent
  }
  EXPECT_EQ(restored_again.volume().volume_id(), restored.volume().volume_id());
  std::string back(4096, '\0');
  {
    auto v = holder.OpenVolume("pvc-restored");
    ASSERT_TRUE(v.ok()) << v.status();
    ASSERT_TRUE((*v)->Read(8192, back.data(), back.size()).ok());
    EXPECT_EQ(back, before);
  }
  {
    // Larger than the snapshot: a volume over it does not grow.
    CreateVolumeRequest big = req;
    big.set_name("pvc-big");
    big.mutable_capacity_range()->set_required_bytes(2 * kMiB);
    grpc::ClientContext ctx;
    EXPECT_EQ(controller_->CreateVolume(&ctx, big, &restored_again).error_code(),
              grpc::StatusCode::OUT_OF_RANGE);
    CreateVolumeRequest missing = req;
    missing.set_name("pvc-missing");
    missing.mutable_volume_content_source()->mutable_snapshot()->set_snapshot_id(server +
                                                                                 "/no-such");
    grpc::ClientContext ctx2;
    EXPECT_EQ(controller_->CreateVolume(&ctx2, missing, &restored_again).error_code(),
              grpc::StatusCode::NOT_FOUND);
  }

  // Deleted while the restored volume lives: gone from the list at once,
  // twice fine, and the volume keeps reading its data.
  auto del = [&](const std::string& id) {
    DeleteSnapshotRequest d;
    d.set_snapshot_id(id);
    DeleteSnapshotResponse r;
    grpc::ClientContext ctx;
    return controller_->DeleteSnapshot(&ctx, d, &r);
  };
  ASSERT_TRUE(del(snap.snapshot().snapshot_id()).ok());
  ASSERT_TRUE(del(snap.snapshot().snapshot_id()).ok());
  ASSERT_TRUE(del("not-ours").ok());
  EXPECT_EQ(del("").error_code(), grpc::StatusCode::INVALID_ARGUMENT);
  {
    ListSnapshotsResponse by_id;
    ASSERT_TRUE(list(snap.snapshot().snapshot_id(), "", 0, "", &by_id).ok());
    EXPECT_EQ(by_id.entries_size(), 0);
    auto v = holder.OpenVolume("pvc-restored");
    ASSERT_TRUE(v.ok()) << v.status();
    ASSERT_TRUE((*v)->Read(8192, back.data(), back.size()).ok());
    EXPECT_EQ(back, before);
  }
  ASSERT_TRUE(del(snap2.snapshot().snapshot_id()).ok());
  ASSERT_TRUE(del(snap3.snapshot().snapshot_id()).ok());
  ASSERT_TRUE(Delete(restored.volume().volume_id()).ok());
  // Nothing of the snapshots is left on either server.
  for (Client* c : {client_a_.get(), client_b_.get()}) {
    auto images = c->ListImages();
    ASSERT_TRUE(images.ok()) << images.status();
    EXPECT_TRUE(images->empty()) << images->front().name;
  }
}

}  // namespace
}  // namespace cowblk
