#include "client/src/client_core.h"

#include <cerrno>
#include <cstring>
#include <fstream>
#include <sstream>
#include <string>

#include "absl/strings/str_cat.h"

namespace cowblk::internal {
namespace {

absl::StatusOr<std::string> ReadPem(const std::string& path, const char* what) {
  std::ifstream in(path, std::ios::binary);
  if (!in) {
    const int err = errno;
    return absl::Status(
        err == ENOENT ? absl::StatusCode::kNotFound : absl::StatusCode::kFailedPrecondition,
        absl::StrCat(what, " ", path, ": ", std::strerror(err)));
  }
  std::stringstream ss;
  ss << in.rdbuf();
  if (ss.str().empty()) return absl::InvalidArgumentError(absl::StrCat(what, " ", path, ": empty"));
  return ss.str();
}

absl::StatusOr<std::shared_ptr<grpc::ChannelCredentials>> Credentials(const ClientOptions& o) {
  if (!UsesTls(o)) return grpc::InsecureChannelCredentials();
  if (o.tls_cert_file.empty() != o.tls_key_file.empty()) {
    return absl::InvalidArgumentError("tls_cert_file and tls_key_file go together");
  }
  grpc::SslCredentialsOptions ssl;
  if (!o.tls_ca_file.empty()) {
    auto ca = ReadPem(o.tls_ca_file, "TLS CA file");
    if (!ca.ok()) return ca.status();
    ssl.pem_root_certs = *ca;
  }
  if (!o.tls_cert_file.empty()) {
    auto cert = ReadPem(o.tls_cert_file, "TLS certificate file");
    if (!cert.ok()) return cert.status();
    auto key = ReadPem(o.tls_key_file, "TLS key file");
    if (!key.ok()) return key.status();
    ssl.pem_cert_chain = *cert;
    ssl.pem_private_key = *key;
  }
  return grpc::SslCredentials(ssl);
}

}  // namespace

absl::StatusOr<std::shared_ptr<ClientCore>> ClientCore::Create(const ClientOptions& options) {
  if (options.target.empty()) return absl::InvalidArgumentError("target: empty");
  if (options.channels < 1 || options.channels > 64) {
    return absl::InvalidArgumentError(
        absl::StrCat("channels: ", options.channels, " is not between 1 and 64"));
  }
  if (options.deadline <= std::chrono::milliseconds(0) ||
      options.upload_deadline <= std::chrono::milliseconds(0)) {
    return absl::InvalidArgumentError("deadline: must be positive");
  }
  constexpr std::chrono::milliseconds kDay = std::chrono::hours(24);
  if (options.keepalive_time < std::chrono::milliseconds(0) || options.keepalive_time > kDay) {
    return absl::InvalidArgumentError(absl::StrCat(
        "keepalive_time: ", options.keepalive_time.count(), " ms is not between 0 and 24 h"));
  }
  if (options.keepalive_timeout <= std::chrono::milliseconds(0) ||
      options.keepalive_timeout > kDay) {
    return absl::InvalidArgumentError(
        absl::StrCat("keepalive_timeout: ", options.keepalive_timeout.count(),
                     " ms is not between 1 ms and 24 h"));
  }
  auto creds = Credentials(options);
  if (!creds.ok()) return creds.status();

  std::shared_ptr<ClientCore> core(new ClientCore(options));
  const int backoff_ms = static_cast<int>(std::max<int64_t>(100, options.max_backoff.count()));
  for (int i = 0; i < options.channels; ++i) {
    grpc::ChannelArguments args;
    // Channels with equal arguments share one subchannel (one TCP
    // connection); a distinct argument and a local pool keep them apart.
    args.SetInt("cowblk.channel_index", i);
    args.SetInt(GRPC_ARG_USE_LOCAL_SUBCHANNEL_POOL, 1);
    // A 32 MiB read answer plus framing; the server's own limit is 40 MiB.
    args.SetMaxReceiveMessageSize(64 << 20);
    args.SetMaxSendMessageSize(64 << 20);
    // libcowblk retries requests itself (VolumeCore). gRPC's own retry
    // layer, on by default, caches a stream's messages until the call
    // commits; with it, a Session message written just after a server
    // restart was now and then reported written but never reached the
    // server (the request hung until its deadline: ReconnectTest under
    // ASan and CPU load, 4 failures in 23 runs; with it off, 0 in 120).
    args.SetInt(GRPC_ARG_ENABLE_RETRIES, 0);
    // Come back quickly after a server restart. (Not the "min" backoff:
    // gRPC also uses it as the connect timeout, TLS handshake included.)
    args.SetInt(GRPC_ARG_INITIAL_RECONNECT_BACKOFF_MS, 100);
    args.SetInt(GRPC_ARG_MAX_RECONNECT_BACKOFF_MS, backoff_ms);
    if (options.keepalive_time.count() > 0) {
      // A connection that died without a FIN (the peer silent) is found by
      // its unanswered ping, not by the requests' deadlines: the transport
      // closes, its calls end UNAVAILABLE, the subchannel reconnects.
      args.SetInt(GRPC_ARG_KEEPALIVE_TIME_MS, static_cast<int>(options.keepalive_time.count()));
      args.SetInt(GRPC_ARG_KEEPALIVE_TIMEOUT_MS,
                  static_cast<int>(options.keepalive_timeout.count()));
      // Idle channels too: the next call must not be the one that finds a
      // dead connection. And unlimited pings without data (gRPC's default
      // stops after 2), or a long-idle stream would stop being watched;
      // cowblkd permits both at its minimum interval (server_options.cc).
      args.SetInt(GRPC_ARG_KEEPALIVE_PERMIT_WITHOUT_CALLS, 1);
      args.SetInt(GRPC_ARG_HTTP2_MAX_PINGS_WITHOUT_DATA, 0);
    }
    if (!options.tls_server_name.empty()) args.SetSslTargetNameOverride(options.tls_server_name);
    auto channel = grpc::CreateCustomChannel(options.target, *creds, args);
    core->volumes_.push_back(v1::VolumeService::NewStub(channel));
    core->blocks_.push_back(v1::BlockService::NewStub(channel));
    core->health_.push_back(grpc::health::v1::Health::NewStub(channel));
    core->channels_.push_back(std::move(channel));
  }
  return core;
}

ClientCore::ClientCore(const ClientOptions& options)
    : options_(options), ticker_(std::chrono::milliseconds(10)) {}

void ClientCore::Prepare(grpc::ClientContext* ctx, std::chrono::milliseconds timeout) const {
  if (timeout <= std::chrono::milliseconds(0)) timeout = options_.deadline;
  ctx->set_deadline(std::chrono::system_clock::now() + timeout);
  PrepareStream(ctx);
}

void ClientCore::PrepareStream(grpc::ClientContext* ctx) const {
  if (!options_.token.empty()) ctx->AddMetadata("authorization", "Bearer " + options_.token);
}

}  // namespace cowblk::internal
