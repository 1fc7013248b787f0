// TLS, mutual TLS and bearer-token scopes against a real cowblkd (issue 4,
// items 7 and 11): a client without the right credentials is refused,
// changes nothing on disk and learns nothing about volumes outside its
// scopes. Certificates are made at test time with the openssl command.

#include <grpcpp/grpcpp.h>

#include <algorithm>
#include <chrono>
#include <filesystem>
#include <functional>
#include <map>
#include <memory>
#include <string>
#include <type_traits>
#include <vector>

#include "cowblk/v1/block.grpc.pb.h"
#include "cowblk/v1/volume.grpc.pb.h"
#include "gtest/gtest.h"
#include "tests/support/pki.h"
#include "tests/support/server_fixture.h"

namespace cowblk::testing {
namespace {

using grpc::StatusCode;
using Volumes = v1::VolumeService::Stub;
using Blocks = v1::BlockService::Stub;

constexpr uint64_t kVolumeBytes = 1 << 20;

template <typename Req>
Req Named(const std::string& name) {
  Req req;
  req.set_name(name);
  return req;
}

v1::SessionRequest SessionOp(uint64_t id, const std::string& volume, v1::Op op, uint64_t length = 0,
                             const std::string& data = "") {
  v1::SessionRequest req;
  req.set_id(id);
  req.set_volume(volume);
  req.set_op(op);
  req.set_length(data.empty() ? length : data.size());
  req.set_data(data);
  return req;
}

// Both services' stubs over one channel. Every call carries `authorization`
// as metadata unless it is empty, and a deadline so a stuck call fails.
class Client {
 public:
  explicit Client(const std::shared_ptr<grpc::Channel>& channel, std::string authorization = "")
      : volumes_(v1::VolumeService::NewStub(channel)),
        blocks_(v1::BlockService::NewStub(channel)),
        authorization_(std::move(authorization)) {}

  // Any unary call of either service: Call(&Volumes::GetVolume, request).
  template <typename Stub, typename Req, typename Resp>
  grpc::Status Call(grpc::Status (Stub::*rpc)(grpc::ClientContext*, const Req&, Resp*),
                    const Req& req, Resp* resp = nullptr) {
    grpc::ClientContext ctx;
    Prepare(&ctx);
    Resp ignored;
    Stub* stub;
    if constexpr (std::is_same_v<Stub, Blocks>) {
      stub = blocks_.get();
    } else {
      stub = volumes_.get();
    }
    return (stub->*rpc)(&ctx, req, resp != nullptr ? resp : &ignored);
  }

  grpc::Status Create(const std::string& name, const std::string& image = "") {
    auto req = Named<v1::CreateVolumeRequest>(name);
    req.set_image(image);
    if (image.empty()) req.set_size_bytes(kVolumeBytes);
    return Call(&Volumes::CreateVolume, req);
  }
  grpc::Status Flush(const std::string& volume) {
    v1::FlushRequest req;
    req.set_volume(volume);
    return Call(&Blocks::Flush, req);
  }
  grpc::Status Upload(const std::string& name, const std::string& bytes) {
    auto req = Named<v1::UploadImageRequest>(name);
    req.set_data(bytes);
    return SendOne<v1::Image>(&Volumes::UploadImage, volumes_.get(), req);
  }
  // Writes `data` at offset 0, flushing after.
  grpc::Status Write(const std::string& volume, const std::string& data) {
    v1::WriteRequest req;
    req.set_volume(volume);
    req.set_data(data);
    req.set_flush(true);
    return SendOne<v1::WriteResponse>(&Blocks::Write, blocks_.get(), req);
  }

  grpc::Status Read(const std::string& volume, uint64_t length, std::string* out) {
    grpc::ClientContext ctx;
    Prepare(&ctx);
    v1::ReadRequest req;
    req.set_volume(volume);
    req.set_length(length);
    auto reader = blocks_->Read(&ctx, req);
    out->clear();
    for (v1::ReadResponse chunk; reader->Read(&chunk);) out->append(chunk.data());
    return reader->Finish();
  }

