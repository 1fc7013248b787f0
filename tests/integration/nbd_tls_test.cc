// The secure NBD export (issue 21, items 4 and 8): cowblkd with mutual TLS
// and a token file whose `x509:CN=client` line gives the client
// certificate `rw:mine-*,read:ro-*`. Real clients (libnbd, nbdinfo,
// nbdcopy, qemu-img, qemu-io with x509 credentials) and a raw socket for
// the plaintext client. A client that is refused reads nothing and writes
// nothing: the data directory, COW files included, is byte-for-byte what it
// was. Certificates are made at test time (tests/support/make_pki.sh).

#include <endian.h>
#include <libnbd.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <string>
#include <vector>

#include "gtest/gtest.h"
#include "tests/integration/nbd_fixture.h"
#include "tests/support/command.h"
#include "tests/support/pki.h"
#include "tests/support/scratch.h"

namespace cowblk::testing {
namespace {

constexpr uint64_t kVolumeBytes = 1 << 20;
constexpr uint32_t kOptStartTls = 5, kOptList = 3, kOptInfo = 6, kOptGo = 7;
constexpr uint32_t kRepAck = 1, kRepErrTlsReqd = 0x80000005u;

class NbdTlsTest : public NbdTest {
 protected:
  void SetUp() override {
    ASSERT_EQ(pki_.Generate(), "");
    // The volumes, with data, made over a plaintext server first.
    ASSERT_NO_FATAL_FAILURE(StartServer());
    for (const char* name : {"mine-1", "ro-1", "theirs"}) {
      ASSERT_TRUE(Create(name, kVolumeBytes).ok()) << name;
      ASSERT_TRUE(WriteData(name, 0, Content(name), /*flush=*/true).ok()) << name;
    }
    StopServer();
    WriteFileBytes(pki_.File("tokens"),
                   "admintoken admin\n"
                   "x509:CN=client rw:mine-*,read:ro-*\n");
    ASSERT_NO_FATAL_FAILURE(StartServer(
        {"--nbd-listen", "127.0.0.1:0", "--tls-cert", pki_.File("server.pem"), "--tls-key",
         pki_.File("server.key"), "--tls-client-ca", pki_.File("ca.pem"), "--token-file",
         pki_.File("tokens"), "--nbd-handshake-timeout-seconds", "5"}));
    nbd_address_ = server_.ServingField("nbd");
    ASSERT_NE(nbd_address_, "");
    // libnbd's and qemu's x509 directories: the CA, and a client's pair.
    ASSERT_NO_FATAL_FAILURE(CredentialsDir("client", "client"));
    ASSERT_NO_FATAL_FAILURE(CredentialsDir("intruder", "intruder"));
    ASSERT_NO_FATAL_FAILURE(CredentialsDir("nocert", ""));
  }

  static std::string Content(const std::string& volume) {
    return RandomBytes(64 << 10, static_cast<uint32_t>(volume.size() * 31 + volume[0]));
  }

  // pki_/DIR with ca-cert.pem and, when `cert` is set, client-cert.pem and
  // client-key.pem (libnbd's and qemu's file names).
  void CredentialsDir(const std::string& dir, const std::string& cert) {
    const std::string d = pki_.File(dir);
    ASSERT_EQ(mkdir(d.c_str(), 0700), 0) << std::strerror(errno);
    WriteFileBytes(d + "/ca-cert.pem", pki_.Read("ca.pem"));
    if (cert.empty()) return;
    WriteFileBytes(d + "/client-cert.pem", pki_.Read(cert + ".pem"));
    WriteFileBytes(d + "/client-key.pem", pki_.Read(cert + ".key"));
  }

  std::string TlsUri(const std::string& volume, const std::string& creds) const {
    return "nbds://" + nbd_address_ + "/" + volume +
           "?tls-certificates=" + pki_.File(creds);
  }

