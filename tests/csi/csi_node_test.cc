// cowblk-csi's Node service over its real socket, as the kubelet calls it:
// a real cowblkd, the real cowblk-csi binary, the real gateway (`cowblk
// nbd`), nbdfuse, loop devices, mkfs and mount. Needs root, /dev/fuse and
// loop devices (as client_cli.nbd_gateway_fuse_ext4 does).

#include <fcntl.h>
#include <grpcpp/grpcpp.h>
#include <sys/stat.h>
#include <unistd.h>

#include <chrono>
#include <filesystem>
#include <fstream>
#include <map>
#include <memory>
#include <set>
#include <string>
#include <thread>

#include "cowblk/client.h"
#include "cowblk/volume.h"
#include "csi/v1/csi.grpc.pb.h"
#include "gtest/gtest.h"
#include "tests/support/child_process.h"
#include "tests/support/cowblkd_process.h"
#include "tests/support/pki.h"
#include "tests/support/scratch.h"
#include "tests/csi/csi_test_util.h"

namespace cowblk::testing {
namespace {

namespace fs = std::filesystem;
using ::csi::v1::VolumeCapability;

constexpr uint64_t kSize = 64 << 20;

bool IsMountPoint(const std::string& path) {
  std::ifstream in("/proc/self/mountinfo");
  std::string line;
  while (std::getline(in, line)) {
    if (line.find(" " + path + " ") != std::string::npos) return true;
  }
  return false;
}

// Whether `pid` runs: it exists and is not a zombie (an exited daemon that
// its new parent has not reaped yet).
bool Running(pid_t pid) {
  std::ifstream in("/proc/" + std::to_string(pid) + "/stat");
  std::string line;
  if (!std::getline(in, line)) return false;
  const size_t paren = line.rfind(')');
  return paren != std::string::npos && paren + 2 < line.size() && line[paren + 2] != 'Z';
}

VolumeCapability MountCap(const std::string& fs_type = "ext4") {
  VolumeCapability cap;
  cap.mutable_mount()->set_fs_type(fs_type);
  cap.mutable_access_mode()->set_mode(VolumeCapability::AccessMode::SINGLE_NODE_WRITER);
  return cap;
}

VolumeCapability BlockCap() {
  VolumeCapability cap;
  cap.mutable_block();
  cap.mutable_access_mode()->set_mode(VolumeCapability::AccessMode::SINGLE_NODE_WRITER);
  return cap;
}

class CsiNodeTest : public ::testing::Test {
 protected:
  void SetUp() override {
    ASSERT_TRUE(fs::create_directories(Path("data")));
    ASSERT_TRUE(server_.Start(Path("data"), ServerArgs())) << server_.log();
    ClientOptions options = AdminOptions();
    options.target = server_.address();
    auto client = Client::Create(options);
    ASSERT_TRUE(client.ok()) << client.status();
    client_ = std::make_unique<Client>(*std::move(client));
    ASSERT_TRUE(client_->CreateVolume("disk", kSize).ok());
    StartPlugin();
  }

  void TearDown() override {
    // Whatever a failed test left staged: the plugin takes it apart.
    if (node_ != nullptr) {
      for (const std::string v : {"s1/disk", "s1/blk", "s1/big"}) {
        grpc::ClientContext c1;
        ::csi::v1::NodeUnpublishVolumeRequest up;
        up.set_volume_id(v);
        up.set_target_path(v == "s1/blk" ? Path("pods/blockdev") : Path("target"));
        ::csi::v1::NodeUnpublishVolumeResponse r1;
        node_->NodeUnpublishVolume(&c1, up, &r1);
        grpc::ClientContext c2;
        ::csi::v1::NodeUnstageVolumeRequest us;
        us.set_volume_id(v);
        us.set_staging_target_path(Path("staging"));
        ::csi::v1::NodeUnstageVolumeResponse r2;
        node_->NodeUnstageVolume(&c2, us, &r2);
      }
    }
    StopPlugin();
  }

  // Closes this test's connection first: gRPC's server shutdown waits a few
  // seconds for connected clients to go away.
  int StopPlugin() {
    node_.reset();
    return plugin_.Stop(SIGTERM);
  }

