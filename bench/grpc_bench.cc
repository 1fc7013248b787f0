// grpc_bench: engine_bench's workloads end to end, through a running cowblkd
// and BlockService.Session streams. A minimal load generator until the client
// library (issue #5) has one.
//
// Volumes on the server (NAME is --prefix, "bench" by default):
//   NAME-image  the image, --size bytes of pseudo-random data, uploaded
//               (unless --base blank: volumes are then blank)
//   NAME-full   every sector allocated: COW reads and rewrites (--volume
//               names another); created and filled only as needed
//   NAME-empty  nothing allocated: backing reads
//   NAME-first  created afresh for each first-write run, deleted after it
// --keep leaves the image and the full volume for the next run.
//
// Load (session_load.h): `--streams` Session streams, each on a channel of
// its own, so no two share a TCP connection (unless --one-connection), with
// the workload's depth (or --depth) spread over them. Durability is the
// server's (`cowblkd --durability`): say which with --durability, and only
// those write workloads run.

#include <fnmatch.h>
#include <grpcpp/grpcpp.h>

#include <algorithm>
#include <chrono>
#include <cstdint>
#include <fstream>
#include <functional>
#include <iostream>
#include <memory>
#include <string>
#include <vector>

#include "CLI/CLI.hpp"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/strings/str_split.h"
#include "bench/runner.h"
#include "bench/session_load.h"
#include "common/malloc_tuning.h"
#include "cowblk/v1/volume.grpc.pb.h"
#include "nlohmann/json.hpp"

namespace cowblk::bench {
namespace {

using engine::Durability;
using engine::OpType;
using nlohmann::json;

struct Config {
  std::string server = "127.0.0.1:7800";
  uint64_t size = 1ULL << 30;
  double seconds = 5;
  int streams = 1;
  int depth = 0;  // 0: the workload's
  bool one_connection = false;
  bool blank = false;
  bool keep = false;
  uint64_t seed = 1;
  std::string image, full, empty, first;  // names on the server
};

// ---- Volumes and images (blocking calls; not on the measured path) -------

grpc::Status Call(const std::function<grpc::Status(grpc::ClientContext*)>& fn) {
  grpc::ClientContext ctx;
  ctx.set_deadline(std::chrono::system_clock::now() + std::chrono::minutes(5));
  return fn(&ctx);
}

std::string Describe(const grpc::Status& s) {
  return absl::StrCat("code ", s.error_code(), ": ", s.error_message());
}

class Admin {
 public:
  explicit Admin(std::shared_ptr<grpc::Channel> ch) : stub_(cowblk::v1::VolumeService::NewStub(ch)) {}

  grpc::Status GetVolume(const std::string& name, cowblk::v1::Volume* v) {
    cowblk::v1::GetVolumeRequest req;
    req.set_name(name);
    return Call([&](grpc::ClientContext* c) { return stub_->GetVolume(c, req, v); });
  }
  grpc::Status CreateVolume(const Config& cfg, const std::string& name, cowblk::v1::Volume* v) {
    cowblk::v1::CreateVolumeRequest req;
    req.set_name(name);
    if (cfg.blank) {
      req.set_size_bytes(cfg.size);
    } else {
      req.set_image(cfg.image);
    }
    return Call([&](grpc::ClientContext* c) { return stub_->CreateVolume(c, req, v); });
  }
  grpc::Status DeleteVolume(const std::string& name) {
    cowblk::v1::DeleteVolumeRequest req;
    cowblk::v1::DeleteVolumeResponse resp;
    req.set_name(name);
    return Call([&](grpc::ClientContext* c) { return stub_->DeleteVolume(c, req, &resp); });
  }
  grpc::Status DeleteImage(const std::string& name) {
    cowblk::v1::DeleteImageRequest req;
    cowblk::v1::DeleteImageResponse resp;
    req.set_name(name);
    return Call([&](grpc::ClientContext* c) { return stub_->DeleteImage(c, req, &resp); });
  }