  // A libnbd handle over TLS with the credentials `creds` (a directory of
  // CredentialsDir), connected to `volume`; null with the error in `error`.
  // Closed by TearDown.
  nbd_handle* TlsConnect(const std::string& volume, const std::string& creds,
                         std::string* error = nullptr, int* errnum = nullptr) {
    nbd_handle* h = nbd_create();
    handles_.push_back(h);
    // Commands the server must refuse are sent, not refused by libnbd.
    nbd_set_strict_mode(h, 0);
    nbd_set_uri_allow_local_file(h, true);  // tls-certificates=DIR
    if (nbd_connect_uri(h, TlsUri(volume, creds).c_str()) != 0) {
      if (error != nullptr) *error = nbd_get_error();
      if (errnum != nullptr) *errnum = nbd_get_errno();
      return nullptr;
    }
    return h;
  }

  std::string CowFile(const std::string& volume) const {
    return ReadFileBytes(dir_.File("volumes/" + volume + ".cow"));
  }

  // The reply to one option on the raw socket `fd`: its type; 0 when none came.
  static uint32_t OptionReplyType(int fd, uint32_t option) {
    unsigned char r[20];
    if (!RecvAll(fd, r, sizeof r)) return 0;
    uint32_t got_option, type, length;
    std::memcpy(&got_option, r + 8, 4);
    std::memcpy(&type, r + 12, 4);
    std::memcpy(&length, r + 16, 4);
    EXPECT_EQ(be32toh(got_option), option);
    std::string data(be32toh(length), '\0');
    if (!data.empty() && !RecvAll(fd, data.data(), data.size())) return 0;
    return be32toh(type);
  }

  static std::string GoData(const std::string& name) {
    std::string d(4, '\0');
    const uint32_t n = htobe32(static_cast<uint32_t>(name.size()));
    std::memcpy(d.data(), &n, 4);
    d += name;
    d.append(2, '\0');  // no information requests
    return d;
  }

