// The cowblk:// target: one Volume of libcowblk, `streams` lanes, enough
// window for every stream's depth. Completions arrive on gRPC's threads and
// resubmit from there with another *Async call (allowed by volume.h).

#include <cerrno>
#include <cstdlib>
#include <memory>
#include <string>

#include "absl/strings/str_cat.h"
#include "bench/loadgen/target.h"
#include "cowblk/client.h"

namespace cowblk::bench {
namespace {

class CowblkTarget : public Target {
 public:
  explicit CowblkTarget(std::unique_ptr<Volume> volume) : volume_(std::move(volume)) {}
  ~CowblkTarget() override { volume_->Close(); }

  uint64_t size() const override { return volume_->size(); }
  bool polled() const override { return false; }

  void Read(uint64_t offset, void* buf, size_t length, Completion* c) override {
    volume_->ReadAsync(offset, buf, length, [c](absl::Status s) { Finish(c, s); });
  }
  void Write(uint64_t offset, const void* buf, size_t length, Completion* c) override {
    volume_->WriteAsync(offset, buf, length, [c](absl::Status s) { Finish(c, s); });
  }
  absl::Status Flush() override { return volume_->Flush(); }

 private:
  static void Finish(Completion* c, const absl::Status& s) {
    const int64_t t = NowNs();
    if (s.ok()) {
      c->Done(0, nullptr, t);
    } else {
      const std::string msg = s.ToString();
      c->Done(EIO, msg.c_str(), t);
    }
  }

  std::unique_ptr<Volume> volume_;
};

}  // namespace

absl::StatusOr<std::unique_ptr<Target>> OpenCowblk(const TargetOptions& o) {
  // cowblk://HOST:PORT/VOLUME, or cowblk:///VOLUME with --server.
  std::string rest = o.uri.substr(std::string("cowblk://").size());
  const size_t slash = rest.find('/');
  if (slash == std::string::npos || slash + 1 == rest.size()) {
    return absl::InvalidArgumentError(
        absl::StrCat("--target ", o.uri, ": want cowblk://HOST:PORT/VOLUME"));
  }
  std::string server = rest.substr(0, slash);
  const std::string volume_name = rest.substr(slash + 1);
  if (server.empty()) server = o.cowblk.server;
  if (server.empty()) {
    return absl::InvalidArgumentError(
        absl::StrCat("--target ", o.uri, ": no server (cowblk://HOST:PORT/VOLUME or --server)"));
  }
  auto co = cli::ToClientOptions(o.cowblk, server);
  if (!co.ok()) return co.status();
  auto client = Client::Create(*co);
  if (!client.ok()) return client.status();
  VolumeOptions vo;
  const int chunks = static_cast<int>((o.block_size + vo.chunk_size - 1) / vo.chunk_size);
  vo.max_in_flight = std::max(1, o.streams * o.iodepth * chunks);
  vo.lanes = o.streams;
  vo.nbd = o.cowblk_nbd;
  vo.nbd_min_read_bytes = o.cowblk_nbd_min_read;
  vo.nbd_min_write_bytes = o.cowblk_nbd_min_write;
  auto volume = client->OpenVolume(volume_name, vo);
  if (!volume.ok()) return volume.status();
  return std::unique_ptr<Target>(new CowblkTarget(*std::move(volume)));
}

}  // namespace cowblk::bench
