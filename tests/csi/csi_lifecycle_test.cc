// A CSI volume's life as Kubernetes drives it, over the plugins' real
// sockets: two real cowblkd servers (two pods), one controller plugin and
// two node plugins with their own state directories (two nodes). Create,
// stage and publish on node A, write files, unpublish and unstage; stage
// on node B and find every file; grow the claim (controller, then node);
// delete. Needs root, /dev/fuse and loop devices.

#include <fcntl.h>
#include <grpcpp/grpcpp.h>
#include <sys/statvfs.h>
#include <unistd.h>

#include <chrono>
#include <filesystem>
#include <fstream>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "csi/v1/csi.grpc.pb.h"
#include "gtest/gtest.h"
#include "tests/support/child_process.h"
#include "tests/support/cowblkd_process.h"
#include "tests/support/scratch.h"
#include "tests/csi/csi_test_util.h"

namespace cowblk::testing {
namespace {

namespace fs = std::filesystem;
using namespace ::csi::v1;  // NOLINT: the generated messages

constexpr int64_t kMiB = 1 << 20;

VolumeCapability Ext4() {
  VolumeCapability c;
  c.mutable_mount()->set_fs_type("ext4");
  c.mutable_access_mode()->set_mode(VolumeCapability::AccessMode::SINGLE_NODE_WRITER);
  return c;
}

// One cowblk-csi process and a channel to its socket.
class Plugin {
 public:
  bool Start(std::vector<std::string> argv, const std::string& socket) {
    argv.insert(argv.begin(), {COWBLK_CSI_BIN, "--endpoint", "unix://" + socket});
    if (!process_.Start(argv)) return false;
    channel_ = ConnectToPlugin(socket);
    return channel_ != nullptr;
  }
  void Stop() {
    channel_.reset();
    process_.Stop(SIGTERM);
  }
  std::unique_ptr<Controller::Stub> controller() { return Controller::NewStub(channel_); }
  std::unique_ptr<Node::Stub> node() { return Node::NewStub(channel_); }

 private:
  ChildProcess process_{SIGTERM};
  std::shared_ptr<grpc::Channel> channel_;
};

class CsiLifecycleTest : public ::testing::Test {
 protected:
  void SetUp() override {
    for (const char* d : {"a", "b", "state-a", "state-b"}) ASSERT_TRUE(fs::create_directories(Path(d)));
    ASSERT_TRUE(server_a_.Start(Path("a"))) << server_a_.log();
    ASSERT_TRUE(server_b_.Start(Path("b"))) << server_b_.log();
    const std::vector<std::string> servers = {"--server", "a=" + server_a_.address(), "--server",
                                              "b=" + server_b_.address(), "--timeout", "20"};
    ASSERT_TRUE(controller_.Start(servers, Path("controller.sock")));
    for (auto [plugin, name] : {std::pair{&node_a_, "a"}, std::pair{&node_b_, "b"}}) {
      std::vector<std::string> argv = servers;
      argv.insert(argv.end(), {"--node-id", std::string("node-") + name, "--no-controller",
                               "--state-dir", Path(std::string("state-") + name), "--cowblk-bin",
                               COWBLK_CLI_BIN});
      ASSERT_TRUE(plugin->Start(argv, Path(std::string("node-") + name + ".sock")));
    }
  }
  void TearDown() override {
    // Whatever a failed test left: each node takes its part apart.
    for (const std::string& id : {volume_id_, restored_id_}) {
      if (id.empty()) continue;
      for (auto [plugin, name] : {std::pair{&node_a_, "a"}, std::pair{&node_b_, "b"}}) {
        Unpublish(*plugin, name, id).IgnoreError();
        Unstage(*plugin, name, id).IgnoreError();
      }
    }
    node_a_.Stop();
    node_b_.Stop();
    controller_.Stop();
  }

  std::string Path(const std::string& name) const { return dir_.File(name); }
  std::string Target(const char* node) const { return Path(std::string("pods-") + node + "/vol"); }
  std::string Staging(const char* node) const { return Path(std::string("staging-") + node); }

