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

std::string ReadFile(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  return std::string((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
}

bool WriteFileSynced(const std::string& path, const std::string& data) {
  const int fd = open(path.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
  if (fd < 0) return false;
  const bool ok = write(fd, data.data(), data.size()) == static_cast<ssize_t>(data.size()) &&
                  fsync(fd) == 0;
  close(fd);
  return ok;
}

// One cowblk-csi process and a channel to its socket.
class Plugin {
 public:
  bool Start(std::vector<std::string> argv, const std::string& socket) {
    argv.insert(argv.begin(), {COWBLK_CSI_BIN, "--endpoint", "unix://" + socket});
    if (!process_.Start(argv)) return false;
    grpc::ChannelArguments args;  // retry quickly until the socket exists
    args.SetInt(GRPC_ARG_INITIAL_RECONNECT_BACKOFF_MS, 20);
    args.SetInt(GRPC_ARG_MIN_RECONNECT_BACKOFF_MS, 20);
    args.SetInt(GRPC_ARG_MAX_RECONNECT_BACKOFF_MS, 100);
    channel_ = grpc::CreateCustomChannel("unix://" + socket, grpc::InsecureChannelCredentials(), args);
    return channel_->WaitForConnected(std::chrono::system_clock::now() + std::chrono::seconds(30));
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
    if (!volume_id_.empty()) {
      for (auto [plugin, name] : {std::pair{&node_a_, "a"}, std::pair{&node_b_, "b"}}) {
        Unpublish(*plugin, name).IgnoreError();
        Unstage(*plugin, name).IgnoreError();
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
  absl::Status Stage(Plugin& p, const char* node) {
    grpc::ClientContext ctx;
    NodeStageVolumeRequest req;
    req.set_volume_id(volume_id_);
    req.set_staging_target_path(Staging(node));
    *req.mutable_volume_capability() = Ext4();
    NodeStageVolumeResponse resp;
    return Check(p.node()->NodeStageVolume(&ctx, req, &resp));
  }
  absl::Status Publish(Plugin& p, const char* node) {
    grpc::ClientContext ctx;
    NodePublishVolumeRequest req;
    req.set_volume_id(volume_id_);
    req.set_staging_target_path(Staging(node));
    req.set_target_path(Target(node));
    *req.mutable_volume_capability() = Ext4();
    NodePublishVolumeResponse resp;
    return Check(p.node()->NodePublishVolume(&ctx, req, &resp));
  }
  absl::Status Unpublish(Plugin& p, const char* node) {
    grpc::ClientContext ctx;
    NodeUnpublishVolumeRequest req;
    req.set_volume_id(volume_id_);
    req.set_target_path(Target(node));
    NodeUnpublishVolumeResponse resp;
    return Check(p.node()->NodeUnpublishVolume(&ctx, req, &resp));
  }
  absl::Status Unstage(Plugin& p, const char* node) {
    grpc::ClientContext ctx;
    NodeUnstageVolumeRequest req;
    req.set_volume_id(volume_id_);
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
  std::string volume_id_;
};

TEST_F(CsiLifecycleTest, CreateWriteMoveToAnotherNodeGrowDelete) {
  // The external-provisioner's CreateVolume (twice: one volume).
  CreateVolumeRequest create;
  create.set_name("pvc-0b5e6c1e");
  create.mutable_capacity_range()->set_required_bytes(64 * kMiB);
  *create.add_volume_capabilities() = Ext4();
  CreateVolumeResponse created, again;
  {
    grpc::ClientContext c1, c2;
    ASSERT_TRUE(controller_.controller()->CreateVolume(&c1, create, &created).ok());
    ASSERT_TRUE(controller_.controller()->CreateVolume(&c2, create, &again).ok());
  }
  volume_id_ = created.volume().volume_id();
  EXPECT_EQ(again.volume().volume_id(), volume_id_);
  EXPECT_EQ(created.volume().capacity_bytes(), 64 * kMiB);

  // Node A: a filesystem made on first use, files written and synced.
  ASSERT_TRUE(Stage(node_a_, "a").ok());
  ASSERT_TRUE(Publish(node_a_, "a").ok());
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
  ASSERT_TRUE(Unpublish(node_a_, "a").ok());
  ASSERT_TRUE(Unstage(node_a_, "a").ok());

  // Node B: every file there, byte-exact.
  ASSERT_TRUE(Stage(node_b_, "b").ok());
  ASSERT_TRUE(Publish(node_b_, "b").ok());
  for (const auto& [name, data] : files) {
    EXPECT_TRUE(ReadFile(Target("b") + "/dir/" + name) == data) << name << " differs on node B";
  }
  const int64_t before = FsBytes(Target("b"));
  ASSERT_TRUE(Unpublish(node_b_, "b").ok());
  ASSERT_TRUE(Unstage(node_b_, "b").ok());

  // The claim grows (external-resizer, offline), then the node's filesystem.
  {
    grpc::ClientContext ctx;
    ControllerExpandVolumeRequest req;
    req.set_volume_id(volume_id_);
    req.mutable_capacity_range()->set_required_bytes(128 * kMiB);
    *req.mutable_volume_capability() = Ext4();
    ControllerExpandVolumeResponse resp;
    grpc::Status s = controller_.controller()->ControllerExpandVolume(&ctx, req, &resp);
    ASSERT_TRUE(s.ok()) << s.error_message();
    EXPECT_EQ(resp.capacity_bytes(), 128 * kMiB);
    EXPECT_TRUE(resp.node_expansion_required());
  }
  ASSERT_TRUE(Stage(node_b_, "b").ok());
  ASSERT_TRUE(Publish(node_b_, "b").ok());
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
  EXPECT_GT(FsBytes(Target("b")), before + 50 * kMiB);
  for (const auto& [name, data] : files) {
    EXPECT_TRUE(ReadFile(Target("b") + "/dir/" + name) == data) << name << " differs after growing";
  }
  ASSERT_TRUE(Unpublish(node_b_, "b").ok());
  ASSERT_TRUE(Unstage(node_b_, "b").ok());

  // Delete (twice: the second finds nothing, and is OK); a node cannot
  // stage it any more.
  for (int i = 0; i < 2; ++i) {
    grpc::ClientContext ctx;
    DeleteVolumeRequest req;
    req.set_volume_id(volume_id_);
    DeleteVolumeResponse resp;
    ASSERT_TRUE(controller_.controller()->DeleteVolume(&ctx, req, &resp).ok());
  }
  EXPECT_EQ(Stage(node_a_, "a").code(), absl::StatusCode::kNotFound);
  EXPECT_TRUE(fs::is_empty(Path("state-a"))) << "a failed stage left state on node A";
}

}  // namespace
}  // namespace cowblk::testing
