// ClientOptions against a real cowblkd: the channel pool opens one TCP
// connection per channel, and TLS, mutual TLS and tokens reach a server that
// wants them. Certificates are made at test time with openssl.

#include <fstream>
#include <set>
#include <sstream>
#include <string>
#include <tuple>

#include "absl/strings/str_cat.h"
#include "gmock/gmock.h"
#include "tests/client/client_fixture.h"
#include "tests/support/pki.h"

namespace cowblk::testing {
namespace {

constexpr uint64_t kMiB = 1 << 20;

// Established TCP connections in this network namespace to 127.0.0.1:`port`
// (the client ends: remote address == 127.0.0.1:port), IPv4 or v4-mapped.
int ConnectionsTo(int port) {
  char want[16];
  std::snprintf(want, sizeof want, "0100007F:%04X", port);
  std::set<std::string> local;
  for (const char* table : {"/proc/net/tcp", "/proc/net/tcp6"}) {
    std::ifstream in(table);
    std::string line;
    std::getline(in, line);  // header
    while (std::getline(in, line)) {
      std::istringstream ss(line);
      std::string slot, local_addr, remote_addr, state;
      ss >> slot >> local_addr >> remote_addr >> state;
      const bool to_port =
          remote_addr.size() >= 13 && remote_addr.compare(remote_addr.size() - 13, 13, want) == 0;
      if (to_port && state == "01") local.insert(local_addr);
    }
  }
  return static_cast<int>(local.size());
}

class ChannelPoolTest : public ClientFixture {
 protected:
  void SetUp() override {
    client_options_.channels = 3;
    ClientFixture::SetUp();
  }
};

TEST_F(ChannelPoolTest, EachChannelIsItsOwnConnection) {
  auto volume = NewVolume("disk0", kMiB, {.lanes = 3});
  ASSERT_NE(volume, nullptr);
  std::vector<std::string> bufs(12, std::string(4096, '\0'));
  std::vector<std::future<absl::Status>> reads;
  for (int i = 0; i < 12; ++i) reads.push_back(volume->ReadAsync(i * 4096, bufs[i].data(), 4096));
  for (auto& r : reads) ASSERT_TRUE(r.get().ok());
  EXPECT_EQ(volume->stats().streams, 3u);
  EXPECT_EQ(ConnectionsTo(server_.port()), 3);
}

TEST_F(ChannelPoolTest, OneChannelIsOneConnectionWhateverTheLanes) {
  ASSERT_TRUE(client_->CreateVolume("disk0", kMiB).ok());
  ClientOptions o;
  o.target = server_.address();
  o.channels = 1;
  COWBLK_ASSERT_OK_AND_ASSIGN(one, Client::Create(o));
  COWBLK_ASSERT_OK_AND_ASSIGN(volume, one.OpenVolume("disk0", {.lanes = 4}));
  std::vector<std::string> bufs(12, std::string(4096, '\0'));
  std::vector<std::future<absl::Status>> reads;
  for (int i = 0; i < 12; ++i) reads.push_back(volume->ReadAsync(i * 4096, bufs[i].data(), 4096));
  for (auto& r : reads) ASSERT_TRUE(r.get().ok());
  EXPECT_EQ(volume->stats().streams, 4u);
  // The fixture's client made one connection for CreateVolume.
  EXPECT_EQ(ConnectionsTo(server_.port()), 2);
}

// A throwaway PKI (tests/support/pki.h): `ca` signs the server certificate
// (IP:127.0.0.1, DNS:localhost) and a client certificate.
class TlsTest : public ::testing::Test {
 protected:
  void SetUp() override {
    ASSERT_EQ(pki_.Generate(), "");
    WriteFileBytes(pki_.File("tokens"), "admin-token admin\n");
    ServerConfig config;
    config.args = {
        "--tls-cert",      pki_.File("server.pem"), "--tls-key",    pki_.File("server.key"),
        "--tls-client-ca", pki_.File("ca.pem"),     "--token-file", pki_.File("tokens")};
    ASSERT_TRUE(server_.Start(data_.path(), config)) << server_.log();
  }

  ClientOptions Options() const {
    ClientOptions o;
    o.target = server_.address();
    o.tls_ca_file = pki_.File("ca.pem");
    o.tls_cert_file = pki_.File("client.pem");
    o.tls_key_file = pki_.File("client.key");
    o.token = "admin-token";
    return o;
  }

