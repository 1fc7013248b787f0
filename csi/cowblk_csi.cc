// cowblk-csi: the Kubernetes CSI plugin of cowblk (docs/csi.md). Serves
// the csi.v1 Identity, Controller (unless --no-controller) and Node (with
// --node-id) services on a Unix socket over the cowblkd servers given with
// --server.

#include <signal.h>
#include <sys/stat.h>
#include <unistd.h>

#include <CLI/CLI.hpp>
#include <grpcpp/grpcpp.h>

#include <iostream>
#include <string>
#include <vector>

#include "absl/strings/match.h"
#include "client/cli/connection.h"
#include "common/log.h"
#include "common/version.h"
#include "csi/controller.h"
#include "csi/node.h"

namespace {

int Fatal(const std::string& event, const std::string& error) {
  cowblk::Log(cowblk::LogLevel::kError, event, {{"error", error}});
  return 1;
}

}  // namespace

int main(int argc, char** argv) {
  CLI::App app{"cowblk-csi: the CSI plugin (Identity, Controller, Node) of cowblk"};
  app.set_version_flag("--version", cowblk::VersionLine("cowblk-csi"),
                       "Print the version and git commit");
  std::string endpoint;
  std::vector<std::string> servers;
  std::string driver_name = cowblk::csi::kDefaultDriverName;
  std::string default_size = "1073741824";
  cowblk::cli::ConnectionFlags conn;
  cowblk::csi::NodeOptions node;
  bool controller_off = false;
  app.add_option("--endpoint", endpoint, "The CSI socket: unix:///PATH (or a bare /PATH)")
      ->envname("CSI_ENDPOINT")
      ->required();
  app.add_option("--server", servers,
                 "A cowblkd server: NAME=HOST:PORT or NAME=HOST:PORT@ZONE (repeat the flag; "
                 "NAME is the first part of every volume id on it)")
      ->required();
  app.add_option("--driver-name", driver_name, "The CSI driver name")->capture_default_str();
  app.add_option("--default-size", default_size,
                 "Bytes of a volume whose claim asks for no size")->capture_default_str();
  app.add_flag("--tls", conn.tls, "Use TLS (implied by the --tls-* files)")->envname("COWBLK_TLS");
  app.add_option("--tls-ca", conn.tls_ca, "CA certificates (PEM) to verify the servers with")
      ->envname("COWBLK_TLS_CA");
  app.add_option("--tls-cert", conn.tls_cert, "Client certificate (PEM), for mutual TLS")
      ->envname("COWBLK_TLS_CERT");
  app.add_option("--tls-key", conn.tls_key, "Client private key (PEM), for mutual TLS")
      ->envname("COWBLK_TLS_KEY");
  app.add_option("--tls-server-name", conn.tls_server_name,
                 "Name the server certificates must carry")->envname("COWBLK_TLS_SERVER_NAME");
  app.add_option("--token-file", conn.token_file, "File whose first line is the bearer token")
      ->envname("COWBLK_TOKEN_FILE");
  app.add_option("--timeout", conn.timeout_seconds, "Seconds each call to a server may take")
      ->capture_default_str();
  app.add_option("--node-id", node.node_id,
                 "Serve the Node service as this node (the Kubernetes node name); without it "
                 "the plugin serves Identity and Controller only")
      ->envname("CSI_NODE_ID");
  app.add_option("--zone", node.zone, "This node's zone (topology.cowblk.io/zone)")
      ->envname("CSI_NODE_ZONE");
  app.add_option("--state-dir", node.state_dir,
                 "Node: where staged volumes keep their gateway, FUSE mount and state")
      ->capture_default_str();
  app.add_option("--cowblk-bin", node.cowblk_bin, "Node: the cowblk CLI (runs `cowblk nbd`)")
      ->capture_default_str();
  app.add_option("--nbdfuse-bin", node.nbdfuse_bin, "Node: nbdfuse (from libnbd-bin)")
      ->capture_default_str();
  app.add_flag("--no-controller", controller_off,
               "Do not serve the Controller service (a node plugin of a DaemonSet)");
  CLI11_PARSE(app, argc, argv);

  std::string path = endpoint;
  if (absl::StartsWith(path, "unix://")) path = path.substr(7);
  if (path.empty() || path[0] != '/') {
    return Fatal("bad_flags", "--endpoint must be unix:///ABSOLUTE/PATH, got " + endpoint);
  }
  cowblk::csi::DriverOptions options;
  options.driver_name = driver_name;
  try {
    size_t used = 0;
    options.default_size = std::stoull(default_size, &used);
    if (used != default_size.size()) throw std::invalid_argument("trailing");
  } catch (const std::exception&) {
    return Fatal("bad_flags", "--default-size must be a number of bytes");
  }
  for (const std::string& s : servers) {
    auto c = cowblk::csi::ParseServer(s);
    if (!c.ok()) return Fatal("bad_flags", std::string(c.status().message()));
    options.servers.push_back(*c);
  }
  auto client = cowblk::cli::ToClientOptions(conn, "");
  if (!client.ok()) return Fatal("bad_flags", std::string(client.status().message()));
  options.client = *client;
  options.client.channels = 1;
  auto driver = cowblk::csi::Driver::Create(options);
  if (!driver.ok()) return Fatal("bad_flags", std::string(driver.status().message()));

  // Block the stop signals before gRPC starts its threads: sigwait below
  // takes them.
  sigset_t signals;
  sigemptyset(&signals);
  sigaddset(&signals, SIGINT);
  sigaddset(&signals, SIGTERM);
  pthread_sigmask(SIG_BLOCK, &signals, nullptr);

  // A socket left by an earlier run would make the bind fail.
  struct stat st {};
  if (lstat(path.c_str(), &st) == 0 && S_ISSOCK(st.st_mode)) unlink(path.c_str());

  cowblk::csi::IdentityService identity(driver->get(), !controller_off);
  cowblk::csi::ControllerService controller(driver->get());
  // The gateway connects as the plugin does: the same TLS files and token.
  node.gateway = conn;
  cowblk::csi::NodeService node_service(driver->get(), node);
  grpc::ServerBuilder builder;
  builder.AddListeningPort("unix://" + path, grpc::InsecureServerCredentials());
  builder.RegisterService(&identity);
  if (!controller_off) builder.RegisterService(&controller);
  if (!node.node_id.empty()) builder.RegisterService(&node_service);
  std::unique_ptr<grpc::Server> server = builder.BuildAndStart();
  if (!server) return Fatal("listen_failed", "cannot listen on " + path);
  std::string names;
  for (const auto& s : options.servers) names += (names.empty() ? "" : ",") + s.name;
  cowblk::Log(cowblk::LogLevel::kInfo, "serving",
              {{"endpoint", "unix://" + path}, {"driver", driver_name}, {"servers", names},
               {"controller", controller_off ? "off" : "on"},
               {"node", node.node_id.empty() ? "off" : node.node_id}});
  int sig = 0;
  sigwait(&signals, &sig);
  cowblk::Log(cowblk::LogLevel::kInfo, "stopping", {{"signal", std::to_string(sig)}});
  server->Shutdown();
  unlink(path.c_str());
  return 0;
}