  std::string Path(const std::string& name) const { return dir_.File(name); }
  virtual ServerConfig ServerArgs() { return {}; }
  virtual ClientOptions AdminOptions() { return {}; }

  void StartPlugin() {
    const std::string socket = Path("csi.sock");
    plugin_log_ = Path("plugin.log");
    const int log = open(plugin_log_.c_str(), O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0644);
    ASSERT_GE(log, 0);
    ASSERT_TRUE(plugin_.Start({COWBLK_CSI_BIN, "--endpoint", "unix://" + socket, "--server",
                               "s1=" + server_.address(), "--node-id", "node-a", "--zone", "z1",
                               "--state-dir", Path("state"), "--cowblk-bin", COWBLK_CLI_BIN,
                               "--timeout", "20"},
                              {}, log, log));
    close(log);
    auto channel = ConnectToPlugin(socket);
    ASSERT_NE(channel, nullptr) << ReadWholeFile(plugin_log_);
    node_ = ::csi::v1::Node::NewStub(channel);
  }

  grpc::Status Stage(const std::string& volume_id, const VolumeCapability& cap,
                     const std::map<std::string, std::string>& secrets = {}) {
    grpc::ClientContext ctx;
    ::csi::v1::NodeStageVolumeRequest req;
    req.set_volume_id(volume_id);
    req.set_staging_target_path(Path("staging"));
    *req.mutable_volume_capability() = cap;
    for (const auto& [k, v] : secrets) (*req.mutable_secrets())[k] = v;
    ::csi::v1::NodeStageVolumeResponse resp;
    return node_->NodeStageVolume(&ctx, req, &resp);
  }
  grpc::Status Unstage(const std::string& volume_id) {
    grpc::ClientContext ctx;
    ::csi::v1::NodeUnstageVolumeRequest req;
    req.set_volume_id(volume_id);
    req.set_staging_target_path(Path("staging"));
    ::csi::v1::NodeUnstageVolumeResponse resp;
    return node_->NodeUnstageVolume(&ctx, req, &resp);
  }
  grpc::Status Publish(const std::string& volume_id, const std::string& target,
                       const VolumeCapability& cap, bool readonly = false) {
    grpc::ClientContext ctx;
    ::csi::v1::NodePublishVolumeRequest req;
    req.set_volume_id(volume_id);
    req.set_staging_target_path(Path("staging"));
    req.set_target_path(target);
    *req.mutable_volume_capability() = cap;
    req.set_readonly(readonly);
    ::csi::v1::NodePublishVolumeResponse resp;
    return node_->NodePublishVolume(&ctx, req, &resp);
  }
  grpc::Status Unpublish(const std::string& volume_id, const std::string& target) {
    grpc::ClientContext ctx;
    ::csi::v1::NodeUnpublishVolumeRequest req;
    req.set_volume_id(volume_id);
    req.set_target_path(target);
    ::csi::v1::NodeUnpublishVolumeResponse resp;
    return node_->NodeUnpublishVolume(&ctx, req, &resp);
  }
  ::csi::v1::NodeGetVolumeStatsResponse Stats(const std::string& volume_id, const std::string& path,
                                              grpc::Status* status) {
    grpc::ClientContext ctx;
    ::csi::v1::NodeGetVolumeStatsRequest req;
    req.set_volume_id(volume_id);
    req.set_volume_path(path);
    ::csi::v1::NodeGetVolumeStatsResponse resp;
    *status = node_->NodeGetVolumeStats(&ctx, req, &resp);
    return resp;
  }

  // The gateway's pid while `volume_id` ("s1/NAME") is staged.
  pid_t GatewayPid(const std::string& name) {
    std::ifstream in(Path("state") + "/s1_" + name + "/gateway.pid");
    pid_t pid = 0;
    in >> pid;
    return pid;
  }