  // Uploads `size` bytes of pseudo-random data as `name`, unless an image of
  // that name and size exists.
  grpc::Status EnsureImage(const std::string& name, uint64_t size, uint64_t seed) {
    cowblk::v1::GetImageRequest get;
    cowblk::v1::Image image;
    get.set_name(name);
    grpc::Status s = Call([&](grpc::ClientContext* c) { return stub_->GetImage(c, get, &image); });
    if (s.ok() && image.size_bytes() == size) return s;
    if (s.ok()) {
      return grpc::Status(grpc::StatusCode::FAILED_PRECONDITION,
                          absl::StrCat("image ", name, " exists with another size: use --prefix"));
    }
    if (s.error_code() != grpc::StatusCode::NOT_FOUND) return s;
    return Call([&](grpc::ClientContext* c) {
      auto writer = stub_->UploadImage(c, &image);
      cowblk::v1::UploadImageRequest req;
      req.set_name(name);
      std::string* data = req.mutable_data();
      for (uint64_t off = 0; off < size; off += 1 << 20) {
        data->resize(std::min<uint64_t>(1 << 20, size - off));
        FillRandom(data->data(), data->size(), &seed);
        if (!writer->Write(req)) break;
        req.clear_name();
      }
      writer->WritesDone();
      return writer->Finish();
    });
  }

