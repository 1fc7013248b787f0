// cowblk: the command-line client of cowblkd (docs/cli.md).

#include <signal.h>
#include <unistd.h>

#include <cstdio>
#include <iostream>

#include "client/cli/context.h"
#include "client/cli/output.h"
#include "common/malloc_tuning.h"
#include "common/version.h"

namespace cowblk::cli {

std::atomic<bool> g_interrupted{false};

absl::StatusOr<Client*> Context::client() {
  if (client_) return &*client_;
  auto o = ToClientOptions(flags, flags.server);
  if (!o.ok()) return o.status();
  auto c = Client::Create(*o);
  if (!c.ok()) return c.status();
  client_.emplace(*std::move(c));
  return &*client_;
}

void Context::Print(const nlohmann::json& j, const std::string& text) const {
  if (flags.json) {
    std::cout << j.dump(2) << "\n";
  } else if (!text.empty()) {
    std::cout << text;
    if (text.back() != '\n') std::cout << "\n";
  }
  std::cout.flush();
}

bool Context::progress() const { return !flags.json && !flags.quiet && isatty(STDERR_FILENO); }

namespace {

void OnSignal(int) { g_interrupted.store(true); }

}  // namespace

void CatchInterrupts() {
  struct sigaction sa = {};
  sa.sa_handler = OnSignal;
  sigaction(SIGINT, &sa, nullptr);
  sigaction(SIGTERM, &sa, nullptr);
}

namespace {

int Main(int argc, char** argv) {
  Context ctx;
  CLI::App app{"cowblk: volumes, images and data of a cowblkd server"};
  app.require_subcommand(1);
  app.set_version_flag("--version", VersionLine("cowblk"), "Print the version and git commit");
  // Global flags may come after the command too: `cowblk volume ls --json`.
  app.fallthrough();
  GlobalFlags& f = ctx.flags;
  app.add_option("-s,--server", f.server, "Server address host:port")
      ->envname("COWBLK_SERVER")
      ->capture_default_str();
  app.add_flag("--tls", f.tls, "Use TLS (implied by the --tls-* files)")->envname("COWBLK_TLS");
  app.add_option("--tls-ca", f.tls_ca, "CA certificates (PEM) to verify the server with")
      ->envname("COWBLK_TLS_CA");
  app.add_option("--tls-cert", f.tls_cert, "Client certificate (PEM), for mutual TLS")
      ->envname("COWBLK_TLS_CERT");
  app.add_option("--tls-key", f.tls_key, "Client private key (PEM), for mutual TLS")
      ->envname("COWBLK_TLS_KEY");
  app.add_option("--tls-server-name", f.tls_server_name,
                 "Name the server certificate must carry, if not the host of --server")
      ->envname("COWBLK_TLS_SERVER_NAME");
  app.add_option("--token-file", f.token_file, "File whose first line is the bearer token")
      ->envname("COWBLK_TOKEN_FILE");
  app.add_option("--timeout", f.timeout_seconds, "Seconds each call may take")
      ->envname("COWBLK_TIMEOUT")
      ->check(CLI::Range(1, 86400))
      ->capture_default_str();
  app.add_option("--channels", f.channels, "Connections to the server (parallel transfers)")
      ->envname("COWBLK_CHANNELS")
      ->check(CLI::Range(1, 64))
      ->capture_default_str();
  app.add_option("--keepalive", f.keepalive_seconds,
                 "Seconds of silence on a connection before the client pings the server "
                 "(0: never; below 10 the server may refuse the pings)")
      ->envname("COWBLK_KEEPALIVE")
      ->check(CLI::Range(0, 86400))
      ->capture_default_str();
  app.add_option("--keepalive-timeout", f.keepalive_timeout_seconds,
                 "Seconds a ping may go unanswered before the connection counts as dead")
      ->envname("COWBLK_KEEPALIVE_TIMEOUT")
      ->check(CLI::Range(1, 86400))
      ->capture_default_str();
  app.add_flag("--json", f.json, "Print results as JSON");
  app.add_flag("-q,--quiet", f.quiet, "No progress bar, no summary line of cp");
  app.footer(
      "Exit status: 0 ok, 1 failed, 2 bad usage, 3 server unreachable or too slow, 4 not found,\n"
      "5 already exists, 6 not authenticated or not allowed. Manual: docs/cli.md");

  AddVolumeCommands(app, ctx);
  AddAllocationCommands(app, ctx);
  AddImageCommands(app, ctx);
  AddSnapshotCommands(app, ctx);
  AddCopyCommand(app, ctx);
  AddRangeCommands(app, ctx);
  AddHealthCommand(app, ctx);
  AddNbdCommand(app, ctx);
  AddMapCommands(app, ctx);
  AddTopCommand(app, ctx);
  AddServerCommands(app, ctx);

  try {
    app.parse(argc, argv);
  } catch (const CLI::CallForHelp& e) {
    return app.exit(e);
  } catch (const CLI::CallForAllHelp& e) {
    return app.exit(e);
  } catch (const CLI::CallForVersion& e) {
    return app.exit(e);
  } catch (const CLI::ParseError& e) {
    std::cerr << "cowblk: " << e.what() << " (run with --help for usage)\n";
    return kExitUsage;
  }
  if (!ctx.run) {
    std::cerr << "cowblk: no command given (run with --help for usage)\n";
    return kExitUsage;
  }
  // A closed stdout (cowblk read ... | head) comes back as EPIPE, so that a
  // command cleans up (a download's temporary volume) before main() ends.
  signal(SIGPIPE, SIG_IGN);

  absl::Status status = ctx.run();
  if (status.ok()) return kExitOk;
  if (!IsStdoutClosed(status)) std::cerr << ErrorLine(ctx.what, status) << "\n";
  return ExitCode(status);
}

}  // namespace
}  // namespace cowblk::cli

int main(int argc, char** argv) {
  cowblk::TuneMallocForLargeBuffers();
  const int rc = cowblk::cli::Main(argc, argv);
  if (rc == cowblk::cli::kExitClosedPipe) {
    // Everything is cleaned up: end as `seq 1000000 | head` does, quietly,
    // by the signal that was held back.
    signal(SIGPIPE, SIG_DFL);
    raise(SIGPIPE);
  }
  return rc;
}