  static absl::Status Check(const grpc::Status& s) {
    return s.ok() ? absl::OkStatus()
                  : absl::Status(static_cast<absl::StatusCode>(s.error_code()), s.error_message());
  }
  absl::Status Stage(Plugin& p, const char* node, const std::string& id) {
    grpc::ClientContext ctx;
    NodeStageVolumeRequest req;
    req.set_volume_id(id);
    req.set_staging_target_path(Staging(node));
    *req.mutable_volume_capability() = Ext4();
    NodeStageVolumeResponse resp;
    return Check(p.node()->NodeStageVolume(&ctx, req, &resp));
  }
  absl::Status Publish(Plugin& p, const char* node, const std::string& id) {
    grpc::ClientContext ctx;
    NodePublishVolumeRequest req;
    req.set_volume_id(id);
    req.set_staging_target_path(Staging(node));
    req.set_target_path(Target(node));
    *req.mutable_volume_capability() = Ext4();
    NodePublishVolumeResponse resp;
    return Check(p.node()->NodePublishVolume(&ctx, req, &resp));
  }
  absl::Status Unpublish(Plugin& p, const char* node, const std::string& id) {
    grpc::ClientContext ctx;
    NodeUnpublishVolumeRequest req;
    req.set_volume_id(id);
    req.set_target_path(Target(node));
    NodeUnpublishVolumeResponse resp;
    return Check(p.node()->NodeUnpublishVolume(&ctx, req, &resp));
  }
  absl::Status Unstage(Plugin& p, const char* node, const std::string& id) {
    grpc::ClientContext ctx;
    NodeUnstageVolumeRequest req;
    req.set_volume_id(id);
    req.set_staging_target_path(Staging(node));
    NodeUnstageVolumeResponse resp;
    return Check(p.node()->NodeUnstageVolume(&ctx, req, &resp));
  }
  static int64_t FsBytes(const std::string& path) {
    struct statvfs v {};
    return statvfs(path.c_str(), &v) == 0 ? static_cast<int64_t>(v.f_blocks * v.f_frsize) : -1;
  }