  // Sends `requests` on one Session stream; returns the answers by id.
  std::map<uint64_t, v1::SessionResponse> Session(const std::vector<v1::SessionRequest>& requests,
                                                  grpc::Status* status) {
    grpc::ClientContext ctx;
    Prepare(&ctx);
    auto stream = blocks_->Session(&ctx);
    for (const v1::SessionRequest& r : requests) stream->Write(r);
    stream->WritesDone();
    std::map<uint64_t, v1::SessionResponse> answers;
    for (v1::SessionResponse resp; stream->Read(&resp);) answers[resp.id()] = resp;
    *status = stream->Finish();
    return answers;
  }

 private:
  void Prepare(grpc::ClientContext* ctx) const {
    ctx->set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(30));
    if (!authorization_.empty()) ctx->AddMetadata("authorization", authorization_);
  }

  // One message on a client-streaming call.
  template <typename Resp, typename Stub, typename Req, typename Rpc>
  grpc::Status SendOne(Rpc rpc, Stub* stub, const Req& req) {
    grpc::ClientContext ctx;
    Prepare(&ctx);
    Resp resp;
    auto writer = (stub->*rpc)(&ctx, &resp);
    writer->Write(req);
    writer->WritesDone();
    return writer->Finish();
  }

  std::unique_ptr<Volumes> volumes_;
  std::unique_ptr<Blocks> blocks_;
  const std::string authorization_;
};

// ---- TLS and mutual TLS ----------------------------------------------------

class SecurityTlsTestBase : public ServerFixture {
 protected:
  void StartTlsServer(bool mutual) {
    ASSERT_EQ(pki_.Generate(), "");
    std::vector<std::string> args = {"--tls-cert", pki_.File("server.pem"), "--tls-key",
                                     pki_.File("server.key")};
    if (mutual) args.insert(args.end(), {"--tls-client-ca", pki_.File("ca.pem")});
    ASSERT_NO_FATAL_FAILURE(StartServer(args));
    ASSERT_NE(server_.log().find(mutual ? "tls=mutual" : "tls=on"), std::string::npos);
  }

  // A TLS client trusting `ca`, presenting the certificate `cert` if set.
  Client TlsClient(const std::string& ca, const std::string& cert = "",
                   const std::string& target_name = "") {
    grpc::SslCredentialsOptions opts;
    opts.pem_root_certs = pki_.Read(ca + ".pem");
    if (!cert.empty()) {
      opts.pem_private_key = pki_.Read(cert + ".key");
      opts.pem_cert_chain = pki_.Read(cert + ".pem");
    }
    grpc::ChannelArguments args;
    if (!target_name.empty()) args.SetSslTargetNameOverride(target_name);
    return Client(server_.Channel(grpc::SslCredentials(opts), args));
  }

  void ExpectServed(Client& client) {
    ASSERT_TRUE(client.Create("vol-1").ok());
    v1::Volume info;
    ASSERT_TRUE(client.Call(&Volumes::GetVolume, Named<v1::GetVolumeRequest>("vol-1"), &info).ok());
    EXPECT_EQ(info.size_bytes(), kVolumeBytes);
    const std::string data = RandomBytes(8192, 7);
    grpc::Status status;
    auto answers = client.Session(
        {SessionOp(1, "vol-1", v1::OP_WRITE, 0, data), SessionOp(2, "vol-1", v1::OP_FLUSH)},
        &status);
    ASSERT_TRUE(status.ok()) << status.error_message();
    EXPECT_EQ(answers[1].code(), 0) << answers[1].message();
    answers = client.Session({SessionOp(3, "vol-1", v1::OP_READ, data.size())}, &status);
    ASSERT_TRUE(status.ok()) << status.error_message();
    EXPECT_EQ(answers[3].code(), 0) << answers[3].message();
    EXPECT_TRUE(answers[3].data() == data);
  }

  // No call gets through: each fails for want of a connection and the data
  // directory stays as it was.
  void ExpectRefused(Client& client) {
    const std::string before = Snapshot();
    grpc::Status s = client.Create("refused");
    EXPECT_EQ(s.error_code(), StatusCode::UNAVAILABLE) << s.error_message();
    s = client.Call(&Volumes::ListVolumes, v1::ListVolumesRequest());
    EXPECT_EQ(s.error_code(), StatusCode::UNAVAILABLE) << s.error_message();
    EXPECT_FALSE(std::filesystem::exists(dir_.File("volumes/refused.cow")));
    EXPECT_EQ(Snapshot(), before);
  }

