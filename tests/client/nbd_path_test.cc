// libcowblk's NBD path (VolumeOptions::nbd) against a real cowblkd with
// --nbd-listen: the export is found through GetVolume, with or without a
// Session stream, and again after a restart moved it; once the connection
// is up, large reads and writes travel over it and come back whole; an
// error over it is reported as the Session streams report it; a restart
// loses nothing; a deadline cuts a connection that stopped answering.

#include <grpcpp/grpcpp.h>
#include <signal.h>

#include <atomic>
#include <chrono>
#include <future>
#include <memory>
#include <string>
#include <vector>

#include "client/src/nbd_call.h"
#include "cowblk/v1/block.grpc.pb.h"
#include "cowblk/v1/volume.grpc.pb.h"
#include "tests/client/client_fixture.h"
#include "tests/support/child_process.h"
#include "tests/support/pki.h"

namespace cowblk::testing {
namespace {

constexpr uint64_t kMiB = 1 << 20;

// The Volume message the server at `address` answers GetVolume with.
v1::Volume DescribeVolume(const std::string& address, const std::string& name) {
  auto stub =
      v1::VolumeService::NewStub(grpc::CreateChannel(address, grpc::InsecureChannelCredentials()));
  grpc::ClientContext ctx;
  v1::GetVolumeRequest request;
  request.set_name(name);
  v1::Volume volume;
  const grpc::Status s = stub->GetVolume(&ctx, request, &volume);
  EXPECT_TRUE(s.ok()) << s.error_message();
  return volume;
}

// A stand-in for a server's gRPC side whose GetVolume answers are the real
// server's and whose Session streams all fail UNAVAILABLE at once: requests
// sent on them are retried, never answered. A volume reached through it
// can only move data over the real server's NBD export, and can only have
// found that through GetVolume.
class StreamlessFront {
 public:
  explicit StreamlessFront(const std::string& real_address)
      : volumes_(grpc::CreateChannel(real_address, grpc::InsecureChannelCredentials())) {
    grpc::ServerBuilder builder;
    builder.AddListeningPort("127.0.0.1:0", grpc::InsecureServerCredentials(), &port_);
    builder.RegisterService(&volumes_);
    builder.RegisterService(&blocks_);
    server_ = builder.BuildAndStart();
  }
  ~StreamlessFront() { server_->Shutdown(std::chrono::system_clock::now()); }

  std::string address() const { return "127.0.0.1:" + std::to_string(port_); }
  int sessions() const { return blocks_.sessions.load(); }

 private:
  class Volumes final : public v1::VolumeService::Service {
   public:
    explicit Volumes(const std::shared_ptr<grpc::Channel>& real)
        : real_(v1::VolumeService::NewStub(real)) {}
    grpc::Status GetVolume(grpc::ServerContext* ctx, const v1::GetVolumeRequest* request,
                           v1::Volume* volume) override {
      grpc::ClientContext forward;
      forward.set_deadline(ctx->deadline());
      return real_->GetVolume(&forward, *request, volume);
    }

   private:
    std::unique_ptr<v1::VolumeService::Stub> real_;
  };
  class Blocks final : public v1::BlockService::Service {
   public:
    grpc::Status Session(
        grpc::ServerContext*,
        grpc::ServerReaderWriter<v1::SessionResponse, v1::SessionRequest>*) override {
      ++sessions;
      return grpc::Status(grpc::StatusCode::UNAVAILABLE, "this stand-in serves no Session");
    }
    std::atomic<int> sessions{0};
  };

  Volumes volumes_;
  Blocks blocks_;
  int port_ = 0;
  std::unique_ptr<grpc::Server> server_;
};

class NbdPathTest : public ClientFixture {
 protected:
  void SetUp() override {
    fixed_port_ = true;
    StartServer({.args = {"--nbd-listen", "127.0.0.1:0"}});
  }

