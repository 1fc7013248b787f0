// cowblkd: the cowblk daemon. Serves the COW volumes of one data directory
// over gRPC (cowblk.v1.VolumeService and BlockService), with the standard
// health service and server reflection. See docs/cowblkd.md.

#include <grpcpp/grpcpp.h>
#include <grpcpp/security/server_credentials.h>
#include <signal.h>
#include <unistd.h>

#include <chrono>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <iostream>
#include <sstream>

#include "CLI/CLI.hpp"
#include "absl/strings/str_cat.h"
#include "common/log.h"
#include "common/malloc_tuning.h"
#include "common/version.h"
#include "server/core/budget.h"
#include "server/core/send_watchdog.h"
#include "server/engine/engine.h"
#include "server/engine/held_io.h"
#include "server/metrics/budget_collector.h"
#include "server/metrics/data_dir_collector.h"
#include "server/metrics/grpc_refused_collector.h"
#include "server/metrics/malloc_collector.h"
#include "server/metrics/process_collector.h"
#include "server/metrics/metrics_server.h"
#include "server/metrics/nbd_collector.h"
#include "server/metrics/volume_state_collector.h"
#include "server/store/store.h"
#include "server/transport/grpc/accept_guard.h"
#include "server/transport/grpc/auth.h"
#include "server/transport/grpc/block_service.h"
#include "server/transport/grpc/call_tracker.h"
#include "server/transport/grpc/grpc_log.h"
#include "server/transport/grpc/health_service.h"
#include "server/transport/grpc/reflection_service.h"
#include "server/transport/grpc/server_options.h"
#include "server/transport/grpc/volume_service.h"
#include "server/transport/nbd/nbd_server.h"