  Pki pki_;
};

class TlsSecurityTest : public SecurityTlsTestBase {
 protected:
  void SetUp() override { StartTlsServer(/*mutual=*/false); }
};

class MutualTlsSecurityTest : public SecurityTlsTestBase {
 protected:
  void SetUp() override { StartTlsServer(/*mutual=*/true); }
};

TEST_F(TlsSecurityTest, ClientTrustingTheCaCreatesWritesAndReads) {
  Client client = TlsClient("ca");
  ExpectServed(client);
  Client by_name = TlsClient("ca", "", "localhost");  // the certificate's DNS name
  EXPECT_TRUE(by_name.Call(&Volumes::GetVolume, Named<v1::GetVolumeRequest>("vol-1")).ok());
}

TEST_F(TlsSecurityTest, PlaintextClientIsRefused) {
  Client plaintext(server_.Channel());
  ExpectRefused(plaintext);
}

TEST_F(TlsSecurityTest, ClientNotTrustingTheCaIsRefused) {
  Client client = TlsClient("other-ca");
  ExpectRefused(client);
}

TEST_F(MutualTlsSecurityTest, ClientWithCertificateFromTheCaIsServed) {
  Client client = TlsClient("ca", "client");
  ExpectServed(client);
}

TEST_F(MutualTlsSecurityTest, ClientWithoutCertificateIsRefused) {
  Client client = TlsClient("ca");
  ExpectRefused(client);
}

TEST_F(MutualTlsSecurityTest, ClientCertificateFromAnotherCaIsRefused) {
  Client client = TlsClient("ca", "intruder");
  ExpectRefused(client);
}

// ---- Bearer tokens ---------------------------------------------------------

class TokenSecurityTest : public ServerFixture {
 protected:
  void SetUp() override {
    WriteFileBytes(config_.File("tokens"),
                   "# cowblkd tokens\n"
                   "admin-secret admin\n"
                   "reader-secret read:team-a-*\n"
                   "team-a-secret rw:team-a-*  # read-write\n");
    ASSERT_NO_FATAL_FAILURE(StartServer({"--token-file", config_.File("tokens")}));
    admin_ = std::make_unique<Client>(server_.Channel(), "Bearer admin-secret");
    ASSERT_TRUE(admin_->Upload("base", RandomBytes(64 << 10, 3)).ok());
    for (const char* name : {"team-a-1", "team-a-2", "team-b-1"}) {
      ASSERT_TRUE(admin_->Create(name).ok());
      ASSERT_TRUE(admin_->Write(name, Data(name)).ok());
    }
    before_ = Snapshot();
  }

  Client As(const std::string& token) { return Client(server_.Channel(), "Bearer " + token); }
  static std::string Data(const std::string& volume) {
    return RandomBytes(4096, static_cast<uint32_t>(std::hash<std::string>{}(volume)));
  }

  // Nothing changed on disk since SetUp (no volume team-a-3 either), and
  // the admin reads back what SetUp wrote.
  void ExpectNothingChanged() {
    EXPECT_EQ(Snapshot(), before_);
    EXPECT_FALSE(std::filesystem::exists(dir_.File("volumes/team-a-3.cow")));
    for (const char* name : {"team-a-1", "team-a-2", "team-b-1"}) {
      std::string data;
      ASSERT_TRUE(admin_->Read(name, 4096, &data).ok());
      EXPECT_TRUE(data == Data(name)) << name;
    }
  }

  static v1::CloneVolumeRequest CloneRequest(const std::string& source, const std::string& name) {
    v1::CloneVolumeRequest req;
    req.set_source(source);
    req.set_name(name);
    return req;
  }
  static v1::ResizeVolumeRequest ResizeRequest(const std::string& name, uint64_t size) {
    v1::ResizeVolumeRequest req;
    req.set_name(name);
    req.set_size_bytes(size);
    return req;
  }

  static v1::CreateSnapshotRequest SnapshotRequest(const std::string& volume,
                                                  const std::string& name) {
    v1::CreateSnapshotRequest req;
    req.set_volume(volume);
    req.set_name(name);
    return req;
  }

