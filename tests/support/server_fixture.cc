#include "tests/support/server_fixture.h"

namespace cowblk::testing {

void ServerFixture::StartServer(const std::vector<std::string>& args) {
  StartServer(ServerConfig{.args = args});
}

void ServerFixture::StartServer(const ServerConfig& config) {
  ASSERT_TRUE(server_.Start(dir_.path(), config)) << server_.log();
  volumes_ = v1::VolumeService::NewStub(server_.Channel());
  blocks_ = v1::BlockService::NewStub(server_.Channel());
}

grpc::Status ServerFixture::Create(const std::string& name, uint64_t size,
                                   const std::string& image, v1::Volume* out) {
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

grpc::Status ServerFixture::Upload(const std::string& name, const std::string& bytes) {
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

grpc::Status ServerFixture::WriteData(const std::string& volume, uint64_t offset,
                                      const std::string& data, bool flush) {
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

grpc::Status ServerFixture::ReadData(const std::string& volume, uint64_t offset,
                                     uint64_t length, std::string* out) {
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

grpc::Status ServerFixture::Flush(const std::string& volume) {
  grpc::ClientContext ctx;
  v1::FlushRequest req;
  req.set_volume(volume);
  v1::FlushResponse resp;
  return blocks_->Flush(&ctx, req, &resp);
}

}  // namespace cowblk::testing