  Pki pki_;
};

TEST_F(NbdTlsTest, PlaintextClientGetsTlsRequiredAndNoExport) {
  const std::string before = Snapshot();
  const int fd = RawSocket();
  ASSERT_GE(fd, 0);
  char greeting[18];
  ASSERT_TRUE(RecvAll(fd, greeting, sizeof greeting));
  uint32_t flags = htobe32(3);
  std::string m(reinterpret_cast<char*>(&flags), 4);
  AppendOption(&m, kOptList, "");
  AppendOption(&m, kOptInfo, GoData("mine-1"));
  AppendOption(&m, kOptGo, GoData("mine-1"));
  ASSERT_TRUE(SendAll(fd, m));
  EXPECT_EQ(OptionReplyType(fd, kOptList), kRepErrTlsReqd);
  EXPECT_EQ(OptionReplyType(fd, kOptInfo), kRepErrTlsReqd);
  EXPECT_EQ(OptionReplyType(fd, kOptGo), kRepErrTlsReqd);
  // NBD_OPT_EXPORT_NAME has no error reply: the server closes.
  m.clear();
  AppendOption(&m, 1, "mine-1");
  ASSERT_TRUE(SendAll(fd, m));
  EXPECT_TRUE(ClosedByServer(fd));
  close(fd);
  EXPECT_EQ(Snapshot(), before);
  // libnbd without TLS is refused too.
  nbd_handle* h = nbd_create();
  handles_.push_back(h);
  EXPECT_NE(nbd_connect_uri(h, ("nbd://" + nbd_address_ + "/mine-1").c_str()), 0);
}

TEST_F(NbdTlsTest, StartTlsWithDataIsInvalidAndAClientSilentAfterStartTlsIsCut) {
  const int fd = RawSocket();
  ASSERT_GE(fd, 0);
  char greeting[18];
  ASSERT_TRUE(RecvAll(fd, greeting, sizeof greeting));
  uint32_t flags = htobe32(3);
  std::string m(reinterpret_cast<char*>(&flags), 4);
  AppendOption(&m, kOptStartTls, "x");
  AppendOption(&m, kOptStartTls, "");
  ASSERT_TRUE(SendAll(fd, m));
  EXPECT_EQ(OptionReplyType(fd, kOptStartTls), 0x80000003u);  // NBD_REP_ERR_INVALID
  EXPECT_EQ(OptionReplyType(fd, kOptStartTls), kRepAck);
  // A client that never begins the TLS handshake is cut at the handshake's
  // deadline (5 s here).
  EXPECT_TRUE(ClosedByServer(fd));
  close(fd);
}

TEST_F(NbdTlsTest, ClientWithoutCertificateGetsNothing) {
  const std::string before = Snapshot();
  std::string error;
  EXPECT_EQ(TlsConnect("mine-1", "nocert", &error), nullptr);
  // Refused in the TLS handshake (what libnbd says depends on when it
  // noticed: the server's log tells).
  server_.WaitForLog("reason=\"TLS handshake failed");
  EXPECT_NE(server_.log().find("reason=\"TLS handshake failed"), std::string::npos) << error;
  EXPECT_EQ(RunQuietly({"nbdinfo", "--list", TlsUri("", "nocert")}), 1);
  EXPECT_NE(RunQuietly({"nbdcopy", "--", "/dev/zero", TlsUri("mine-1", "nocert")}), 0);
  EXPECT_EQ(Snapshot(), before);
}

TEST_F(NbdTlsTest, ClientCertificateOfAnotherCaGetsNothing) {
  const std::string before = Snapshot();
  std::string error;
  EXPECT_EQ(TlsConnect("mine-1", "intruder", &error), nullptr);
  server_.WaitForLog("reason=\"TLS handshake failed");
  EXPECT_NE(server_.log().find("reason=\"TLS handshake failed"), std::string::npos) << error;
  EXPECT_EQ(RunQuietly({"nbdinfo", "--list", TlsUri("", "intruder")}), 1);
  const std::string payload = pki_.File("payload");
  WriteFileBytes(payload, std::string(kVolumeBytes, 'x'));
  EXPECT_NE(RunQuietly({"nbdcopy", payload, TlsUri("mine-1", "intruder")}), 0);
  EXPECT_NE(RunQuietly({"qemu-img", "info", "--object",
                        "tls-creds-x509,id=tls0,endpoint=client,dir=" + pki_.File("intruder"),
                        "--image-opts",
                        "driver=nbd,host=127.0.0.1,port=" +
                            nbd_address_.substr(nbd_address_.rfind(':') + 1) +
                            ",export=mine-1,tls-creds=tls0"}),
            0);
  EXPECT_EQ(Snapshot(), before);
}

TEST_F(NbdTlsTest, VolumeOutsideTheScopesIsUnknownUnlistedAndUntouched) {
  const std::string before = Snapshot();
  const std::string cow = CowFile("theirs");
  std::string error;
  int errnum = 0;
  EXPECT_EQ(TlsConnect("theirs", "client", &error, &errnum), nullptr);
  EXPECT_EQ(errnum, ENOENT) << error;
  // As for a volume that does not exist.
  std::string missing_error;
  int missing_errnum = 0;
  EXPECT_EQ(TlsConnect("no-such-volume", "client", &missing_error, &missing_errnum), nullptr);
  EXPECT_EQ(missing_errnum, errnum) << missing_error;
  const std::string payload = pki_.File("payload");
  WriteFileBytes(payload, std::string(kVolumeBytes, 'x'));
  EXPECT_NE(RunQuietly({"nbdcopy", payload, TlsUri("theirs", "client")}), 0);
  // The list shows what the identity may see, and only that.
  const CommandResult list = RunCommand({"nbdinfo", "--list", "--json", TlsUri("", "client")});
  ASSERT_EQ(list.exit_code, 0);
  EXPECT_NE(list.output.find("\"mine-1\""), std::string::npos) << list.output;
  EXPECT_NE(list.output.find("\"ro-1\""), std::string::npos) << list.output;
  EXPECT_EQ(list.output.find("theirs"), std::string::npos) << list.output;
  EXPECT_EQ(CowFile("theirs"), cow);
  EXPECT_EQ(Snapshot(), before);
}

TEST_F(NbdTlsTest, ReadScopeExportsReadOnlyAndTheServerRefusesWrites) {
  const std::string cow = CowFile("ro-1");
  nbd_handle* h = TlsConnect("ro-1", "client");
  ASSERT_NE(h, nullptr) << nbd_get_error();
  EXPECT_EQ(nbd_is_read_only(h), 1);
  std::string got(64 << 10, '\0');
  ASSERT_EQ(nbd_pread(h, got.data(), got.size(), 0, 0), 0) << nbd_get_error();
  EXPECT_TRUE(got == Content("ro-1"));
  // Strict mode is off: libnbd sends the write, and the server refuses it.
  const std::string junk(4096, 'j');
  EXPECT_NE(nbd_pwrite(h, junk.data(), junk.size(), 0, 0), 0);
  EXPECT_EQ(nbd_get_errno(), EPERM) << nbd_get_error();
  EXPECT_NE(nbd_zero(h, 4096, 8192, 0), 0);
  EXPECT_NE(nbd_trim(h, 4096, 8192, 0), 0);
  ASSERT_EQ(nbd_pread(h, got.data(), got.size(), 0, 0), 0) << nbd_get_error();
  EXPECT_TRUE(got == Content("ro-1"));
  EXPECT_EQ(CowFile("ro-1"), cow);
  EXPECT_NE(server_.log().find("tls=on writable=no volume=ro-1 zero_copy=off"), std::string::npos)
      << server_.log();
}

TEST_F(NbdTlsTest, ClientInScopeReadsAndWritesWithNbdcopyQemuImgAndQemuIo) {
  // What gRPC wrote, read over TLS.
  nbd_handle* h = TlsConnect("mine-1", "client");
  ASSERT_NE(h, nullptr) << nbd_get_error();
  EXPECT_EQ(nbd_is_read_only(h), 0);
  std::string got(64 << 10, '\0');
  ASSERT_EQ(nbd_pread(h, got.data(), got.size(), 0, 0), 0) << nbd_get_error();
  EXPECT_TRUE(got == Content("mine-1"));
  // nbdcopy in, qemu-img compares over x509 credentials.
  const std::string data = RandomBytes(kVolumeBytes, 99);
  WriteFileBytes(pki_.File("data"), data);
  ASSERT_EQ(RunQuietly({"nbdcopy", pki_.File("data"), TlsUri("mine-1", "client")}), 0);
  const std::string tls_object =
      "tls-creds-x509,id=tls0,endpoint=client,dir=" + pki_.File("client");
  const std::string image = "driver=nbd,host=127.0.0.1,port=" +
                            nbd_address_.substr(nbd_address_.rfind(':') + 1) +
                            ",export=mine-1,tls-creds=tls0";
  EXPECT_EQ(RunQuietly({"qemu-img", "compare", "--object", tls_object, "--image-opts",
                        "driver=file,filename=" + pki_.File("data"), image}),
            0);
  // qemu-io writes a pattern, nbdcopy reads it back.
  ASSERT_EQ(RunQuietly({"qemu-io", "--object", tls_object, "--image-opts", image, "-c",
                        "write -P 0x5a 65536 131072"}),
            0);
  ASSERT_EQ(RunQuietly({"nbdcopy", TlsUri("mine-1", "client"), pki_.File("back")}), 0);
  std::string want = data;
  want.replace(65536, 131072, std::string(131072, '\x5a'));
  EXPECT_TRUE(ReadFileBytes(pki_.File("back")) == want);
  // Every export went over TLS, writable.
  EXPECT_NE(server_.log().find("tls=on writable=yes volume=mine-1 zero_copy=off"), std::string::npos)
      << server_.log();
}

}  // namespace
}  // namespace cowblk::testing