  // Every call that needs the admin scope, each about something that exists.
  static std::vector<grpc::Status> AdminCalls(Client& client) {
    return {client.Create("team-a-3"),
            client.Call(&Volumes::DeleteVolume, Named<v1::DeleteVolumeRequest>("team-a-1")),
            client.Call(&Volumes::CommitVolume, Named<v1::CommitVolumeRequest>("team-a-1")),
            client.Call(&Volumes::RebaseVolume, Named<v1::RebaseVolumeRequest>("team-a-1")),
            client.Call(&Volumes::CloneVolume, CloneRequest("team-a-1", "team-a-3")),
            client.Call(&Volumes::ResizeVolume, ResizeRequest("team-a-1", 1 << 21)),
            client.Upload("img", std::string(4096, 'i')),
            client.Call(&Volumes::ListImages, v1::ListImagesRequest()),
            client.Call(&Volumes::GetImage, Named<v1::GetImageRequest>("base")),
            client.Call(&Volumes::DeleteImage, Named<v1::DeleteImageRequest>("base")),
            client.Call(&Volumes::CreateSnapshot, SnapshotRequest("team-a-1", "snap")),
            client.Call(&Volumes::GetSnapshot, Named<v1::GetSnapshotRequest>("base")),
            client.Call(&Volumes::ListSnapshots, v1::ListSnapshotsRequest()),
            client.Call(&Volumes::DeleteSnapshot, Named<v1::DeleteSnapshotRequest>("base"))};
  }

  // Each answer `client` gets about `volume` (code and message, the name
  // blanked out): equal lists mean the client cannot tell two volumes apart.
  std::vector<std::string> Answers(Client& client, const std::string& volume) {
    std::vector<std::string> out;
    auto add = [&](int code, std::string message) {
      for (size_t at; (at = message.find(volume)) != std::string::npos;) {
        message.replace(at, volume.size(), "NAME");
      }
      out.push_back(std::to_string(code) + " " + message);
    };
    std::string data;
    for (const grpc::Status& s :
         {client.Call(&Volumes::GetVolume, Named<v1::GetVolumeRequest>(volume)),
          client.Call(&Volumes::GetAllocation, Named<v1::GetAllocationRequest>(volume)),
          client.Call(&Volumes::DeleteVolume, Named<v1::DeleteVolumeRequest>(volume)),
          client.Read(volume, 4096, &data), client.Write(volume, std::string(4096, 'x')),
          client.Flush(volume)}) {
      add(s.error_code(), s.error_message());
    }
    grpc::Status status;
    auto answers = client.Session({SessionOp(1, volume, v1::OP_READ, 4096),
                                   SessionOp(2, volume, v1::OP_WRITE, 0, std::string(512, 'x'))},
                                  &status);
    add(status.error_code(), status.error_message());
    for (uint64_t id : {1, 2}) add(answers[id].code(), answers[id].message());
    return out;
  }

