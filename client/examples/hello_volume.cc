// hello_volume SERVER VOLUME: creates a 16 MiB blank volume (unless it
// exists), writes 4 MiB with asynchronous writes, flushes, reads it back
// in one call and checks it. Prints "ok" and exits 0 on success.

#include <cstdio>
#include <future>
#include <string>
#include <vector>

#include "cowblk/client.h"
#include "cowblk/volume.h"

namespace {

int Fail(const char* what, const absl::Status& status) {
  std::fprintf(stderr, "hello_volume: %s: %s\n", what, status.ToString().c_str());
  return 1;
}

}  // namespace

int main(int argc, char** argv) {
  if (argc != 3) {
    std::fprintf(stderr, "usage: hello_volume SERVER VOLUME\n");
    return 2;
  }
  cowblk::ClientOptions options;
  options.target = argv[1];
  auto client = cowblk::Client::Create(options);
  if (!client.ok()) return Fail("connect", client.status());

  const std::string name = argv[2];
  auto created = client->CreateVolume(name, 16 << 20);
  if (!created.ok() && created.status().code() != absl::StatusCode::kAlreadyExists) {
    return Fail("create", created.status());
  }
  auto volume = client->OpenVolume(name);
  if (!volume.ok()) return Fail("open", volume.status());

  // 64 writes of 64 KiB in flight at once; the library windows them.
  const size_t kBlock = 64 << 10;
  std::string data(4 << 20, '\0');
  for (size_t i = 0; i < data.size(); ++i) data[i] = static_cast<char>(i * 7 + i / 4096);
  std::vector<std::future<absl::Status>> writes;
  for (size_t off = 0; off < data.size(); off += kBlock) {
    writes.push_back((*volume)->WriteAsync(off, data.data() + off, kBlock));
  }
  for (auto& w : writes) {
    if (absl::Status s = w.get(); !s.ok()) return Fail("write", s);
  }
  if (absl::Status s = (*volume)->Flush(); !s.ok()) return Fail("flush", s);

  // One 4 MiB read: split into chunks and pipelined by the library.
  std::string back(data.size(), '\0');
  if (absl::Status s = (*volume)->Read(0, back.data(), back.size()); !s.ok()) {
    return Fail("read", s);
  }
  if (back != data) {
    std::fprintf(stderr, "hello_volume: read back different bytes\n");
    return 1;
  }
  std::printf("ok\n");
  return 0;
}
