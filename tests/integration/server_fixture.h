// A fixture with a real cowblkd on a fresh data directory and helpers for
// the RPCs the integration tests share.

#ifndef COWBLK_TESTS_INTEGRATION_SERVER_FIXTURE_H_
#define COWBLK_TESTS_INTEGRATION_SERVER_FIXTURE_H_

#include <grpcpp/grpcpp.h>
#include <sys/stat.h>

#include <algorithm>
#include <filesystem>
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "cowblk/v1/block.grpc.pb.h"
#include "cowblk/v1/volume.grpc.pb.h"
#include "gtest/gtest.h"
#include "tests/integration/cowblkd_process.h"
#include "tests/unit/test_util.h"

namespace cowblk::testing {

namespace v1 = ::cowblk::v1;

class ServerFixture : public ::testing::Test {
 protected:
  void SetUp() override { StartServer(); }

  void StartServer(const std::vector<std::string>& args = {}) {
    ASSERT_TRUE(server_.Start(dir_.path(), args)) << server_.log();
    volumes_ = v1::VolumeService::NewStub(server_.Channel());
    blocks_ = v1::BlockService::NewStub(server_.Channel());
  }
  int StopServer(int sig = SIGTERM) { return server_.Stop(sig); }

  grpc::Status Create(const std::string& name, uint64_t size, const std::string& image = "",
                      v1::Volume* out = nullptr) {
    grpc::ClientContext ctx;
    v1::CreateVolumeRequest req;
    req.set_name(name);
    req.set_size_bytes(size);
    req.set_image(image);
    v1::Volume resp;
    grpc::Status s = volumes_->CreateVolume(&ctx, req, &resp);
    if (out != nullptr) *out = resp;
    return s;
  }

  grpc::Status Upload(const std::string& name, const std::string& bytes) {
    grpc::ClientContext ctx;
    v1::Image resp;
    auto writer = volumes_->UploadImage(&ctx, &resp);
    for (size_t off = 0; off == 0 || off < bytes.size(); off += 1 << 20) {
      v1::UploadImageRequest req;
      if (off == 0) req.set_name(name);
      req.set_data(bytes.substr(off, 1 << 20));
      if (!writer->Write(req)) break;
    }
    writer->WritesDone();
    return writer->Finish();
  }

  grpc::Status WriteData(const std::string& volume, uint64_t offset, const std::string& data,
                         bool flush = false) {
    grpc::ClientContext ctx;
    v1::WriteResponse resp;
    auto writer = blocks_->Write(&ctx, &resp);
    v1::WriteRequest req;
    req.set_volume(volume);
    req.set_offset(offset);
    req.set_data(data);
    req.set_flush(flush);
    writer->Write(req);
    writer->WritesDone();
    return writer->Finish();
  }

  grpc::Status ReadData(const std::string& volume, uint64_t offset, uint64_t length,
                        std::string* out) {
    grpc::ClientContext ctx;
    v1::ReadRequest req;
    req.set_volume(volume);
    req.set_offset(offset);
    req.set_length(length);
    auto reader = blocks_->Read(&ctx, req);
    v1::ReadResponse chunk;
    out->clear();
    while (reader->Read(&chunk)) {
      EXPECT_EQ(chunk.offset(), offset + out->size());
      out->append(chunk.data());
    }
    return reader->Finish();
  }

  grpc::Status Flush(const std::string& volume) {
    grpc::ClientContext ctx;
    v1::FlushRequest req;
    req.set_volume(volume);
    v1::FlushResponse resp;
    return blocks_->Flush(&ctx, req, &resp);
  }

  // Every file under the data directory with its size and content: equal
  // snapshots mean a refused request changed nothing on disk.
  std::string Snapshot() const {
    std::vector<std::string> lines;
    for (const auto& e : std::filesystem::recursive_directory_iterator(dir_.path())) {
      if (!e.is_regular_file()) continue;
      const std::string bytes = ReadFileBytes(e.path().string());
      lines.push_back(e.path().string() + " " + std::to_string(bytes.size()) + " " +
                      std::to_string(std::hash<std::string>{}(bytes)));
    }
    std::sort(lines.begin(), lines.end());
    std::string out;
    for (const std::string& l : lines) out += l + "\n";
    return out;
  }

  TempDir dir_;
  CowblkdProcess server_;
  std::unique_ptr<v1::VolumeService::Stub> volumes_;
  std::unique_ptr<v1::BlockService::Stub> blocks_;
};

}  // namespace cowblk::testing

#endif  // COWBLK_TESTS_INTEGRATION_SERVER_FIXTURE_H_