 private:
  std::unique_ptr<cowblk::v1::VolumeService::Stub> stub_;
};

uint64_t Percentile(const std::vector<uint64_t>& sorted, double p) {
  if (sorted.empty()) return 0;
  return sorted[std::min(static_cast<size_t>(p * static_cast<double>(sorted.size())),
                         sorted.size() - 1)];
}

int Fail(const std::string& what) {
  std::cerr << "grpc_bench: " << what << "\n";
  return 1;
}

int Main(int argc, char** argv) {
  CLI::App app{"grpc_bench: engine_bench's workloads through cowblkd's Session streams"};
  Config cfg;
  std::string base = "image", durability = "ordered", prefix = "bench", volume, workloads,
              json_path;
  bool list = false, prepare = false;
  app.add_option("--server", cfg.server, "cowblkd address")->capture_default_str();
  app.add_option("--size", cfg.size, "Image (or blank volume) size")
      ->transform(CLI::AsSizeValue(false))->capture_default_str();
  app.add_option("--seconds", cfg.seconds, "Run time per workload")->capture_default_str();
  app.add_option("--streams", cfg.streams, "Session streams, each on its own connection")
      ->check(CLI::Range(1, 256))->capture_default_str();
  app.add_option("--depth", cfg.depth, "Requests in flight over all streams (0: the workload's)")
      ->check(CLI::Range(0, 65536))->capture_default_str();
  app.add_flag("--one-connection", cfg.one_connection, "Every stream on one channel");
  app.add_option("--base", base, "Volumes over an uploaded image, or blank")
      ->check(CLI::IsMember({"image", "blank"}))->capture_default_str();
  app.add_option("--durability", durability,
                 "The server's --durability: write workloads of the other mode are skipped")
      ->check(CLI::IsMember({"ordered", "deferred", "unordered"}))->capture_default_str();
  app.add_option("--prefix", prefix, "Names of the bench's image and volumes")->capture_default_str();
  app.add_option("--volume", volume, "Fully allocated volume for COW reads and rewrites "
                 "(created and filled unless it exists and is full; default PREFIX-full)");
  app.add_option("--workloads", workloads, "Comma-separated names or shell patterns (see --list)");
  app.add_option("--json", json_path, "Also write the results as JSON to this file");
  app.add_option("--seed", cfg.seed, "Seed for offsets and data")->capture_default_str();
  app.add_flag("--keep", cfg.keep, "Keep the image and the full volume on the server");
  app.add_flag("--list", list, "Print the workload names and exit");
  app.add_flag("--prepare", prepare,
               "Upload the image and fill the full volume, then exit (so that runs after it "
               "measure the workloads alone)");
  CLI11_PARSE(app, argc, argv);
  cfg.blank = base == "blank";
  cfg.image = prefix + "-image";
  cfg.full = volume.empty() ? prefix + "-full" : volume;
  cfg.empty = prefix + "-empty";
  cfg.first = prefix + "-first";
  Durability mode = Durability::kOrdered;
  ParseDurability(durability, &mode);

  std::vector<Workload> selected;
  const std::vector<std::string> patterns = absl::StrSplit(workloads, ',', absl::SkipEmpty());
  for (const Workload& w : AllWorkloads()) {
    if (w.op == OpType::kWrite && w.durability != mode) continue;
    bool match = patterns.empty();
    for (const std::string& p : patterns) match |= fnmatch(p.c_str(), w.name.c_str(), 0) == 0;
    if (match) selected.push_back(w);
  }
  if (list) {
    for (const Workload& w : selected) std::cout << w.name << "\n";
    return 0;
  }
  if (selected.empty()) return Fail("no workload matches (see --list and --durability)");
  if (cfg.size < (1 << 20) || cfg.size % (1 << 20) != 0) {
    return Fail("--size must be a multiple of 1 MiB");
  }

  std::vector<std::shared_ptr<grpc::Channel>> channels;
  for (int i = 0; i < cfg.streams; ++i) {
    channels.push_back(cfg.one_connection && i > 0 ? channels[0] : MakeChannel(cfg.server, i));
  }
  for (auto& ch : channels) {
    if (!ch->WaitForConnected(std::chrono::system_clock::now() + std::chrono::seconds(10))) {
      return Fail("cannot connect to " + cfg.server);
    }
  }
  Admin admin(MakeChannel(cfg.server, -1));
  auto need = [&](Target t) {
    return std::any_of(selected.begin(), selected.end(),
                       [t](const Workload& w) { return w.target == t; });
  };
  grpc::Status s;
  if (!cfg.blank && !(s = admin.EnsureImage(cfg.image, cfg.size, cfg.seed)).ok()) {
    return Fail("image " + cfg.image + ": " + Describe(s));
  }
  cowblk::v1::Volume v;
  if (prepare || need(Target::kCow) || need(Target::kRewrite)) {
    s = admin.GetVolume(cfg.full, &v);
    if (s.error_code() == grpc::StatusCode::NOT_FOUND) s = admin.CreateVolume(cfg, cfg.full, &v);
    if (!s.ok()) return Fail("volume " + cfg.full + ": " + Describe(s));
    if (v.allocated_bytes() < v.size_bytes()) {
      Workload fill;
      fill.name = "fill";
      fill.op = OpType::kWrite;
      fill.random = false;
      fill.block_size = 1 << 20;
      fill.depth = 8;
      fill.target = Target::kFirst;  // stop at the end
      LoadResult r = RunSessionLoad(channels, cfg.full, v.size_bytes(), fill, fill.depth, 1e9, cfg.seed);
      if (r.errors != 0) return Fail("filling " + cfg.full + ": " + r.first_error);
      if (!(s = admin.GetVolume(cfg.full, &v)).ok() || v.allocated_bytes() < v.size_bytes()) {
        return Fail("volume " + cfg.full + " is not fully allocated after the fill");
      }
    }
  }
  if (prepare) return 0;
  if (need(Target::kBacking)) {
    admin.DeleteVolume(cfg.empty);
    if (!(s = admin.CreateVolume(cfg, cfg.empty, &v)).ok()) {
      return Fail("volume " + cfg.empty + ": " + Describe(s));
    }
  }

  std::cout << absl::StrFormat("# server %s, size %u MiB, %.1f s per workload, %d stream(s)%s, %s\n",
                               cfg.server, cfg.size >> 20, cfg.seconds, cfg.streams,
                               cfg.one_connection ? " on one connection" : "", durability);
  std::cout << absl::StrFormat("%-34s %6s %9s %8s %8s %8s %8s\n", "workload", "depth", "IOPS",
                               "MiB/s", "p50 us", "p99 us", "p999 us");
  json results = json::array();
  int rc = 0;
  for (const Workload& w : selected) {
    std::string name;
    switch (w.target) {
      case Target::kCow:
      case Target::kRewrite: name = cfg.full; break;
      case Target::kBacking: name = cfg.empty; break;
      case Target::kFirst:
        admin.DeleteVolume(cfg.first);
        name = cfg.first;
        if (!(s = admin.CreateVolume(cfg, cfg.first, &v)).ok()) {
          rc = Fail("volume " + cfg.first + ": " + Describe(s));
        }
        break;
    }
    if (rc != 0) break;
    cowblk::v1::Volume before, after;
    if (!(s = admin.GetVolume(name, &before)).ok()) {
      rc = Fail("volume " + name + ": " + Describe(s));
      break;
    }
    const int depth = cfg.depth > 0 ? cfg.depth : w.depth;
    LoadResult r = RunSessionLoad(channels, name, before.size_bytes(), w, depth, cfg.seconds, cfg.seed);
    admin.GetVolume(name, &after);
    if (w.target == Target::kFirst) admin.DeleteVolume(cfg.first);
    if (r.errors != 0) {
      rc = Fail(absl::StrCat(w.name, ": ", r.errors, " failed, first: ", r.first_error));
      break;
    }
    // What the server's allocation says the run touched.
    const uint64_t grew = after.allocated_bytes() - before.allocated_bytes();
    std::string check;
    if (w.target == Target::kFirst && grew != r.ops * w.block_size) {
      check = "not every write allocated new sectors";
    } else if (w.target == Target::kCow && before.allocated_bytes() < before.size_bytes()) {
      check = "the volume is not fully allocated";
    } else if (w.target != Target::kFirst && grew != 0) {
      check = "the allocation changed";
    }
    const double secs = std::max(r.seconds, 1e-9), ops = static_cast<double>(r.ops);
    uint64_t sum = 0;
    for (uint64_t l : r.lat_ns) sum += l;
    json j = {
        {"name", w.name},
        {"op", w.op == OpType::kRead ? "read" : "write"},
        {"pattern", w.random ? "random" : "sequential"},
        {"block_size", w.block_size},
        {"depth", depth},
        {"streams", std::min(cfg.streams, depth)},
        {"one_connection", cfg.one_connection},
        {"target", TargetName(w.target)},
        {"durability", durability},
        {"ops", r.ops},
        {"seconds", r.seconds},
        {"ended_early_device_full", r.exhausted},
        {"iops", ops / secs},
        {"mib_s", ops * static_cast<double>(w.block_size) / secs / (1 << 20)},
        {"lat_us",
         {{"mean", r.ops ? static_cast<double>(sum) / ops / 1e3 : 0.0},
          {"p50", static_cast<double>(Percentile(r.lat_ns, 0.50)) / 1e3},
          {"p99", static_cast<double>(Percentile(r.lat_ns, 0.99)) / 1e3},
          {"p999", static_cast<double>(Percentile(r.lat_ns, 0.999)) / 1e3},
          {"max", r.lat_ns.empty() ? 0.0 : static_cast<double>(r.lat_ns.back()) / 1e3}}},
        {"client_cpu_seconds", r.cpu_seconds},
        {"check", check},
    };
    std::cout << absl::StrFormat("%-34s %6d %9.0f %8.1f %8.1f %8.1f %8.1f%s\n", w.name, depth,
                                 ops / secs, j["mib_s"].get<double>(),
                                 j["lat_us"]["p50"].get<double>(), j["lat_us"]["p99"].get<double>(),
                                 j["lat_us"]["p999"].get<double>(),
                                 r.exhausted ? absl::StrFormat("  (device full after %.1f s)", secs)
                                             : std::string());
    if (!check.empty()) std::cout << "  WARNING: " << check << "\n";
    std::cout.flush();
    results.push_back(std::move(j));
  }
  if (need(Target::kBacking)) admin.DeleteVolume(cfg.empty);
  if (!cfg.keep) {
    if (volume.empty()) admin.DeleteVolume(cfg.full);  // never the caller's volume
    if (!cfg.blank) admin.DeleteImage(cfg.image);
  }
  if (!json_path.empty()) {
    std::ofstream out(json_path);
    out << json{{"server", cfg.server}, {"size", cfg.size}, {"seconds", cfg.seconds},
                {"streams", cfg.streams}, {"base", base}, {"durability", durability},
                {"results", results}}
               .dump(2)
        << "\n";
    if (!out) return Fail("cannot write " + json_path);
  }
  return rc;
}

}  // namespace
}  // namespace cowblk::bench

int main(int argc, char** argv) {
  cowblk::TuneMallocForLargeBuffers();
  return cowblk::bench::Main(argc, argv);
}