namespace cowblk {
namespace {

struct Flags {
  std::string data_dir = "./var";
  std::string listen = "127.0.0.1:7800";
  std::string health_listen;
  int engine_threads = 1;
  std::string io_backend = "auto";
  unsigned io_threads = 8;
  unsigned engine_poll_us = 0;
  std::string durability = "deferred";
  std::string cache = "writeback";
  uint32_t commit_interval_ms = 1000;
  uint32_t write_split_kib = 0;
  uint32_t max_in_flight = 256;
  uint64_t max_stream_bytes = uint64_t{64} << 20;
  uint64_t max_server_bytes = uint64_t{1} << 30;
  int drain_seconds = 10;
  std::string tls_cert, tls_key, tls_client_ca;
  std::string token_file;
  std::string log_level = "info";
  std::string log_format = "logfmt";
  std::string metrics_listen = "127.0.0.1:9780";
  std::string metrics_detail = "volume";
  std::string nbd_listen;
  std::string nbd_zero_copy = "on";
  std::string nbd_inline_writes = "on";
  uint32_t nbd_max_connections = 256;
  uint32_t nbd_handshake_timeout_seconds = 30;
  uint32_t nbd_idle_timeout_seconds = 0;
  uint32_t nbd_send_timeout_seconds = 60;
  uint32_t grpc_send_timeout_seconds = 60;
  std::string debug_hold_bitmap_writes;
  // gRPC server limits, --max-message-bytes among them (issue #20, item 7);
  // their defaults are GrpcServerLimits'.
  rpc::GrpcServerLimits grpc;
};

std::string ReadFile(const std::string& path) {
  std::ifstream in(path);
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

std::shared_ptr<grpc::ServerCredentials> Credentials(const Flags& f, std::string* error) {
  if (f.tls_cert.empty() && f.tls_key.empty()) {
    if (!f.tls_client_ca.empty()) *error = "--tls-client-ca needs --tls-cert and --tls-key";
    return grpc::InsecureServerCredentials();
  }
  if (f.tls_cert.empty() || f.tls_key.empty()) {
    *error = "--tls-cert and --tls-key go together";
    return nullptr;
  }
  grpc::SslServerCredentialsOptions opts(
      f.tls_client_ca.empty() ? GRPC_SSL_DONT_REQUEST_CLIENT_CERTIFICATE
                              : GRPC_SSL_REQUEST_AND_REQUIRE_CLIENT_CERTIFICATE_AND_VERIFY);
  opts.pem_key_cert_pairs.push_back({ReadFile(f.tls_key), ReadFile(f.tls_cert)});
  if (!f.tls_client_ca.empty()) opts.pem_root_certs = ReadFile(f.tls_client_ca);
  if (opts.pem_key_cert_pairs[0].private_key.empty() || opts.pem_key_cert_pairs[0].cert_chain.empty()) {
    *error = "cannot read --tls-cert or --tls-key";
    return nullptr;
  }
  return grpc::SslServerCredentials(opts);
}

int Fatal(const std::string& event, const std::string& error) {
  Log(LogLevel::kError, event, {{"error", error}});
  return 1;
}

int Main(int argc, char** argv) {
  Flags f;
  CLI::App app{"cowblkd: serves copy-on-write volumes (UML COW format) over gRPC"};
  app.set_version_flag("--version", VersionLine("cowblkd"),
                       "Print the version and git commit");
  app.footer("Manual: docs/cowblkd.md");
  app.add_option("--data-dir", f.data_dir, "Data directory: images/ and volumes/ live here")
      ->envname("COWBLK_DATA_DIR")->capture_default_str();
  app.add_option("--listen", f.listen, "gRPC address (host:port; port 0 picks one)")
      ->envname("COWBLK_LISTEN")->capture_default_str();
  app.add_option("--health-listen", f.health_listen,
                 "Extra plaintext address serving only grpc.health.v1 (kubelet probes); empty: off")
      ->envname("COWBLK_HEALTH_LISTEN");
  app.add_option("--engine-threads", f.engine_threads, "Engine threads (each with its own I/O backend)")
      ->envname("COWBLK_ENGINE_THREADS")->check(CLI::Range(1, 64))->capture_default_str();
  app.add_option("--io-backend", f.io_backend,
                 "auto: io_uring, or worker threads when io_uring is refused (seccomp, "
                 "kernel.io_uring_disabled); uring: io_uring only; threads: worker threads only")
      ->envname("COWBLK_IO_BACKEND")
      ->check(CLI::IsMember({"auto", "uring", "threads"}))
      ->capture_default_str();
  app.add_option("--io-threads", f.io_threads,
                 "Threads backend: I/O worker threads per engine thread")
      ->envname("COWBLK_IO_THREADS")->check(CLI::Range(1, 64))->capture_default_str();
  app.add_option("--engine-poll-us", f.engine_poll_us,
                 "After NBD requests, an engine thread polls for more this long (microseconds, "
                 "0-1000) before it sleeps: lower latency at low queue depth, a busy core while "
                 "requests keep coming; 0: off")
      ->envname("COWBLK_ENGINE_POLL_US")->check(CLI::Range(0, 1000))->capture_default_str();
  app.add_option("--durability", f.durability,
                 "deferred: acknowledged once written, bits committed in the background "
                 "after their data is synced (flush waits for them; a crash of cowblkd may "
                 "lose unflushed writes, and clients are told: epochs); ordered: data is "
                 "synced before the bitmap bit that exposes it, then the write is "
                 "acknowledged; "
                 "unordered: no barrier (UML's behaviour, safe against process crashes only)")
      ->envname("COWBLK_DURABILITY")
      ->check(CLI::IsMember({"ordered", "deferred", "unordered"}))
      ->capture_default_str();
  app.add_option("--commit-interval-ms", f.commit_interval_ms,
                 "deferred durability: longest wait before acknowledged bits are committed "
                 "when no flush asks (0: continuously)")
      ->envname("COWBLK_COMMIT_INTERVAL_MS")->check(CLI::Range(0, 60000))->capture_default_str();
  app.add_option("--write-split-kib", f.write_split_kib,
                 "page cache: hand writes to the kernel in pieces that end at multiples of "
                 "this in the COW file (0: whole). Keeps folios small where ext4 uses large "
                 "ones: faster small rewrites after large writes, slower large writes "
                 "(docs/cowblkd.md)")
      ->envname("COWBLK_WRITE_SPLIT_KIB")
      ->check(CLI::Range(0, 65536) &
              CLI::Validator(
                  [](std::string& v) -> std::string {
                    char* end = nullptr;
                    const unsigned long n = std::strtoul(v.c_str(), &end, 10);  // NOLINT
                    return !v.empty() && *end == '\0' && n % 4 == 0 ? ""
                                                                   : "must be a multiple of 4";
                  },
                  "multiple of 4"))
      ->capture_default_str();
  app.add_option("--cache", f.cache, "COW file I/O: writeback (page cache) or none (O_DIRECT)")
      ->envname("COWBLK_CACHE")->check(CLI::IsMember({"writeback", "none"}))->capture_default_str();
  app.add_option("--max-in-flight", f.max_in_flight,
                 "Requests in progress per Session stream before it stops reading")
      ->envname("COWBLK_MAX_IN_FLIGHT")->check(CLI::Range(1, 65536))->capture_default_str();
  app.add_option("--max-message-bytes", f.grpc.max_message_bytes,
                 "Largest gRPC message accepted (at least 33 MiB: requests carry up to 32 MiB)")
      ->envname("COWBLK_MAX_MESSAGE_BYTES")
      ->check(CLI::Range(uint32_t{33} << 20, uint32_t{1} << 30))->capture_default_str();
  // Byte budgets of requests in flight (issue #20 item 3; docs/cowblkd.md
  // "Limits").
  app.add_option("--max-stream-bytes", f.max_stream_bytes,
                 "Request bytes (read buffers, write data) one Session, call or NBD "
                 "connection may hold in flight before the server stops reading it; larger "
                 "requests fail RESOURCE_EXHAUSTED")
      ->envname("COWBLK_MAX_STREAM_BYTES")
      ->check(CLI::Range(uint64_t{1} << 20, uint64_t{1} << 40))->capture_default_str();
  app.add_option("--max-server-bytes", f.max_server_bytes,
                 "Request bytes all streams and connections together may hold in flight; "
                 "beyond it they stop reading their clients until bytes come back")
      ->envname("COWBLK_MAX_SERVER_BYTES")
      ->check(CLI::Range(uint64_t{1} << 20, uint64_t{1} << 44))->capture_default_str();
  app.add_option("--grpc-send-timeout-seconds", f.grpc_send_timeout_seconds,
                 "A Session or Read call whose client takes no answer this long is "
                 "cancelled (its bytes go back to the budget); 0: never")
      ->envname("COWBLK_GRPC_SEND_TIMEOUT_SECONDS")->check(CLI::Range(0, 86400))
      ->capture_default_str();
  app.add_option("--drain-seconds", f.drain_seconds,
                 "On SIGTERM/SIGINT: time given to in-flight calls before they are cancelled")
      ->envname("COWBLK_DRAIN_SECONDS")->capture_default_str();
  app.add_option("--tls-cert", f.tls_cert, "Server certificate (PEM); enables TLS")
      ->envname("COWBLK_TLS_CERT");
  app.add_option("--tls-key", f.tls_key, "Server private key (PEM)")->envname("COWBLK_TLS_KEY");
  app.add_option("--tls-client-ca", f.tls_client_ca,
                 "CA (PEM) that client certificates must chain to; enables mutual TLS")
      ->envname("COWBLK_TLS_CLIENT_CA");
  app.add_option("--token-file", f.token_file,
                 "Bearer tokens with scopes, one per line: TOKEN admin|rw:GLOB|read:GLOB[,...]")
      ->envname("COWBLK_TOKEN_FILE");
  app.add_option("--log-level", f.log_level, "debug, info, warning or error")
      ->envname("COWBLK_LOG_LEVEL")->check(CLI::IsMember({"debug", "info", "warning", "error"}))
      ->capture_default_str();
  app.add_option("--log-format", f.log_format,
                 "logfmt (key=value), json (one object per line) or text (for a console)")
      ->envname("COWBLK_LOG_FORMAT")->check(CLI::IsMember({"logfmt", "json", "text"}))
      ->capture_default_str();
  app.add_option("--metrics-listen", f.metrics_listen,
                 "Prometheus metrics address, GET /metrics (host:port; port 0 picks one); "
                 "empty: off")
      ->envname("COWBLK_METRICS_LISTEN")->capture_default_str();
  app.add_option("--metrics-detail", f.metrics_detail,
                 "volume: latency histograms per volume (222 series a volume); server: "
                 "histograms per server, the rest per volume (33 series a volume)")
      ->envname("COWBLK_METRICS_DETAIL")->check(CLI::IsMember({"volume", "server"}))
      ->capture_default_str();
  app.add_option("--nbd-listen", f.nbd_listen,
                 "Also serve the volumes over NBD at this address (host:port; port 0 picks "
                 "one); with TLS on, TLS is required there (NBD_OPT_STARTTLS); with "
                 "--token-file, mutual TLS is needed and certificates map to scopes; empty: off")
      ->envname("COWBLK_NBD_LISTEN");
  app.add_option("--nbd-zero-copy", f.nbd_zero_copy,
                 "NBD reads of 256 KiB and more are spliced from the files into the socket "
                 "(no copy through memory; with --cache writeback)")
      ->envname("COWBLK_NBD_ZERO_COPY")->check(CLI::IsMember({"on", "off"}))
      ->capture_default_str();
  app.add_option("--nbd-inline-writes", f.nbd_inline_writes,
                 "The NBD connection writes a write's data into the COW file itself; the "
                 "engine then only sets the bits (with --cache writeback)")
      ->envname("COWBLK_NBD_INLINE_WRITES")->check(CLI::IsMember({"on", "off"}))
      ->capture_default_str();
  app.add_option("--nbd-max-connections", f.nbd_max_connections,
                 "NBD connections served at once (each has two threads); more are closed "
                 "at once and counted")
      ->envname("COWBLK_NBD_MAX_CONNECTIONS")->check(CLI::Range(1, 65536))
      ->capture_default_str();
  app.add_option("--nbd-handshake-timeout-seconds", f.nbd_handshake_timeout_seconds,
                 "An NBD client that has not chosen a volume this long after connecting is "
                 "cut (the whole handshake, however its bytes trickle in)")
      ->envname("COWBLK_NBD_HANDSHAKE_TIMEOUT_SECONDS")->check(CLI::Range(1, 3600))
      ->capture_default_str();
  app.add_option("--nbd-idle-timeout-seconds", f.nbd_idle_timeout_seconds,
                 "An NBD connection that received nothing this long with no request in "
                 "flight is closed; 0: never (kernel and qemu clients keep idle connections)")
      ->envname("COWBLK_NBD_IDLE_TIMEOUT_SECONDS")->check(CLI::Range(0, 86400))
      ->capture_default_str();
  app.add_option("--nbd-send-timeout-seconds", f.nbd_send_timeout_seconds,
                 "An NBD connection whose client takes no reply data this long is cut; 0: never")
      ->envname("COWBLK_NBD_SEND_TIMEOUT_SECONDS")->check(CLI::Range(0, 86400))
      ->capture_default_str();
  // gRPC server limits: docs/cowblkd.md "Limits".
  app.add_option("--max-streams-per-connection", f.grpc.max_streams_per_connection,
                 "gRPC calls open at once on one connection (HTTP/2 "
                 "SETTINGS_MAX_CONCURRENT_STREAMS); more wait in the client")
      ->envname("COWBLK_MAX_STREAMS_PER_CONNECTION")->check(CLI::Range(1, 65536))
      ->capture_default_str();
  app.add_option("--grpc-memory-bytes", f.grpc.memory_bytes,
                 "Memory gRPC may use for connections and messages in transit (its resource "
                 "quota); under pressure it reads less from its sockets")
      ->envname("COWBLK_GRPC_MEMORY_BYTES")
      ->check(CLI::Range(uint64_t{64} << 20, uint64_t{1} << 40))->capture_default_str();
  app.add_option("--grpc-max-threads", f.grpc.max_threads,
                 "Threads gRPC may run for administrative (synchronous) calls; more such "
                 "calls at once are refused with RESOURCE_EXHAUSTED")
      ->envname("COWBLK_GRPC_MAX_THREADS")->check(CLI::Range(4, 4096))->capture_default_str();
  app.add_option("--grpc-handshake-timeout-seconds", f.grpc.handshake_timeout_seconds,
                 "A gRPC connection that has not finished its TLS handshake and HTTP/2 "
                 "preface this long after connecting is closed")
      ->envname("COWBLK_GRPC_HANDSHAKE_TIMEOUT_SECONDS")->check(CLI::Range(1, 3600))
      ->capture_default_str();
  app.add_option("--grpc-keepalive-seconds", f.grpc.keepalive_seconds,
                 "The server pings a gRPC connection quiet this long (dead peers are found)")
      ->envname("COWBLK_GRPC_KEEPALIVE_SECONDS")->check(CLI::Range(1, 86400))
      ->capture_default_str();
  app.add_option("--grpc-keepalive-timeout-seconds", f.grpc.keepalive_timeout_seconds,
                 "A gRPC connection that does not answer the server's ping this long is "
                 "closed")
      ->envname("COWBLK_GRPC_KEEPALIVE_TIMEOUT_SECONDS")->check(CLI::Range(1, 3600))
      ->capture_default_str();
  app.add_option("--debug-hold-bitmap-writes", f.debug_hold_bitmap_writes,
                 "Debugging aid: a FIFO; each bitmap block write waits for one byte written "
                 "to it (docs/metrics.md)");
  CLI11_PARSE(app, argc, argv);
  SetLogLevel(f.log_level == "debug"     ? LogLevel::kDebug
              : f.log_level == "warning" ? LogLevel::kWarning
              : f.log_level == "error"   ? LogLevel::kError
                                         : LogLevel::kInfo);
  SetLogFormat(f.log_format == "json"   ? LogFormat::kJson
               : f.log_format == "text" ? LogFormat::kText
                                        : LogFormat::kLogfmt);
  rpc::RouteGrpcLogs();

  // Signals are taken by sigwait in this thread only; block them before any
  // other thread exists so every thread inherits the mask.
  sigset_t signals;
  sigemptyset(&signals);
  sigaddset(&signals, SIGTERM);
  sigaddset(&signals, SIGINT);
  pthread_sigmask(SIG_BLOCK, &signals, nullptr);
  // A peer that goes away mid-reply must cost its connection, not the
  // server: writes to a closed socket fail with EPIPE instead. (The NBD
  // export splices large reads into the socket, and splice(2) has no
  // MSG_NOSIGNAL; the metrics server's library ignores SIGPIPE too, so this
  // bit only with metrics off.)
  signal(SIGPIPE, SIG_IGN);

  std::string cred_error;
  auto creds = Credentials(f, &cred_error);
  if (!cred_error.empty()) return Fatal("bad_flags", cred_error);
  if (!f.nbd_listen.empty() && !f.token_file.empty() && f.tls_client_ca.empty()) {
    // NBD has no bearer tokens: its clients prove who they are with a
    // certificate, or the export would let them past the tokens.
    return Fatal("bad_flags",
                 "--nbd-listen with --token-file needs mutual TLS (--tls-cert, --tls-key and "
                 "--tls-client-ca): NBD clients authenticate with their certificate, mapped to "
                 "scopes by the token file's `x509:CN=NAME SCOPES` lines");
  }
  std::unique_ptr<rpc::Authorizer> auth = std::make_unique<rpc::Authorizer>();
  if (!f.token_file.empty()) {
    auto loaded = rpc::Authorizer::FromFile(f.token_file);
    if (!loaded.ok()) return Fatal("bad_token_file", std::string(loaded.status().message()));
    auth = *std::move(loaded);
  }

  // At the descriptor limit gRPC 1.51 would drop its listening ports.
  rpc::StartAcceptGuard();
  rpc::HealthServiceImpl health;
  std::unique_ptr<grpc::Server> health_server;
  if (!f.health_listen.empty()) {
    grpc::ServerBuilder hb;
    rpc::GrpcServerLimits health_limits = f.grpc;
    health_limits.max_message_bytes = 64 << 10;  // health requests are names
    rpc::ApplyLimits(health_limits, &hb);
    hb.AddListeningPort(f.health_listen, grpc::InsecureServerCredentials());
    hb.RegisterService(&health);
    health_server = hb.BuildAndStart();
    if (!health_server) return Fatal("listen_failed", "cannot listen on " + f.health_listen);
  }

  engine::EngineOptions engine_options;
  if (!f.debug_hold_bitmap_writes.empty()) {
    // Each engine parks its bitmap writes until bytes come down the FIFO.
    engine_options.wrap_io = [fifo = f.debug_hold_bitmap_writes](engine::IoBackend* real,
                                                                  engine::PostFn post) {
      return engine::HoldBitmapWritesUntilFifo(fifo, real, std::move(post));
    };
  }
  engine_options.poll_us = f.engine_poll_us;
  // Without metrics nobody reads the inbox wait either.
  engine_options.inbox_histogram = !f.metrics_listen.empty();
  engine_options.io_threads = f.io_threads;
  engine::ParseIoBackend(f.io_backend, &engine_options.io_backend);
  if (engine_options.io_backend == engine::IoBackendKind::kAuto) {
    // Resolved once here, so that the fallback is logged once, not per engine.
    int refused = 0;
    engine_options.io_backend = engine::ResolveIoBackend(engine::IoBackendKind::kAuto, &refused);
    if (refused != 0) {
      const char* errno_name = strerrorname_np(refused);
      Log(LogLevel::kWarning, "io_backend_fallback",
          {{"backend", "threads"},
           {"errno", errno_name != nullptr ? errno_name : std::to_string(refused)},
           {"error", std::string("io_uring_setup: ") + strerror(refused)}});
    }
  }
  auto engines = engine::EngineGroup::Start(f.engine_threads, engine_options);
  if (!engines.ok()) return Fatal("engine_failed", std::string(engines.status().message()));
  store::StoreOptions store_options;
  store_options.data_dir = f.data_dir;
  engine::ParseDurability(f.durability, &store_options.volume_options.durability);
  store_options.volume_options.commit_interval_ms = f.commit_interval_ms;
  store_options.volume_options.write_split_bytes = uint64_t{f.write_split_kib} * 1024;
  store_options.volume_options.cache =
      f.cache == "none" ? engine::CacheMode::kNone : engine::CacheMode::kWriteback;
  // Without metrics nobody reads the latency histograms: save the clock reads.
  store_options.volume_options.latency_histograms = !f.metrics_listen.empty();
  auto store = cowblk::store::Store::Open(store_options, engines->get());
  if (!store.ok()) return Fatal("data_dir_failed", std::string(store.status().message()));

  core::Budget budget(f.max_server_bytes);
  core::SendWatchdog send_watchdog(std::chrono::seconds(f.grpc_send_timeout_seconds));
  // The export starts first: every Volume answer tells its port (libcowblk
  // sends writes and large reads over it), and so do Session streams'
  // metadata, for older clients.
  std::unique_ptr<nbd::NbdServer> nbd;
  if (!f.nbd_listen.empty()) {
    cowblk::nbd::NbdServerOptions nbd_options;
    nbd_options.listen = f.nbd_listen;
    nbd_options.max_in_flight = f.max_in_flight;
    nbd_options.max_stream_bytes = f.max_stream_bytes;
    nbd_options.budget = &budget;
    nbd_options.zero_copy = f.nbd_zero_copy == "on";
    nbd_options.inline_writes = f.nbd_inline_writes == "on";
    nbd_options.max_connections = f.nbd_max_connections;
    nbd_options.handshake_timeout = std::chrono::seconds(f.nbd_handshake_timeout_seconds);
    nbd_options.idle_timeout = std::chrono::seconds(f.nbd_idle_timeout_seconds);
    nbd_options.send_timeout = std::chrono::seconds(f.nbd_send_timeout_seconds);
    if (!f.tls_cert.empty()) {
      auto tls = nbd::TlsServer::Create(f.tls_cert, f.tls_key, f.tls_client_ca);
      if (!tls.ok()) return Fatal("bad_flags", std::string(tls.status().message()));
      nbd_options.tls = *std::move(tls);
    }
    if (auth->enabled()) {
      const rpc::Authorizer* scopes = auth.get();
      nbd_options.access = [scopes](const std::string& identity, const std::string& volume) {
        const std::optional<rpc::Access> a = scopes->IdentityAccess(identity, volume);
        return !a ? nbd::Grant::kNone
                  : *a == rpc::Access::kRead ? nbd::Grant::kRead : nbd::Grant::kWrite;
      };
    }
    auto started = cowblk::nbd::NbdServer::Start(nbd_options, store->get());
    if (!started.ok()) return Fatal("listen_failed", std::string(started.status().message()));
    nbd = *std::move(started);
  }
  rpc::BlockServiceOptions block_options;
  block_options.max_in_flight = f.max_in_flight;
  block_options.max_stream_bytes = f.max_stream_bytes;
  block_options.budget = &budget;
  block_options.send_watchdog = &send_watchdog;
  // libcowblk dials the export (over TLS when it uses TLS, with its
  // client certificate when tokens are on; older libraries never dial with
  // TLS or a token).
  const bool nbd_for_clients = static_cast<bool>(nbd);
  if (nbd_for_clients) block_options.nbd_port = nbd->port();
  rpc::CallTracker calls;
  rpc::BlockServiceImpl block_service(store->get(), auth.get(), &calls, block_options);
  rpc::VolumeServiceOptions volume_options;
  if (nbd_for_clients) volume_options.nbd_port = nbd->port();
  if (nbd) volume_options.nbd_address = nbd->address();
  rpc::VolumeServiceImpl volume_service(store->get(), auth.get(), &calls, volume_options);

  rpc::ReflectionV1 reflection_v1;
  rpc::ReflectionV1Alpha reflection_v1alpha;
  grpc::ServerBuilder builder;
  rpc::ApplyLimits(f.grpc, &builder);
  int port = 0;
  builder.AddListeningPort(f.listen, creds, &port);
  builder.RegisterService(&block_service);
  builder.RegisterService(&volume_service);
  builder.RegisterService(&health);
  builder.RegisterService(&reflection_v1);
  builder.RegisterService(&reflection_v1alpha);
  std::unique_ptr<metrics::MetricsServer> metrics_server;
  if (!f.metrics_listen.empty()) {
    auto m = metrics::StartCowblkdMetrics(
        f.metrics_listen, **engines,
        {"cowblk.v1.BlockService", "cowblk.v1.VolumeService", "grpc.health.v1.Health",
         "grpc.reflection.v1.ServerReflection", "grpc.reflection.v1alpha.ServerReflection"},
        &builder,
        f.metrics_detail == "server" ? metrics::MetricsDetail::kServer
                                     : metrics::MetricsDetail::kVolume);
    if (!m.ok()) return Fatal("listen_failed", std::string(m.status().message()));
    metrics_server = *std::move(m);
    metrics_server->Add(std::make_shared<metrics::MallocCollector>());
    metrics_server->Add(std::make_shared<metrics::ProcessCollector>());
    metrics_server->Add(std::make_shared<metrics::BudgetCollector>(&budget, &send_watchdog));
    metrics_server->Add(
        std::make_shared<metrics::GrpcRefusedCollector>(&rpc::GrpcConnectionsRefused()));
    if (nbd) metrics_server->Add(std::make_shared<metrics::NbdCollector>(nbd->stats()));
    metrics_server->Add(std::make_shared<metrics::VolumeStateCollector>(store->get()));
    metrics_server->Add(std::make_shared<metrics::DataDirCollector>(f.data_dir));
  }
  std::unique_ptr<grpc::Server> server = builder.BuildAndStart();
  if (!server || port == 0) return Fatal("listen_failed", "cannot listen on " + f.listen);
  const std::string host = f.listen.substr(0, f.listen.rfind(':'));
  health.SetServing(true);
  Log(LogLevel::kInfo, "serving",
      {{"address", absl::StrCat(host, ":", port)},
       {"data_dir", f.data_dir},
       {"tls", f.tls_cert.empty() ? "off" : f.tls_client_ca.empty() ? "on" : "mutual"},
       {"tokens", auth->enabled() ? "on" : "off"},
       {"engine_threads", std::to_string(f.engine_threads)},
       {"io_backend", (*engines)->engines()[0]->io_backend()},
       {"engine_poll_us", std::to_string(f.engine_poll_us)},
       {"durability", f.durability},
       {"commit_interval_ms", std::to_string(f.commit_interval_ms)},
       {"cache", f.cache},
       {"write_split_kib", std::to_string(f.write_split_kib)},
       {"metrics", metrics_server ? metrics_server->address() : "off"},
       {"nbd", nbd ? nbd->address() : "off"},
       {"nbd_zero_copy", nbd && f.nbd_zero_copy == "on" && f.cache == "writeback" ? "on" : "off"},
       {"nbd_inline_writes",
        nbd && f.nbd_inline_writes == "on" && f.cache == "writeback" ? "on" : "off"}});

  int sig = 0;
  sigwait(&signals, &sig);
  // New calls are refused (UNAVAILABLE) from here; calls in progress get up
  // to --drain-seconds, then whatever is left is cancelled. gRPC's own
  // Shutdown(deadline) would wait out the whole deadline whenever a client
  // keeps an idle connection open, hence the tracker.
  calls.StartDraining();
  Log(LogLevel::kInfo, "draining", {{"signal", sig == SIGTERM ? "SIGTERM" : "SIGINT"}});
  health.Shutdown();
  const auto drain_deadline =
      std::chrono::steady_clock::now() + std::chrono::seconds(f.drain_seconds);
  // NBD connections read no more requests and end once their replies are
  // sent (a client that takes none is cut at the deadline).
  if (nbd) nbd->Shutdown(drain_deadline);
  // Watchers are told NOT_SERVING and their streams end (with OK, before
  // the server's shutdown would cancel them).
  health.WaitWatchersGone(drain_deadline);
  const bool idle = calls.WaitIdle(drain_deadline);
  if (!idle) Log(LogLevel::kWarning, "drain_timeout", {{"action", "cancelling calls"}});
  server->Shutdown(std::chrono::system_clock::now());
  server->Wait();
  absl::Status closed = (*store)->CloseAll();
  if (health_server) health_server->Shutdown(std::chrono::system_clock::now());
  Log(closed.ok() ? LogLevel::kInfo : LogLevel::kError, "stopped",
      {{"flush", closed.ok() ? "ok" : std::string(closed.message())}});
  // Everything is flushed and closed; tearing down gRPC's and the engines'
  // threads one by one only delays the exit (by about a second).
  _exit(closed.ok() ? 0 : 1);
}

}  // namespace
}  // namespace cowblk

int main(int argc, char** argv) {
  cowblk::TuneMallocForLargeBuffers();
  return cowblk::Main(argc, argv);
}
