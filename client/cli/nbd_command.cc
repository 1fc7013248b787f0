// cowblk nbd [VOLUME...|--all]: a local NBD server in front of remote
// volumes (client/gateway), over the connection the global flags describe
// (TLS, mutual TLS, a token, channels), as rbd-nbd is over librbd. qemu,
// nbdcopy, nbdinfo, nbdfuse and nbd-client then use a volume while only
// authenticated, encrypted gRPC crosses the network (docs/attach.md).
//
// Lifecycle: listen (errors here need no server), fork with --daemon, open
// the volumes, write --pid-file, serve; print one NBD URI per export. On
// SIGINT or SIGTERM: stop accepting, answer the requests in flight, flush
// every volume (within --stop-timeout), remove the socket and the pid file,
// exit 0 (non-zero when a flush failed, by its code: 3 when the server could
// not be reached in time; data the clients were told is written may not be).

#include <signal.h>
#include <unistd.h>

#include <cstdio>
#include <cstdlib>
#include <future>
#include <iostream>
#include <optional>
#include <vector>

#include "absl/strings/str_cat.h"
#include "client/cli/context.h"
#include "client/cli/daemon.h"
#include "client/cli/output.h"
#include "client/gateway/listener.h"
#include "client/gateway/server.h"
#include "common/log.h"