  TempDir dir_;
  CowblkdProcess server_a_, server_b_;
  Plugin controller_, node_a_, node_b_;
  std::string volume_id_, restored_id_;
};

// Issue #22's test 7, but for the refusal of a second node's stage while
// the first holds the volume (exclusive attachment is not built yet).
TEST_F(CsiLifecycleTest, CreateWriteSnapshotRestoreOnAnotherNodeGrowDelete) {
  auto ctl = controller_.controller();
  // The external-provisioner's CreateVolume (twice: one volume).
  CreateVolumeRequest create;
  create.set_name("pvc-0b5e6c1e");
  create.mutable_capacity_range()->set_required_bytes(64 * kMiB);
  *create.add_volume_capabilities() = Ext4();
  CreateVolumeResponse created, again;
  {
    grpc::ClientContext c1, c2;
    ASSERT_TRUE(ctl->CreateVolume(&c1, create, &created).ok());
    ASSERT_TRUE(ctl->CreateVolume(&c2, create, &again).ok());
  }
  volume_id_ = created.volume().volume_id();
  EXPECT_EQ(again.volume().volume_id(), volume_id_);
  EXPECT_EQ(created.volume().capacity_bytes(), 64 * kMiB);

  // Node A: a filesystem made on first use, files written and synced.
  ASSERT_TRUE(Stage(node_a_, "a", volume_id_).ok());
  ASSERT_TRUE(Publish(node_a_, "a", volume_id_).ok());
  std::map<std::string, std::string> files;
  for (int i = 0; i < 6; ++i) {
    std::string data(static_cast<size_t>(1000 + i * 300000), '\0');
    for (size_t j = 0; j < data.size(); ++j) data[j] = static_cast<char>((j * (i + 3)) >> 2);
    std::string name = "file-";  // (operator+ on a literal trips GCC 12's -Wrestrict)
    name += std::to_string(i);
    files[name] = data;
  }
  ASSERT_TRUE(fs::create_directories(Target("a") + "/dir"));
  for (const auto& [name, data] : files) {
    ASSERT_TRUE(WriteFileSynced(Target("a") + "/dir/" + name, data));
  }
  ASSERT_TRUE(Unpublish(node_a_, "a", volume_id_).ok());
  ASSERT_TRUE(Unstage(node_a_, "a", volume_id_).ok());

  // The external-snapshotter's CreateSnapshot, and a claim restored from it.
  CreateSnapshotResponse snap;
  {
    grpc::ClientContext ctx;
    CreateSnapshotRequest req;
    req.set_name("snapshot-7d1f");
    req.set_source_volume_id(volume_id_);
    grpc::Status s = ctl->CreateSnapshot(&ctx, req, &snap);
    ASSERT_TRUE(s.ok()) << s.error_message();
    EXPECT_TRUE(snap.snapshot().ready_to_use());
    EXPECT_EQ(snap.snapshot().source_volume_id(), volume_id_);
  }
  {
    CreateVolumeRequest restore = create;
    restore.set_name("pvc-restored");
    restore.mutable_volume_content_source()->mutable_snapshot()->set_snapshot_id(
        snap.snapshot().snapshot_id());
    CreateVolumeResponse restored;
    grpc::ClientContext ctx;
    grpc::Status s = ctl->CreateVolume(&ctx, restore, &restored);
    ASSERT_TRUE(s.ok()) << s.error_message();
    restored_id_ = restored.volume().volume_id();
  }

  // Node B: the restored claim holds every file, byte-exact.
  ASSERT_TRUE(Stage(node_b_, "b", restored_id_).ok());
  ASSERT_TRUE(Publish(node_b_, "b", restored_id_).ok());
  for (const auto& [name, data] : files) {
    EXPECT_TRUE(ReadWholeFile(Target("b") + "/dir/" + name) == data) << name << " differs in the restore";
  }
  ASSERT_TRUE(Unpublish(node_b_, "b", restored_id_).ok());
  ASSERT_TRUE(Unstage(node_b_, "b", restored_id_).ok());

  // The original claim grows (external-resizer, offline), then, on node B,
  // its filesystem.
  {
    grpc::ClientContext ctx;
    ControllerExpandVolumeRequest req;
    req.set_volume_id(volume_id_);
    req.mutable_capacity_range()->set_required_bytes(128 * kMiB);
    *req.mutable_volume_capability() = Ext4();
    ControllerExpandVolumeResponse resp;
    grpc::Status s = ctl->ControllerExpandVolume(&ctx, req, &resp);
    ASSERT_TRUE(s.ok()) << s.error_message();
    EXPECT_EQ(resp.capacity_bytes(), 128 * kMiB);
    EXPECT_TRUE(resp.node_expansion_required());
  }
  ASSERT_TRUE(Stage(node_b_, "b", volume_id_).ok());
  ASSERT_TRUE(Publish(node_b_, "b", volume_id_).ok());
  {
    grpc::ClientContext ctx;
    NodeExpandVolumeRequest req;
    req.set_volume_id(volume_id_);
    req.set_volume_path(Target("b"));
    req.set_staging_target_path(Staging("b"));
    req.mutable_capacity_range()->set_required_bytes(128 * kMiB);
    NodeExpandVolumeResponse resp;
    grpc::Status s = node_b_.node()->NodeExpandVolume(&ctx, req, &resp);
    ASSERT_TRUE(s.ok()) << s.error_message();
    EXPECT_EQ(resp.capacity_bytes(), 128 * kMiB);
  }
  EXPECT_GT(FsBytes(Target("b")), 100 * kMiB);
  for (const auto& [name, data] : files) {
    EXPECT_TRUE(ReadWholeFile(Target("b") + "/dir/" + name) == data) << name << " differs after growing";
  }
  ASSERT_TRUE(Unpublish(node_b_, "b", volume_id_).ok());
  ASSERT_TRUE(Unstage(node_b_, "b", volume_id_).ok());

  // Delete everything (each twice: the second finds nothing, and is OK); a
  // node cannot stage a deleted volume.
  for (int i = 0; i < 2; ++i) {
    grpc::ClientContext c1, c2, c3;
    DeleteSnapshotRequest ds;
    ds.set_snapshot_id(snap.snapshot().snapshot_id());
    DeleteSnapshotResponse r1;
    ASSERT_TRUE(ctl->DeleteSnapshot(&c1, ds, &r1).ok());
    for (auto [ctx, id] : {std::pair{&c2, restored_id_}, std::pair{&c3, volume_id_}}) {
      DeleteVolumeRequest dv;
      dv.set_volume_id(id);
      DeleteVolumeResponse r2;
      ASSERT_TRUE(ctl->DeleteVolume(ctx, dv, &r2).ok()) << id;
    }
  }
  {
    grpc::ClientContext ctx;
    ListVolumesResponse list;
    ASSERT_TRUE(ctl->ListVolumes(&ctx, {}, &list).ok());
    EXPECT_EQ(list.entries_size(), 0);
  }
  EXPECT_EQ(Stage(node_a_, "a", volume_id_).code(), absl::StatusCode::kNotFound);
  EXPECT_TRUE(fs::is_empty(Path("state-a"))) << "a failed stage left state on node A";
}

}  // namespace
}  // namespace cowblk::testing