  // Reads 1 MiB at a time until one went over the export (the connection
  // is dialled once the first such read is queued, and used once its
  // handshake is done). Each round is a real read: no sleeping.
  static void UntilNbdCarriesOne(Volume* volume) {
    std::string buf(kMiB, '\0');
    for (int i = 0; i < 20000 && volume->stats().nbd_requests == 0; ++i) {
      ASSERT_TRUE(volume->Read(0, buf.data(), buf.size()).ok());
    }
    ASSERT_GT(volume->stats().nbd_requests, 0u);
  }
};

TEST_F(NbdPathTest, ReadsAndWritesTravelOverTheExportAndComeBackWhole) {
  auto volume = NewVolume("disk0", 32 * kMiB);
  ASSERT_NE(volume, nullptr);
  ASSERT_NO_FATAL_FAILURE(UntilNbdCarriesOne(volume.get()));
  const VolumeStats before = volume->stats();

  const std::string a = RandomBytes(8 * kMiB, 1);
  ASSERT_TRUE(volume->Write(4 * kMiB, a.data(), a.size()).ok());     // 8 chunks
  const std::string b = RandomBytes(kMiB, 2);
  ASSERT_TRUE(volume->Write(20 * kMiB, b.data(), b.size(), {.fua = true}).ok());
  // A small write lands inside the large one (writes of any size go
  // over NBD by default).
  const std::string small = RandomBytes(4096, 3);
  ASSERT_TRUE(volume->Write(5 * kMiB, small.data(), small.size()).ok());
  ASSERT_TRUE(volume->Flush().ok());  // over a stream
  const VolumeStats written = volume->stats();
  EXPECT_EQ(written.nbd_requests - before.nbd_requests, 10u);

  std::string back(8 * kMiB, '\0');
  ASSERT_TRUE(volume->Read(4 * kMiB, back.data(), back.size()).ok());
  std::string want = a;
  want.replace(kMiB, small.size(), small);
  EXPECT_TRUE(back == want);
  std::string back_b(kMiB, '\0');
  ASSERT_TRUE(volume->Read(20 * kMiB, back_b.data(), back_b.size()).ok());
  EXPECT_TRUE(back_b == b);
  std::string back_small(4096, '\0');
  ASSERT_TRUE(volume->Read(5 * kMiB, back_small.data(), back_small.size()).ok());
  EXPECT_TRUE(back_small == small);

  const VolumeStats after = volume->stats();
  // The 4 KiB read went over a stream (below nbd_min_read_bytes).
  EXPECT_EQ(after.nbd_requests - written.nbd_requests, 9u);
  EXPECT_EQ(after.nbd_connections, 1u);
}

TEST_F(NbdPathTest, ManyLargeAsyncCallsFillTheWindowAndEachGetsItsBytes) {
  constexpr int kCalls = 48;
  auto volume = NewVolume("disk0", kCalls * 512 * 1024, {.max_in_flight = 8});
  ASSERT_NE(volume, nullptr);
  ASSERT_NO_FATAL_FAILURE(UntilNbdCarriesOne(volume.get()));
  std::vector<std::string> data(kCalls);
  std::vector<std::future<absl::Status>> writes;
  for (int i = 0; i < kCalls; ++i) {
    data[i] = RandomBytes(512 * 1024, 10 + i);
    writes.push_back(volume->WriteAsync(uint64_t(i) * 512 * 1024, data[i].data(), 512 * 1024));
  }
  for (auto& w : writes) ASSERT_TRUE(w.get().ok());
  std::vector<std::string> back(kCalls, std::string(512 * 1024, '\0'));
  std::vector<std::future<absl::Status>> reads;
  for (int i = 0; i < kCalls; ++i) {
    reads.push_back(volume->ReadAsync(uint64_t(i) * 512 * 1024, back[i].data(), 512 * 1024));
  }
  for (int i = 0; i < kCalls; ++i) {
    ASSERT_TRUE(reads[i].get().ok());
    EXPECT_TRUE(back[i] == data[i]) << "call " << i;
  }
  EXPECT_GE(volume->stats().nbd_requests, 2u * kCalls);
}

// Large writes and a read back: they must all stay on the streams.
void ExpectLargeIoStaysOnTheStreams(Volume* volume) {
  const std::string a = RandomBytes(4 * kMiB, 4);
  for (int i = 0; i < 20; ++i) ASSERT_TRUE(volume->Write(0, a.data(), a.size()).ok());
  std::string back(4 * kMiB, '\0');
  ASSERT_TRUE(volume->Read(0, back.data(), back.size()).ok());
  EXPECT_TRUE(back == a);
  volume->Close();  // a dial in progress has ended by now
  EXPECT_EQ(volume->stats().nbd_requests, 0u);
  EXPECT_EQ(volume->stats().nbd_connections, 0u);
}

TEST_F(NbdPathTest, TheOptionOffKeepsEverythingOnTheStreams) {
  auto volume = NewVolume("disk0", 8 * kMiB, {.nbd = false});
  ASSERT_NE(volume, nullptr);
  ExpectLargeIoStaysOnTheStreams(volume.get());
}

// The export answers a deleted volume's requests ESHUTDOWN: the chunk goes
// to a stream, whose fresh binding learns NOT_FOUND, as without NBD.
TEST_F(NbdPathTest, AnErrorOverTheExportIsReportedAsTheStreamsReportIt) {
  auto volume = NewVolume("disk0", 4 * kMiB);
  ASSERT_NE(volume, nullptr);
  ASSERT_NO_FATAL_FAILURE(UntilNbdCarriesOne(volume.get()));
  ASSERT_TRUE(client_->DeleteVolume("disk0").ok());
  std::string buf(kMiB, '\0');
  const auto start = std::chrono::steady_clock::now();
  absl::Status s = volume->Read(0, buf.data(), buf.size(), {.deadline = std::chrono::seconds(10)});
  EXPECT_EQ(s.code(), absl::StatusCode::kNotFound) << s;
  EXPECT_LT(std::chrono::steady_clock::now() - start, std::chrono::seconds(8));
}

// A writer keeps 1 MiB writes in flight while the server is killed and
// started again (its export on a new port, which GetVolume tells). Every
// write completes OK through retries and the volume holds the last bytes.
TEST_F(NbdPathTest, InFlightLargeWritesSurviveAKillAndRestartWithNoWrongData) {
  constexpr int kBlocks = 24;
  auto volume = NewVolume("disk0", kBlocks * kMiB, {.max_in_flight = 8});
  ASSERT_NE(volume, nullptr);
  ASSERT_NO_FATAL_FAILURE(UntilNbdCarriesOne(volume.get()));
  RoundWriter writer(volume.get(), kBlocks, kMiB);
  writer.WaitRounds(2);
  Restart(SIGKILL);
  writer.WaitRounds(writer.WaitRounds(0) + 2);
  Restart(SIGTERM);
  writer.Finish();
  EXPECT_EQ(writer.failed(), 0);
  const std::vector<std::string>& want = writer.want();
  std::string all(kBlocks * kMiB, '\0');
  ASSERT_TRUE(volume->Read(0, all.data(), all.size()).ok());
  for (int i = 0; i < kBlocks; ++i) {
    ASSERT_TRUE(all.compare(uint64_t(i) * kMiB, kMiB, want[i]) == 0) << "block " << i;
  }
  // The export of each new server was dialled (at its new port) and used.
  EXPECT_GE(volume->stats().nbd_connections, 2u);
}

TEST_F(NbdPathTest, GetVolumeTellsTheExportsPortAndTheVolumesEpoch) {
  ASSERT_TRUE(client_->CreateVolume("disk0", 4 * kMiB).ok());
  const v1::Volume v = DescribeVolume(server_.address(), "disk0");
  EXPECT_NE(v.nbd_port(), 0u);
  EXPECT_FALSE(v.epoch().empty());
}

// Through the stand-in no stream ever answers: the writes can only succeed
// over the export, found by the GetVolume answer the volume was opened
// with, and after a restart moved it, by the GetVolume the volume asks
// again before it dials.
TEST_F(NbdPathTest, AVolumeWithoutAWorkingStreamFindsTheExportThroughGetVolume) {
  ASSERT_TRUE(client_->CreateVolume("disk0", 4 * kMiB).ok());
  StreamlessFront front(server_.address());
  ClientOptions options = client_options_;
  options.target = front.address();
  COWBLK_ASSERT_OK_AND_ASSIGN(client, Client::Create(options));
  COWBLK_ASSERT_OK_AND_ASSIGN(volume, client.OpenVolume("disk0"));
  const IoOptions patient{.deadline = std::chrono::seconds(20)};

  // Tried on a stream first (the connection is not up yet), then over the
  // export once it is.
  const std::string a = RandomBytes(kMiB, 21);
  absl::Status s = volume->Write(0, a.data(), a.size(), patient);
  ASSERT_TRUE(s.ok()) << s;
  EXPECT_EQ(volume->stats().nbd_connections, 1u);
  EXPECT_GE(volume->stats().nbd_requests, 1u);
  EXPECT_GE(front.sessions(), 1);  // streams were tried, and failed

  const uint32_t old_port = DescribeVolume(server_.address(), "disk0").nbd_port();
  ASSERT_NO_FATAL_FAILURE(Restart(SIGTERM));
  ASSERT_NE(DescribeVolume(server_.address(), "disk0").nbd_port(), old_port);
  const std::string b = RandomBytes(kMiB, 22);
  s = volume->Write(kMiB, b.data(), b.size(), patient);
  ASSERT_TRUE(s.ok()) << s;
  EXPECT_EQ(volume->stats().nbd_connections, 2u);
  volume->Close();

  // What the real server holds, read over its own streams.
  COWBLK_ASSERT_OK_AND_ASSIGN(check, client_->OpenVolume("disk0", {.nbd = false}));
  std::string back(2 * kMiB, '\0');
  ASSERT_TRUE(check->Read(0, back.data(), back.size()).ok());
  EXPECT_TRUE(back == a + b);
}

// A stopped server answers nothing: the read fails at its deadline (the
// connection is cut, so nothing lands in its buffer afterwards; ASan
// builds would see it), and the volume works again once the server runs.
TEST_F(NbdPathTest, ADeadlineCutsAnExportThatStoppedAnswering) {
  auto volume = NewVolume("disk0", 4 * kMiB);
  ASSERT_NE(volume, nullptr);
  ASSERT_NO_FATAL_FAILURE(UntilNbdCarriesOne(volume.get()));
  const uint64_t nbd_before = volume->stats().nbd_requests;
  ASSERT_TRUE(StopAndWait(server_.pid()));
  {
    auto buf = std::make_unique<std::string>(kMiB, '\0');
    const auto start = std::chrono::steady_clock::now();
    auto read =
        volume->ReadAsync(0, buf->data(), buf->size(), {.deadline = std::chrono::milliseconds(500)});
    const bool on_time = read.wait_for(std::chrono::seconds(10)) == std::future_status::ready;
    if (!on_time) kill(server_.pid(), SIGCONT);  // lets the read end, then fail
    absl::Status s = read.get();
    ASSERT_TRUE(on_time) << "a read past its deadline waited for the stopped server";
    EXPECT_EQ(s.code(), absl::StatusCode::kDeadlineExceeded) << s;
    EXPECT_NE(s.message().find("NBD"), std::string::npos) << s;
    EXPECT_LT(std::chrono::steady_clock::now() - start, std::chrono::seconds(3));
  }  // the buffer is freed here
  EXPECT_EQ(volume->stats().nbd_requests, nbd_before + 1);
  ASSERT_EQ(kill(server_.pid(), SIGCONT), 0);
  const std::string a = RandomBytes(kMiB, 7);
  ASSERT_TRUE(volume->Write(kMiB, a.data(), a.size()).ok());
  std::string back(kMiB, '\0');
  ASSERT_TRUE(volume->Read(kMiB, back.data(), back.size()).ok());
  EXPECT_TRUE(back == a);
}

TEST_F(NbdPathTest, AVolumeOfSmallReadsNeverDialsTheExport) {
  auto volume = NewVolume("disk0", 4 * kMiB);
  ASSERT_NE(volume, nullptr);
  std::string back(16 * 1024, 'x');  // below nbd_min_read_bytes (32 KiB)
  for (int i = 0; i < 50; ++i) ASSERT_TRUE(volume->Read(0, back.data(), back.size()).ok());
  EXPECT_EQ(back, std::string(back.size(), '\0'));
  ASSERT_TRUE(volume->Flush().ok());
  ASSERT_TRUE(volume->Trim(0, kMiB).ok());
  volume->Close();  // a dial in progress would be counted by now
  EXPECT_EQ(volume->stats().nbd_connections, 0u);
  EXPECT_EQ(volume->stats().nbd_requests, 0u);
}

// Writes acknowledged over NBD count for epochs like the streams' writes: a
// deferred server killed before a flush covered one fails the next flush
// DATA_LOSS, which only a stream can learn (the new server's epoch).
TEST_F(NbdPathTest, AWriteAcknowledgedOverNbdThenLostInACrashFailsTheNextFlush) {
  server_.Stop(SIGKILL);
  // Bits wait for a commit that a 60 s interval never starts on its own.
  ASSERT_NO_FATAL_FAILURE(StartServer({.args = {"--nbd-listen", "127.0.0.1:0", "--durability",
                                                "deferred", "--commit-interval-ms", "60000"}}));
  auto volume = NewVolume("disk0", 4 * kMiB);
  ASSERT_NE(volume, nullptr);
  ASSERT_NO_FATAL_FAILURE(UntilNbdCarriesOne(volume.get()));
  const uint64_t nbd_before = volume->stats().nbd_requests;
  const std::string a = RandomBytes(4096, 8);
  ASSERT_TRUE(volume->Write(0, a.data(), a.size()).ok());  // acknowledged, not flushed
  ASSERT_EQ(volume->stats().nbd_requests, nbd_before + 1);
  ASSERT_NO_FATAL_FAILURE(Restart(SIGKILL));
  absl::Status flush = volume->Flush();
  EXPECT_EQ(flush.code(), absl::StatusCode::kDataLoss) << flush;
  EXPECT_EQ(volume->stats().epoch_losses, 1u);
  EXPECT_TRUE(volume->Flush().ok());  // reported once
}

class NbdPathWithoutExportTest : public ClientFixture {};

TEST_F(NbdPathWithoutExportTest, GetVolumeTellsNoExportPort) {
  ASSERT_TRUE(client_->CreateVolume("disk0", 4 * kMiB).ok());
  const v1::Volume v = DescribeVolume(server_.address(), "disk0");
  EXPECT_EQ(v.nbd_port(), 0u);
  EXPECT_FALSE(v.epoch().empty());
}

TEST_F(NbdPathWithoutExportTest, AServerWithoutAnExportKeepsEverythingOnTheStreams) {
  auto volume = NewVolume("disk0", 8 * kMiB);
  ASSERT_NE(volume, nullptr);
  ExpectLargeIoStaysOnTheStreams(volume.get());
}

TEST(NbdHostTest, TheExportIsDialledAtTheTargetsHost) {
  using internal::NbdHostOf;
  EXPECT_EQ(NbdHostOf("127.0.0.1:7800"), "127.0.0.1");
  EXPECT_EQ(NbdHostOf("disks.example:7800"), "disks.example");
  EXPECT_EQ(NbdHostOf("dns:///disks.example:7800"), "disks.example");
  EXPECT_EQ(NbdHostOf("ipv4:10.0.0.5:7800"), "10.0.0.5");
  EXPECT_EQ(NbdHostOf("[::1]:7800"), "::1");
  EXPECT_EQ(NbdHostOf("ipv6:[fd00::2]:7800"), "fd00::2");
  // No single TCP host: no NBD.
  EXPECT_EQ(NbdHostOf("unix:/run/cowblk.sock"), "");
  EXPECT_EQ(NbdHostOf("ipv4:10.0.0.5:7800,10.0.0.6:7800"), "");
  EXPECT_EQ(NbdHostOf("dns://8.8.8.8/disks.example:7800"), "");
  EXPECT_EQ(NbdHostOf(""), "");
}

// With mutual TLS and tokens (issue 21 item 4): the library dials the
// export over TLS with its client certificate, whose `x509:CN=client` line
// in the token file gives it `rw:tls-*`; the gRPC calls go by the token.
class NbdPathTlsTest : public NbdPathTest {
 protected:
  void SetUp() override {
    ASSERT_EQ(pki_.Generate(), "");
    WriteFileBytes(pki_.File("tokens"), "admin-token admin\nx509:CN=client rw:tls-*\n");
    client_options_.tls_ca_file = pki_.File("ca.pem");
    client_options_.tls_cert_file = pki_.File("client.pem");
    client_options_.tls_key_file = pki_.File("client.key");
    client_options_.token = "admin-token";
    StartServer({.args = {"--nbd-listen", "127.0.0.1:0", "--tls-cert", pki_.File("server.pem"),
                          "--tls-key", pki_.File("server.key"), "--tls-client-ca",
                          pki_.File("ca.pem"), "--token-file", pki_.File("tokens")}});
  }