namespace cowblk::cli {
namespace {

struct NbdArgs {
  std::vector<std::string> volumes;
  bool all = false;
  std::string socket;
  std::string listen;
  bool allow_non_loopback = false;
  bool daemon = false;
  std::string pid_file;
  int max_connections = 64;
  int stop_timeout_s = 10;
};

std::string DefaultSocket() {
  const char* runtime = std::getenv("XDG_RUNTIME_DIR");
  if (runtime != nullptr && *runtime != '\0') return absl::StrCat(runtime, "/cowblk-nbd.sock");
  return geteuid() == 0 ? "/run/cowblk-nbd.sock" : absl::StrCat("/tmp/cowblk-nbd-", geteuid(), ".sock");
}

// Opens the exports: the named volumes, or every volume the token sees.
absl::StatusOr<gateway::Exports> OpenExports(Context& ctx, const NbdArgs& a) {
  auto client = ctx.client();
  if (!client.ok()) return client.status();
  std::vector<std::string> names = a.volumes;
  if (a.all) {
    auto list = (*client)->ListVolumes();
    if (!list.ok()) return list.status();
    for (const VolumeInfo& v : *list) names.push_back(v.name);
    if (names.empty()) return absl::NotFoundError("--all: the server shows no volume");
  }
  gateway::Exports exports;
  for (const std::string& name : names) {
    if (exports.count(name) != 0) continue;
    auto v = (*client)->OpenVolume(name);
    if (!v.ok()) return absl::Status(v.status().code(), absl::StrCat(name, ": ", v.status().message()));
    exports[name] = *std::move(v);
  }
  return exports;
}

// Flushes every volume at once, each within `timeout` (a server that is
// gone or does not answer costs that, not the client's --timeout), then
// closes them; the first failure.
absl::Status FlushAll(gateway::Exports* exports, std::chrono::milliseconds timeout) {
  absl::Status first;
  std::vector<std::future<absl::Status>> flushes;
  for (auto& [name, volume] : *exports) {
    flushes.push_back(volume->FlushAsync(IoOptions{.deadline = timeout}));
  }
  size_t i = 0;
  for (auto& [name, volume] : *exports) {
    absl::Status s = flushes[i++].get();
    const VolumeStats st = volume->stats();
    Log(s.ok() ? LogLevel::kInfo : LogLevel::kError, "nbd_gateway_flushed",
        {{"volume", name},
         {"status", s.ok() ? "ok" : s.ToString()},
         {"requests", std::to_string(st.requests)},
         {"messages_sent", std::to_string(st.messages_sent)},
         {"messages_received", std::to_string(st.messages_received)}});
    if (!s.ok() && first.ok()) first = absl::Status(s.code(), absl::StrCat(name, ": flush: ", s.message()));
    volume->Close();
  }
  return first;
}

absl::Status Serve(Context& ctx, const NbdArgs& a, gateway::Listener* listener,
                   std::optional<Daemon>* daemon) {
  auto exports = OpenExports(ctx, a);
  if (!exports.ok()) return exports.status();
  if (!a.pid_file.empty()) {
    if (absl::Status s = WritePidFile(a.pid_file); !s.ok()) return s;
  }
  gateway::ServerOptions options;
  options.max_connections = a.max_connections;
  auto server = gateway::Server::Start(listener->fd, &*exports, options);
  if (!server.ok()) return server.status();
  // One URI a line, or with --json {"exports": [{"name", "uri", "size"}]}.
  std::string uris;
  nlohmann::json list = nlohmann::json::array();
  for (const auto& [name, volume] : *exports) {
    const std::string uri = gateway::ExportUri(*listener, name);
    uris += uri + "\n";
    list.push_back({{"name", name}, {"uri", uri}, {"size", volume->size()}});
  }
  if (ctx.flags.json) uris = nlohmann::json{{"exports", list}}.dump(2) + "\n";
  Log(LogLevel::kInfo, "nbd_gateway_serving",
      {{"address", listener->socket_path.empty()
                       ? absl::StrCat(listener->host, ":", listener->port)
                       : absl::StrCat("unix:", listener->socket_path)},
       {"exports", std::to_string(exports->size())},
       {"pid", std::to_string(getpid())}});
  if (*daemon) {
    (*daemon)->Ready(uris);
  } else {
    std::cout << uris << std::flush;
  }
  sigset_t stop;
  sigemptyset(&stop);
  sigaddset(&stop, SIGINT);
  sigaddset(&stop, SIGTERM);
  int sig = 0;
  sigwait(&stop, &sig);
  Log(LogLevel::kInfo, "nbd_gateway_stopping", {{"signal", sig == SIGINT ? "SIGINT" : "SIGTERM"}});
  (*server)->Shutdown();
  server->reset();
  return FlushAll(&*exports, std::chrono::seconds(a.stop_timeout_s));
}

absl::Status RunNbd(Context& ctx, const NbdArgs& a) {
  if (a.all == !a.volumes.empty()) {
    return absl::InvalidArgumentError("name the volumes to export, or --all (not both)");
  }
  if (!a.socket.empty() && !a.listen.empty()) {
    return absl::InvalidArgumentError("--socket and --listen: choose one");
  }
  if (a.allow_non_loopback && a.listen.empty()) {
    return absl::InvalidArgumentError("--allow-non-loopback goes with --listen");
  }
  // Before any thread: every thread inherits the mask, and the main
  // thread takes the signals with sigwait.
  sigset_t stop;
  sigemptyset(&stop);
  sigaddset(&stop, SIGINT);
  sigaddset(&stop, SIGTERM);
  pthread_sigmask(SIG_BLOCK, &stop, nullptr);
  auto listener = gateway::Listen({a.listen.empty() && a.socket.empty() ? DefaultSocket() : a.socket,
                                   a.listen, a.allow_non_loopback});
  if (!listener.ok()) return listener.status();
  std::optional<Daemon> daemon;
  if (a.daemon) {
    auto d = Daemon::Daemonize();
    if (!d.ok()) {
      gateway::CloseListener(&*listener);
      return d.status();
    }
    daemon.emplace(*std::move(d));
  }
  absl::Status s = Serve(ctx, a, &*listener, &daemon);
  gateway::CloseListener(&*listener);
  if (!a.pid_file.empty()) unlink(a.pid_file.c_str());
  if (!s.ok() && daemon) daemon->Failed(ExitCode(s), ErrorLine(ctx.what, s));
  return s;
}

}  // namespace

void AddNbdCommand(CLI::App& app, Context& ctx) {
  auto a = std::make_shared<NbdArgs>();
  CLI::App* c = app.add_subcommand(
      "nbd", "Serve volumes over NBD on a local socket (a gateway for qemu, nbdfuse, nbd-client)");
  c->add_option("volumes", a->volumes, "Volumes to export (the export name is the volume's)");
  c->add_flag("--all", a->all, "Export every volume the token can see (at start)");
  c->add_option("--socket", a->socket,
                "Unix socket to listen on (default $XDG_RUNTIME_DIR/cowblk-nbd.sock, "
                "/run/cowblk-nbd.sock for root)");
  c->add_option("--listen", a->listen, "Listen on HOST:PORT instead (a loopback host)");
  c->add_flag("--allow-non-loopback", a->allow_non_loopback,
              "Let --listen use a host that is not loopback (NBD is neither authenticated nor "
              "encrypted: anyone who reaches it uses the volumes with these credentials)");
  c->add_flag("--daemon", a->daemon, "Run in the background once serving");
  c->add_option("--pid-file", a->pid_file, "Write the process id here while serving");
  c->add_option("--max-connections", a->max_connections, "NBD clients served at once")
      ->check(CLI::Range(1, 4096))
      ->capture_default_str();
  c->add_option("--stop-timeout", a->stop_timeout_s,
                "Seconds the final flush may take on SIGINT/SIGTERM (then exit 1 naming it)")
      ->check(CLI::Range(1, 3600))
      ->capture_default_str();
  c->callback([&ctx, a] {
    ctx.what = "nbd";
    ctx.run = [&ctx, a] { return RunNbd(ctx, *a); };
  });
}

}  // namespace cowblk::cli