  TempDir config_;
  std::unique_ptr<Client> admin_;
  std::string before_;
};

TEST_F(TokenSecurityTest, CallsWithoutAValidTokenAreUnauthenticated) {
  // No header; unknown tokens (one as long as a real one); a real token
  // without the Bearer scheme.
  for (const char* header : {"", "Bearer nope", "Bearer admin-secreT", "admin-secret"}) {
    SCOPED_TRACE(std::string("authorization: ") + header);
    Client client(server_.Channel(), header);
    std::string data;
    std::vector<grpc::Status> calls = AdminCalls(client);
    for (const grpc::Status& s :
         {client.Call(&Volumes::GetVolume, Named<v1::GetVolumeRequest>("team-a-1")),
          client.Call(&Volumes::ListVolumes, v1::ListVolumesRequest()),
          client.Call(&Volumes::GetServerInfo, v1::GetServerInfoRequest()),
          client.Call(&Volumes::GetAllocation, Named<v1::GetAllocationRequest>("team-a-1")),
          client.Flush("team-a-1"), client.Write("team-a-1", std::string(4096, 'x')),
          client.Read("team-a-1", 4096, &data)}) {
      calls.push_back(s);
    }
    for (size_t i = 0; i < calls.size(); ++i) {
      EXPECT_EQ(calls[i].error_code(), StatusCode::UNAUTHENTICATED)
          << "call " << i << ": " << calls[i].error_message();
    }
    // A Session ends before any message is read.
    grpc::Status status;
    auto answers = client.Session({SessionOp(1, "team-a-1", v1::OP_READ, 4096)}, &status);
    EXPECT_EQ(status.error_code(), StatusCode::UNAUTHENTICATED) << status.error_message();
    EXPECT_TRUE(answers.empty());
  }
  ExpectNothingChanged();
}

TEST_F(TokenSecurityTest, ReadTokenReadsButCannotWriteOrAdminister) {
  Client reader = As("reader-secret");
  std::string data;
  ASSERT_TRUE(reader.Read("team-a-1", 4096, &data).ok());
  EXPECT_TRUE(data == Data("team-a-1"));
  v1::Volume info;
  EXPECT_TRUE(
      reader.Call(&Volumes::GetVolume, Named<v1::GetVolumeRequest>("team-a-1"), &info).ok());
  EXPECT_EQ(info.size_bytes(), kVolumeBytes);
  EXPECT_TRUE(
      reader.Call(&Volumes::GetAllocation, Named<v1::GetAllocationRequest>("team-a-1")).ok());
  grpc::Status status;
  auto answers = reader.Session({SessionOp(1, "team-a-1", v1::OP_READ, 4096),
                                 SessionOp(2, "team-a-1", v1::OP_WRITE, 0, std::string(512, 'x')),
                                 SessionOp(3, "team-a-1", v1::OP_TRIM, 4096),
                                 SessionOp(4, "team-a-1", v1::OP_WRITE_ZEROES, 4096),
                                 SessionOp(5, "team-a-1", v1::OP_READ, 4096)},
                                &status);
  ASSERT_TRUE(status.ok()) << status.error_message();
  for (uint64_t id : {1, 5}) {
    EXPECT_EQ(answers[id].code(), 0) << answers[id].message();
    EXPECT_TRUE(answers[id].data() == Data("team-a-1"));
  }
  for (uint64_t id : {2, 3, 4}) EXPECT_EQ(answers[id].code(), StatusCode::PERMISSION_DENIED);

  std::vector<grpc::Status> refused = AdminCalls(reader);
  refused.push_back(reader.Write("team-a-1", std::string(4096, 'x')));
  refused.push_back(reader.Flush("team-a-1"));
  for (size_t i = 0; i < refused.size(); ++i) {
    EXPECT_EQ(refused[i].error_code(), StatusCode::PERMISSION_DENIED)
        << "call " << i << ": " << refused[i].error_message();
  }
  ExpectNothingChanged();
}

TEST_F(TokenSecurityTest, VolumeOutsideTheScopesIsIndistinguishableFromAMissingOne) {
  for (const char* token : {"reader-secret", "team-a-secret"}) {
    SCOPED_TRACE(token);
    Client client = As(token);
    const std::vector<std::string> hidden = Answers(client, "team-b-1");
    EXPECT_EQ(hidden, Answers(client, "team-b-9"));
    EXPECT_EQ(hidden[0], "5 volume NAME not found");  // NOT_FOUND
  }
  // Nor from a missing volume the token could read and write.
  Client writer = As("team-a-secret");
  EXPECT_EQ(Answers(writer, "team-b-1"), Answers(writer, "team-a-9"));
  ExpectNothingChanged();
}

TEST_F(TokenSecurityTest, ListVolumesShowsOnlyVolumesInTheScopes) {
  auto names = [](Client& client, uint32_t page_size) {
    std::vector<std::string> out;
    v1::ListVolumesRequest req;
    req.set_page_size(page_size);
    do {
      v1::ListVolumesResponse resp;
      EXPECT_TRUE(client.Call(&Volumes::ListVolumes, req, &resp).ok());
      for (const v1::Volume& v : resp.volumes()) out.push_back(v.name());
      req.set_page_token(resp.next_page_token());
    } while (!req.page_token().empty() && out.size() < 10);
    return out;
  };
  const std::vector<std::string> team_a = {"team-a-1", "team-a-2"};
  Client reader = As("reader-secret");
  Client writer = As("team-a-secret");
  for (uint32_t page_size : {0, 1, 2}) {
    SCOPED_TRACE(page_size);
    EXPECT_EQ(names(reader, page_size), team_a);
    EXPECT_EQ(names(writer, page_size), team_a);
    EXPECT_EQ(names(*admin_, page_size),
              std::vector<std::string>({"team-a-1", "team-a-2", "team-b-1"}));
  }
}

// Fails against the server as of this writing: a full page gets a
// next_page_token whenever any volume sorts after it, visible or not.
TEST_F(TokenSecurityTest, ListVolumesPagesRevealNothingAboutHiddenVolumes) {
  Client writer = As("team-a-secret");
  v1::ListVolumesRequest req;
  req.set_page_size(2);
  v1::ListVolumesResponse with_hidden, without_hidden;
  ASSERT_TRUE(writer.Call(&Volumes::ListVolumes, req, &with_hidden).ok());
  ASSERT_TRUE(
      admin_->Call(&Volumes::DeleteVolume, Named<v1::DeleteVolumeRequest>("team-b-1")).ok());
  ASSERT_TRUE(writer.Call(&Volumes::ListVolumes, req, &without_hidden).ok());
  EXPECT_EQ(with_hidden.DebugString(), without_hidden.DebugString());
}

TEST_F(TokenSecurityTest, ReadWriteTokenWritesItsVolumesOnly) {
  Client writer = As("team-a-secret");
  ASSERT_TRUE(writer.Write("team-a-2", RandomBytes(4096, 99)).ok());
  EXPECT_TRUE(writer.Flush("team-a-2").ok());
  grpc::Status status;
  auto answers = writer.Session({SessionOp(1, "team-a-2", v1::OP_TRIM, 4096)}, &status);
  EXPECT_EQ(answers[1].code(), 0) << answers[1].message();
  for (const grpc::Status& s : AdminCalls(writer)) {
    EXPECT_EQ(s.error_code(), StatusCode::PERMISSION_DENIED) << s.error_message();
  }
  EXPECT_FALSE(std::filesystem::exists(dir_.File("volumes/team-a-3.cow")));
  EXPECT_EQ(writer.Write("team-b-1", RandomBytes(4096, 99)).error_code(), StatusCode::NOT_FOUND);
  std::string back;
  ASSERT_TRUE(admin_->Read("team-b-1", 4096, &back).ok());
  EXPECT_TRUE(back == Data("team-b-1"));
}

TEST_F(TokenSecurityTest, AdminTokenCanDoEverything) {
  ASSERT_TRUE(admin_->Upload("other", RandomBytes(4096, 5)).ok());
  ASSERT_TRUE(admin_->Create("team-c-1", "base").ok());
  ASSERT_TRUE(admin_->Write("team-c-1", RandomBytes(4096, 4)).ok());
  EXPECT_TRUE(admin_->Flush("team-c-1").ok());
  EXPECT_TRUE(
      admin_->Call(&Volumes::GetAllocation, Named<v1::GetAllocationRequest>("team-c-1")).ok());
  auto commit = Named<v1::CommitVolumeRequest>("team-c-1");
  commit.set_image("merged");
  ASSERT_TRUE(admin_->Call(&Volumes::CommitVolume, commit).ok());
  v1::Image merged;
  ASSERT_TRUE(admin_->Call(&Volumes::GetImage, Named<v1::GetImageRequest>("merged"), &merged).ok());
  EXPECT_EQ(merged.size_bytes(), 64u << 10);
  v1::ListImagesResponse images;
  ASSERT_TRUE(admin_->Call(&Volumes::ListImages, v1::ListImagesRequest(), &images).ok());
  EXPECT_EQ(images.images_size(), 3);
  for (const char* name : {"team-a-1", "team-a-2", "team-b-1", "team-c-1"}) {
    EXPECT_TRUE(admin_->Call(&Volumes::DeleteVolume, Named<v1::DeleteVolumeRequest>(name)).ok());
  }
  for (const char* name : {"base", "other", "merged"}) {
    EXPECT_TRUE(admin_->Call(&Volumes::DeleteImage, Named<v1::DeleteImageRequest>(name)).ok());
  }
  EXPECT_TRUE(std::filesystem::is_empty(dir_.File("volumes")));
}

}  // namespace
}  // namespace cowblk::testing