  Pki pki_;
};

TEST_F(NbdPathTlsTest, ReadsAndWritesTravelOverTheTlsExportAndComeBackWhole) {
  auto volume = NewVolume("tls-0", 32 * kMiB);
  ASSERT_NE(volume, nullptr);
  ASSERT_NO_FATAL_FAILURE(UntilNbdCarriesOne(volume.get()));
  const VolumeStats before = volume->stats();
  const std::string a = RandomBytes(8 * kMiB, 1);
  ASSERT_TRUE(volume->Write(4 * kMiB, a.data(), a.size()).ok());  // 8 chunks
  ASSERT_TRUE(volume->Flush().ok());
  std::string back(8 * kMiB, '\0');
  ASSERT_TRUE(volume->Read(4 * kMiB, back.data(), back.size()).ok());
  EXPECT_TRUE(back == a);
  const VolumeStats after = volume->stats();
  EXPECT_EQ(after.nbd_requests - before.nbd_requests, 16u);
  EXPECT_EQ(after.nbd_connections, 1u);
  EXPECT_NE(server_.log().find("tls=on writable=yes volume=tls-0"), std::string::npos)
      << server_.log();
}

TEST_F(NbdPathTlsTest, AVolumeOutsideTheCertificatesScopesStaysOnTheStreams) {
  // The token may, the certificate may not: the export refuses it, and the
  // data goes over the streams, whole.
  auto volume = NewVolume("other-0", 8 * kMiB);
  ASSERT_NE(volume, nullptr);
  const std::string a = RandomBytes(4 * kMiB, 4);
  ASSERT_TRUE(volume->Write(0, a.data(), a.size()).ok());
  ASSERT_TRUE(volume->Flush().ok());
  std::string back(4 * kMiB, '\0');
  ASSERT_TRUE(volume->Read(0, back.data(), back.size()).ok());
  EXPECT_TRUE(back == a);
  EXPECT_EQ(volume->stats().nbd_requests, 0u);
  EXPECT_EQ(server_.log().find("volume=other-0 zero_copy"), std::string::npos) << server_.log();
}

}  // namespace
}  // namespace cowblk::testing