  Pki pki_;
  TempDir data_;
  CowblkdProcess server_;
};

TEST_F(TlsTest, MutualTlsAndATokenReachTheServer) {
  COWBLK_ASSERT_OK_AND_ASSIGN(client, Client::Create(Options()));
  ASSERT_TRUE(client.CreateVolume("disk0", kMiB).ok());
  COWBLK_ASSERT_OK_AND_ASSIGN(volume, client.OpenVolume("disk0"));
  const std::string data = RandomBytes(8192, 1);
  ASSERT_TRUE(volume->Write(0, data.data(), data.size()).ok());
  std::string back(8192, '\0');
  ASSERT_TRUE(volume->Read(0, back.data(), back.size()).ok());
  EXPECT_TRUE(back == data);
}

TEST_F(TlsTest, AServerNameOverrideIsChecked) {
  ClientOptions o = Options();
  // An ipv4: target skips the DNS resolver (c-ares leaks a little under
  // LeakSanitizer); the certificate names both 127.0.0.1 and localhost.
  o.target = absl::StrCat("ipv4:127.0.0.1:", server_.port());
  o.tls_server_name = "localhost";
  COWBLK_ASSERT_OK_AND_ASSIGN(ok_client, Client::Create(o));
  EXPECT_TRUE(ok_client.ListVolumes().ok());
  o.tls_server_name = "someone-else.example";
  COWBLK_ASSERT_OK_AND_ASSIGN(bad_client, Client::Create(o));
  EXPECT_EQ(bad_client.ListVolumes().status().code(), absl::StatusCode::kUnavailable);
}

TEST_F(TlsTest, WithoutATokenCallsAreUnauthenticatedAndIoFailsToo) {
  ClientOptions o = Options();
  COWBLK_ASSERT_OK_AND_ASSIGN(admin, Client::Create(o));
  ASSERT_TRUE(admin.CreateVolume("disk0", kMiB).ok());
  COWBLK_ASSERT_OK_AND_ASSIGN(volume, admin.OpenVolume("disk0"));
  o.token = "";
  COWBLK_ASSERT_OK_AND_ASSIGN(anonymous, Client::Create(o));
  EXPECT_EQ(anonymous.ListVolumes().status().code(), absl::StatusCode::kUnauthenticated);
  o.token = "wrong";
  COWBLK_ASSERT_OK_AND_ASSIGN(wrong, Client::Create(o));
  EXPECT_EQ(wrong.OpenVolume("disk0").status().code(), absl::StatusCode::kUnauthenticated);
}

TEST_F(TlsTest, PlaintextOrNoClientCertificateCannotConnect) {
  ClientOptions o = Options();
  o.tls_ca_file = o.tls_cert_file = o.tls_key_file = "";
  COWBLK_ASSERT_OK_AND_ASSIGN(plain, Client::Create(o));
  EXPECT_EQ(plain.ListVolumes().status().code(), absl::StatusCode::kUnavailable);
  o = Options();
  o.tls_cert_file = o.tls_key_file = "";
  COWBLK_ASSERT_OK_AND_ASSIGN(no_cert, Client::Create(o));
  EXPECT_EQ(no_cert.ListVolumes().status().code(), absl::StatusCode::kUnavailable);
}

TEST(ClientOptionsTest, BadOptionsAreRefused) {
  ClientOptions o;
  o.channels = 0;
  EXPECT_EQ(Client::Create(o).status().code(), absl::StatusCode::kInvalidArgument);
  o = {};
  o.tls_cert_file = "/nonexistent.pem";
  EXPECT_EQ(Client::Create(o).status().code(), absl::StatusCode::kInvalidArgument);
  o.tls_key_file = "/nonexistent.key";
  EXPECT_EQ(Client::Create(o).status().code(), absl::StatusCode::kNotFound);
  o = {};
  o.target = "";
  EXPECT_EQ(Client::Create(o).status().code(), absl::StatusCode::kInvalidArgument);
}

TEST(ClientOptionsTest, KeepaliveOutOfRangeIsRefusedByName) {
  using std::chrono::hours;
  using std::chrono::milliseconds;
  for (auto [time, timeout, field] :
       {std::tuple{milliseconds(-1), milliseconds(5000), "keepalive_time"},
        std::tuple{milliseconds(hours(25)), milliseconds(5000), "keepalive_time"},
        std::tuple{milliseconds(15000), milliseconds(0), "keepalive_timeout"},
        std::tuple{milliseconds(15000), milliseconds(hours(25)), "keepalive_timeout"}}) {
    ClientOptions o;
    o.keepalive_time = time;
    o.keepalive_timeout = timeout;
    const absl::Status s = Client::Create(o).status();
    EXPECT_EQ(s.code(), absl::StatusCode::kInvalidArgument) << s;
    EXPECT_THAT(std::string(s.message()), ::testing::HasSubstr(field));
  }
  ClientOptions off;
  off.keepalive_time = milliseconds(0);  // no keepalive
  EXPECT_TRUE(Client::Create(off).ok());
}

TEST(ClientOptionsTest, ReadTokenFileTakesTheFirstLineTrimmed) {
  TempDir dir;
  WriteFileBytes(dir.File("t"), "  s3cr3t \nignored\n");
  COWBLK_ASSERT_OK_AND_ASSIGN(token, ReadTokenFile(dir.File("t")));
  EXPECT_EQ(token, "s3cr3t");
  WriteFileBytes(dir.File("empty"), "\n");
  EXPECT_EQ(ReadTokenFile(dir.File("empty")).status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(ReadTokenFile(dir.File("missing")).status().code(), absl::StatusCode::kNotFound);
}

}  // namespace
}  // namespace cowblk::testing