  TempDir dir_;
  CowblkdProcess server_;
  std::unique_ptr<Client> client_;
  ChildProcess plugin_{SIGTERM};
  std::string plugin_log_;
  std::unique_ptr<::csi::v1::Node::Stub> node_;
};

#define EXPECT_GRPC_OK(expr)                                   \
  do {                                                         \
    grpc::Status s_ = (expr);                                  \
    EXPECT_TRUE(s_.ok()) << s_.error_code() << " " << s_.error_message(); \
  } while (0)

TEST_F(CsiNodeTest, InfoAndCapabilities) {
  grpc::ClientContext c1;
  ::csi::v1::NodeGetInfoResponse info;
  ASSERT_TRUE(node_->NodeGetInfo(&c1, {}, &info).ok());
  EXPECT_EQ(info.node_id(), "node-a");
  EXPECT_EQ(info.accessible_topology().segments().at("topology.cowblk.io/zone"), "z1");
  grpc::ClientContext c2;
  ::csi::v1::NodeGetCapabilitiesResponse caps;
  ASSERT_TRUE(node_->NodeGetCapabilities(&c2, {}, &caps).ok());
  std::set<int> types;
  for (const auto& c : caps.capabilities()) types.insert(c.rpc().type());
  EXPECT_TRUE(types.count(::csi::v1::NodeServiceCapability::RPC::STAGE_UNSTAGE_VOLUME));
  EXPECT_TRUE(types.count(::csi::v1::NodeServiceCapability::RPC::GET_VOLUME_STATS));
}

// A node plugin of the DaemonSet (--no-controller) serves Identity and
// Node, and says it has no Controller service.
TEST_F(CsiNodeTest, ANodeOnlyPluginOffersNoController) {
  ChildProcess plugin(SIGTERM);
  const std::string socket = Path("node-only.sock");
  ASSERT_TRUE(plugin.Start({COWBLK_CSI_BIN, "--endpoint", "unix://" + socket, "--server",
                            "s1=" + server_.address(), "--node-id", "node-b", "--no-controller",
                            "--state-dir", Path("state-b")}));
  {
    auto channel = ConnectToPlugin(socket);
    ASSERT_NE(channel, nullptr);
    grpc::ClientContext c1;
    ::csi::v1::GetPluginCapabilitiesResponse caps;
    ASSERT_TRUE(::csi::v1::Identity::NewStub(channel)->GetPluginCapabilities(&c1, {}, &caps).ok());
    for (const auto& c : caps.capabilities()) {
      EXPECT_NE(c.service().type(), ::csi::v1::PluginCapability::Service::CONTROLLER_SERVICE);
    }
    grpc::ClientContext c2;
    ::csi::v1::ControllerGetCapabilitiesResponse ccaps;
    EXPECT_EQ(::csi::v1::Controller::NewStub(channel)->ControllerGetCapabilities(&c2, {}, &ccaps).error_code(),
              grpc::StatusCode::UNIMPLEMENTED);
    grpc::ClientContext c3;
    ::csi::v1::NodeGetInfoResponse info;
    ASSERT_TRUE(::csi::v1::Node::NewStub(channel)->NodeGetInfo(&c3, {}, &info).ok());
    EXPECT_EQ(info.node_id(), "node-b");
  }
  EXPECT_EQ(plugin.Stop(SIGTERM), 0);
}

// Stage (a filesystem made on first use), publish, write files, unpublish,
// unstage; then a new attachment finds every file byte-exact, published
// read-only; each call twice is the same as once.
TEST_F(CsiNodeTest, AFilesystemSurvivesUnstageAndStageAgain) {
  const std::string target = Path("target");
  EXPECT_GRPC_OK(Stage("s1/disk", MountCap()));
  EXPECT_GRPC_OK(Stage("s1/disk", MountCap()));  // idempotent
  EXPECT_TRUE(IsMountPoint(Path("staging")));
  EXPECT_GRPC_OK(Publish("s1/disk", target, MountCap()));
  EXPECT_GRPC_OK(Publish("s1/disk", target, MountCap()));  // idempotent
  ASSERT_TRUE(IsMountPoint(target));
  std::string big(3 << 20, '\0');
  for (size_t i = 0; i < big.size(); ++i) big[i] = static_cast<char>((i * 7919) >> 3);
  ASSERT_TRUE(fs::create_directories(target + "/a/b"));
  ASSERT_TRUE(WriteFileSynced(target + "/a/b/big.bin", big));
  ASSERT_TRUE(WriteFileSynced(target + "/hello.txt", "hello, csi\n"));

  grpc::Status st;
  auto stats = Stats("s1/disk", target, &st);
  ASSERT_TRUE(st.ok()) << st.error_message();
  ASSERT_GE(stats.usage_size(), 1);
  EXPECT_EQ(stats.usage(0).unit(), ::csi::v1::VolumeUsage::BYTES);
  EXPECT_GT(stats.usage(0).total(), int64_t{50} << 20);
  EXPECT_GE(stats.usage(0).used(), int64_t{3} << 20);
  EXPECT_FALSE(stats.volume_condition().abnormal()) << stats.volume_condition().message();

  const pid_t gateway = GatewayPid("disk");
  ASSERT_GT(gateway, 0);
  EXPECT_GRPC_OK(Unpublish("s1/disk", target));
  EXPECT_GRPC_OK(Unpublish("s1/disk", target));  // idempotent
  EXPECT_FALSE(IsMountPoint(target));
  EXPECT_GRPC_OK(Unstage("s1/disk"));
  EXPECT_GRPC_OK(Unstage("s1/disk"));  // idempotent
  EXPECT_FALSE(IsMountPoint(Path("staging")));
  EXPECT_FALSE(fs::exists(Path("state") + "/s1_disk")) << "the state of an unstaged volume is left";
  EXPECT_FALSE(Running(gateway)) << "the gateway still runs after unstage";

  // Read-only this time: the files are there, and writing fails.
  EXPECT_GRPC_OK(Stage("s1/disk", MountCap()));
  EXPECT_GRPC_OK(Publish("s1/disk", target, MountCap(), /*readonly=*/true));
  EXPECT_EQ(ReadWholeFile(target + "/a/b/big.bin"), big);
  EXPECT_EQ(ReadWholeFile(target + "/hello.txt"), "hello, csi\n");
  EXPECT_FALSE(WriteFileSynced(target + "/new.txt", "x"));
  EXPECT_EQ(errno, EROFS);
  EXPECT_GRPC_OK(Unpublish("s1/disk", target));
  EXPECT_GRPC_OK(Unstage("s1/disk"));
}

// fs_type xfs: made on first use, found again (not made anew) after an
// unstage, even when the next stage asks for ext4.
TEST_F(CsiNodeTest, XfsIsMadeOnceAndKept) {
  // mkfs.xfs wants 300 MB at least.
  ASSERT_TRUE(client_->CreateVolume("big", 320 << 20).ok());
  const std::string target = Path("target");
  EXPECT_GRPC_OK(Stage("s1/big", MountCap("xfs")));
  EXPECT_GRPC_OK(Publish("s1/big", target, MountCap("xfs")));
  ASSERT_TRUE(WriteFileSynced(target + "/on-xfs.txt", "xfs\n"));
  EXPECT_GRPC_OK(Unpublish("s1/big", target));
  EXPECT_GRPC_OK(Unstage("s1/big"));
  EXPECT_GRPC_OK(Stage("s1/big", MountCap("ext4")));
  EXPECT_GRPC_OK(Publish("s1/big", target, MountCap("ext4")));
  EXPECT_EQ(ReadWholeFile(target + "/on-xfs.txt"), "xfs\n") << "the volume was formatted again";
  EXPECT_GRPC_OK(Unpublish("s1/big", target));
  EXPECT_GRPC_OK(Unstage("s1/big"));
}

// Offline expansion as Kubernetes runs it: the volume grows on its server
// while not staged (ControllerExpandVolume), the next stage sees the new
// size, and NodeExpandVolume grows the filesystem, keeping its files.
TEST_F(CsiNodeTest, ExpandGrowsTheFilesystemOfAGrownVolume) {
  const std::string target = Path("target");
  EXPECT_GRPC_OK(Stage("s1/disk", MountCap()));
  EXPECT_GRPC_OK(Publish("s1/disk", target, MountCap()));
  ASSERT_TRUE(WriteFileSynced(target + "/kept.txt", "kept across the resize\n"));
  grpc::Status st;
  const int64_t before = Stats("s1/disk", target, &st).usage(0).total();
  EXPECT_GRPC_OK(Unpublish("s1/disk", target));
  EXPECT_GRPC_OK(Unstage("s1/disk"));
  ASSERT_TRUE(client_->ResizeVolume("disk", 2 * kSize).ok());

  EXPECT_GRPC_OK(Stage("s1/disk", MountCap()));
  EXPECT_GRPC_OK(Publish("s1/disk", target, MountCap()));
  auto expand = [&](int64_t bytes, ::csi::v1::NodeExpandVolumeResponse* resp) {
    grpc::ClientContext ctx;
    ::csi::v1::NodeExpandVolumeRequest req;
    req.set_volume_id("s1/disk");
    req.set_volume_path(target);
    req.set_staging_target_path(Path("staging"));
    req.mutable_capacity_range()->set_required_bytes(bytes);
    *req.mutable_volume_capability() = MountCap();
    return node_->NodeExpandVolume(&ctx, req, resp);
  };
  ::csi::v1::NodeExpandVolumeResponse resp;
  // More than the volume has: refused, nothing changed.
  EXPECT_EQ(expand(4 * kSize, &resp).error_code(), grpc::StatusCode::FAILED_PRECONDITION);
  EXPECT_GRPC_OK(expand(2 * kSize, &resp));
  EXPECT_EQ(resp.capacity_bytes(), static_cast<int64_t>(2 * kSize));
  const int64_t after = Stats("s1/disk", target, &st).usage(0).total();
  ASSERT_TRUE(st.ok());
  EXPECT_GT(after, before + int64_t{50} * (1 << 20)) << before << " -> " << after;
  EXPECT_EQ(ReadWholeFile(target + "/kept.txt"), "kept across the resize\n");
  EXPECT_GRPC_OK(expand(2 * kSize, &resp));  // idempotent
  EXPECT_GRPC_OK(Unpublish("s1/disk", target));
  EXPECT_GRPC_OK(Unstage("s1/disk"));
}

// volumeMode: Block: the published file is the device; what is written
// there is what the volume holds, read through libcowblk.
TEST_F(CsiNodeTest, ABlockVolumeIsTheVolume) {
  ASSERT_TRUE(client_->CreateVolume("blk", kSize).ok());
  const std::string target = Path("pods/blockdev");
  EXPECT_GRPC_OK(Stage("s1/blk", BlockCap()));
  EXPECT_GRPC_OK(Publish("s1/blk", target, BlockCap()));
  struct stat sb {};
  ASSERT_EQ(stat(target.c_str(), &sb), 0);
  EXPECT_TRUE(S_ISBLK(sb.st_mode));
  std::string data(1 << 20, '\0');
  for (size_t i = 0; i < data.size(); ++i) data[i] = static_cast<char>(i * 31 + 5);
  {
    const int fd = open(target.c_str(), O_WRONLY | O_CLOEXEC);
    ASSERT_GE(fd, 0);
    ASSERT_EQ(pwrite(fd, data.data(), data.size(), 8 << 20), static_cast<ssize_t>(data.size()));
    ASSERT_EQ(fsync(fd), 0);
    close(fd);
  }
  grpc::Status st;
  auto stats = Stats("s1/blk", target, &st);
  ASSERT_TRUE(st.ok()) << st.error_message();
  ASSERT_EQ(stats.usage_size(), 1);
  EXPECT_EQ(stats.usage(0).total(), static_cast<int64_t>(kSize));
  EXPECT_GRPC_OK(Unpublish("s1/blk", target));
  EXPECT_FALSE(fs::exists(target));
  EXPECT_GRPC_OK(Unstage("s1/blk"));

  auto volume = client_->OpenVolume("blk");
  ASSERT_TRUE(volume.ok()) << volume.status();
  std::string got(data.size(), '\0');
  ASSERT_TRUE((*volume)->Read(8 << 20, got.data(), got.size()).ok());
  EXPECT_TRUE(got == data) << "the volume does not hold what was written to the block device";
}

// The volume condition says when what carries a volume is gone: here its
// gateway, killed; unstage still takes the rest apart.
TEST_F(CsiNodeTest, AVolumeWhoseGatewayDiedIsAbnormal) {
  ASSERT_TRUE(client_->CreateVolume("blk", kSize).ok());
  const std::string target = Path("pods/blockdev");
  EXPECT_GRPC_OK(Stage("s1/blk", BlockCap()));
  EXPECT_GRPC_OK(Publish("s1/blk", target, BlockCap()));
  grpc::Status st;
  EXPECT_FALSE(Stats("s1/blk", target, &st).volume_condition().abnormal());
  const pid_t gateway = GatewayPid("blk");
  ASSERT_GT(gateway, 0);
  ASSERT_EQ(kill(gateway, SIGKILL), 0);
  // Gone once /proc says so (a zombie until its new parent reaps it).
  while (Running(gateway)) std::this_thread::yield();
  auto stats = Stats("s1/blk", target, &st);
  ASSERT_TRUE(st.ok()) << st.error_message();
  EXPECT_TRUE(stats.volume_condition().abnormal());
  EXPECT_NE(stats.volume_condition().message().find("gateway"), std::string::npos)
      << stats.volume_condition().message();
  EXPECT_GRPC_OK(Unpublish("s1/blk", target));
  EXPECT_GRPC_OK(Unstage("s1/blk"));
  EXPECT_FALSE(fs::exists(Path("state") + "/s1_blk"));
}

// A plugin restart (a new process, the same state directory) keeps the
// staged volume working, and the new plugin unstages it cleanly.
TEST_F(CsiNodeTest, APluginRestartKeepsTheStagedVolume) {
  const std::string target = Path("target");
  EXPECT_GRPC_OK(Stage("s1/disk", MountCap()));
  EXPECT_GRPC_OK(Publish("s1/disk", target, MountCap()));
  ASSERT_TRUE(WriteFileSynced(target + "/before.txt", "written before the restart\n"));
  const pid_t gateway = GatewayPid("disk");

  EXPECT_EQ(StopPlugin(), 0);
  StartPlugin();

  // Still mounted and writable, the same gateway serving it.
  ASSERT_TRUE(WriteFileSynced(target + "/after.txt", "written after the restart\n"));
  EXPECT_EQ(GatewayPid("disk"), gateway);
  grpc::Status st;
  auto stats = Stats("s1/disk", target, &st);
  ASSERT_TRUE(st.ok()) << st.error_message();
  EXPECT_FALSE(stats.volume_condition().abnormal()) << stats.volume_condition().message();
  EXPECT_GRPC_OK(Stage("s1/disk", MountCap()));  // staged already: success, nothing redone
  EXPECT_EQ(GatewayPid("disk"), gateway);
  EXPECT_GRPC_OK(Unpublish("s1/disk", target));
  EXPECT_GRPC_OK(Unstage("s1/disk"));
  EXPECT_FALSE(Running(gateway));

  EXPECT_GRPC_OK(Stage("s1/disk", MountCap()));
  EXPECT_GRPC_OK(Publish("s1/disk", target, MountCap()));
  EXPECT_EQ(ReadWholeFile(target + "/before.txt"), "written before the restart\n");
  EXPECT_EQ(ReadWholeFile(target + "/after.txt"), "written after the restart\n");
}

// Bad requests get the spec's codes and leave nothing behind.
TEST_F(CsiNodeTest, BadRequestsChangeNothing) {
  VolumeCapability none;
  EXPECT_EQ(Stage("s1/disk", none).error_code(), grpc::StatusCode::INVALID_ARGUMENT);
  VolumeCapability multi = MountCap();
  multi.mutable_access_mode()->set_mode(VolumeCapability::AccessMode::MULTI_NODE_MULTI_WRITER);
  EXPECT_EQ(Stage("s1/disk", multi).error_code(), grpc::StatusCode::INVALID_ARGUMENT);
  EXPECT_EQ(Stage("s1/disk", MountCap("btrfs")).error_code(), grpc::StatusCode::INVALID_ARGUMENT);
  VolumeCapability bad_flag = MountCap();
  bad_flag.mutable_mount()->add_mount_flags("ro,exec;rm -rf /");
  EXPECT_EQ(Stage("s1/disk", bad_flag).error_code(), grpc::StatusCode::INVALID_ARGUMENT);
  EXPECT_EQ(Stage("s9/disk", MountCap()).error_code(), grpc::StatusCode::NOT_FOUND);
  EXPECT_EQ(Stage("nodisk", MountCap()).error_code(), grpc::StatusCode::NOT_FOUND);
  grpc::Status missing = Stage("s1/missing", MountCap());
  EXPECT_EQ(missing.error_code(), grpc::StatusCode::NOT_FOUND) << missing.error_message();
  EXPECT_FALSE(fs::exists(Path("state") + "/s1_missing")) << "a failed stage left its state";
  EXPECT_FALSE(IsMountPoint(Path("staging")));
  // Publish before stage.
  EXPECT_EQ(Publish("s1/disk", Path("target"), MountCap()).error_code(),
            grpc::StatusCode::FAILED_PRECONDITION);
  // Staged as a filesystem, asked again as a block device.
  EXPECT_GRPC_OK(Stage("s1/disk", MountCap()));
  EXPECT_EQ(Stage("s1/disk", BlockCap()).error_code(), grpc::StatusCode::ALREADY_EXISTS);
  EXPECT_GRPC_OK(Unstage("s1/disk"));
}

// cowblkd with mutual TLS and tokens, as the tls overlay runs it; the plugin
// has no credentials of its own: the gateway connects with the secrets of
// the stage request (the StorageClass's node-stage secret).
class CsiNodeTlsTest : public CsiNodeTest {
 protected:
  void SetUp() override {
    ASSERT_EQ(pki_.Generate(), "");
    std::ofstream(pki_.File("tokens")) << "admin-token admin\n";
    CsiNodeTest::SetUp();
  }
  ServerConfig ServerArgs() override {
    ServerConfig config;
    config.args = {"--tls-cert",      pki_.File("server.pem"), "--tls-key",    pki_.File("server.key"),
                   "--tls-client-ca", pki_.File("ca.pem"),     "--token-file", pki_.File("tokens")};
    return config;
  }
  ClientOptions AdminOptions() override {
    ClientOptions o;
    o.tls_ca_file = pki_.File("ca.pem");
    o.tls_cert_file = pki_.File("client.pem");
    o.tls_key_file = pki_.File("client.key");
    o.token = "admin-token";
    return o;
  }
  std::map<std::string, std::string> Secrets(const std::string& token) {
    return {{"ca.crt", pki_.Read("ca.pem")},
            {"tls.crt", pki_.Read("client.pem")},
            {"tls.key", pki_.Read("client.key")},
            {"token", token}};
  }
  Pki pki_;
};

TEST_F(CsiNodeTlsTest, TheStageSecretsCarryTheCredentials) {
  const std::string target = Path("target");
  // No credentials at all: the server refuses the gateway's TLS handshake.
  grpc::Status plain = Stage("s1/disk", MountCap());
  EXPECT_FALSE(plain.ok());
  EXPECT_FALSE(fs::exists(Path("state") + "/s1_disk")) << "a failed stage left its state";
  // A key the plugin does not know: refused, named, nothing staged.
  auto odd = Secrets("admin-token");
  odd["password"] = "hunter2";
  grpc::Status unknown = Stage("s1/disk", MountCap(), odd);
  EXPECT_EQ(unknown.error_code(), grpc::StatusCode::INVALID_ARGUMENT);
  EXPECT_NE(unknown.error_message().find("password"), std::string::npos);
  EXPECT_EQ(unknown.error_message().find("hunter2"), std::string::npos) << "a secret in an error";
  // A token the server does not know: the gateway is refused, so is the
  // stage, and it leaves nothing.
  grpc::Status ro = Stage("s1/disk", MountCap(), Secrets("wrong-token"));
  EXPECT_EQ(ro.error_code(), grpc::StatusCode::PERMISSION_DENIED) << ro.error_message();
  EXPECT_FALSE(IsMountPoint(Path("staging")));

  EXPECT_GRPC_OK(Stage("s1/disk", MountCap(), Secrets("admin-token")));
  struct stat sb {};
  ASSERT_EQ(stat((Path("state") + "/s1_disk/secrets/tls.key").c_str(), &sb), 0);
  EXPECT_EQ(sb.st_mode & 0777, 0600u);
  ASSERT_EQ(stat(Path("state").c_str(), &sb), 0);
  EXPECT_EQ(sb.st_mode & 0777, 0700u);
  EXPECT_GRPC_OK(Publish("s1/disk", target, MountCap()));
  ASSERT_TRUE(WriteFileSynced(target + "/tls.txt", "over mutual TLS with a token\n"));
  EXPECT_GRPC_OK(Unpublish("s1/disk", target));
  EXPECT_GRPC_OK(Unstage("s1/disk"));
  EXPECT_FALSE(fs::exists(Path("state") + "/s1_disk/secrets")) << "credentials left after unstage";
}

}  // namespace
}  // namespace cowblk::testing
