// The connection settings the cowblk CLI and cowblk-bench share (the
// --server, --tls*, --token-file, --timeout and --channels flags, with the
// same COWBLK_* environment variables; --keepalive* are the CLI's, the
// bench keeps their defaults), and how they become ClientOptions.

#ifndef COWBLK_CLIENT_CLI_CONNECTION_H_
#define COWBLK_CLIENT_CLI_CONNECTION_H_

#include <chrono>
#include <string>

#include "absl/status/statusor.h"
#include "cowblk/client.h"

namespace cowblk::cli {

struct ConnectionFlags {
  std::string server;
  bool tls = false;
  std::string tls_ca, tls_cert, tls_key, tls_server_name;
  std::string token_file;
  int timeout_seconds = 30;
  int channels = 2;
  // ClientOptions::keepalive_time (0: none) and keepalive_timeout.
  int keepalive_seconds = 15;
  int keepalive_timeout_seconds = 5;
};

// The client options for `target` (a host:port) with these settings; reads
// the token file. Fails if the token file cannot be read.
inline absl::StatusOr<ClientOptions> ToClientOptions(const ConnectionFlags& f,
                                                     const std::string& target) {
  ClientOptions o;
  o.target = target;
  o.tls = f.tls;
  o.tls_ca_file = f.tls_ca;
  o.tls_cert_file = f.tls_cert;
  o.tls_key_file = f.tls_key;
  o.tls_server_name = f.tls_server_name;
  o.channels = f.channels;
  o.deadline = std::chrono::seconds(f.timeout_seconds);
  o.keepalive_time = std::chrono::seconds(f.keepalive_seconds);
  o.keepalive_timeout = std::chrono::seconds(f.keepalive_timeout_seconds);
  if (!f.token_file.empty()) {
    auto token = ReadTokenFile(f.token_file);
    if (!token.ok()) return token.status();
    o.token = *token;
  }
  return o;
}

}  // namespace cowblk::cli

#endif  // COWBLK_CLIENT_CLI_CONNECTION_H_
