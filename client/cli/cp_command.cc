// cowblk cp SRC DST: local files and volumes (vol:NAME), either direction.

#include <chrono>
#include <memory>
#include <string>

#include "absl/strings/str_cat.h"
#include "client/cli/context.h"
#include "client/cli/copy.h"
#include "client/cli/copy_summary.h"
#include "client/cli/endpoints.h"
#include "client/cli/output.h"
#include "client/cli/progress.h"

namespace cowblk::cli {
namespace {

constexpr char kVolumePrefix[] = "vol:";

// The volume name of "vol:NAME", or "" for a local path.
std::string VolumeName(const std::string& arg) {
  return arg.rfind(kVolumePrefix, 0) == 0 ? arg.substr(sizeof kVolumePrefix - 1) : "";
}

struct CpArgs {
  std::string src, dst;
  bool create = false;
};

absl::Status RunCp(Context& ctx, const CpArgs& a) {
  const std::string src_volume = VolumeName(a.src), dst_volume = VolumeName(a.dst);
  if (a.src == kVolumePrefix || a.dst == kVolumePrefix) {
    return absl::InvalidArgumentError("vol: needs a volume name (vol:NAME)");
  }
  if (!src_volume.empty() && src_volume == dst_volume) {
    return absl::InvalidArgumentError("source and destination are the same volume");
  }
  if (a.src == "-") return absl::InvalidArgumentError("cp reads no stdin: use cowblk write");
  Client* client = nullptr;
  if (!src_volume.empty() || !dst_volume.empty()) {
    auto c = ctx.client();
    if (!c.ok()) return c.status();
    client = *c;
  }

  std::unique_ptr<Volume> in_volume, out_volume;
  std::unique_ptr<Source> source;
  if (!src_volume.empty()) {
    auto v = client->OpenVolume(src_volume);
    if (!v.ok()) return v.status();
    in_volume = *std::move(v);
    source = std::make_unique<VolumeSource>(in_volume.get(), in_volume->size());
  } else {
    auto f = FileSource::Open(a.src);
    if (!f.ok()) return f.status();
    source = *std::move(f);
  }

  std::unique_ptr<Sink> sink;
  if (!dst_volume.empty()) {
    auto v = client->OpenVolume(dst_volume);
    if (!v.ok() && v.status().code() == absl::StatusCode::kNotFound && a.create) {
      const uint64_t size = (source->size() + 511) / 512 * 512;
      auto created = client->CreateVolume(dst_volume, size);
      if (!created.ok()) return created.status();
      v = client->OpenVolume(dst_volume);
    }
    if (!v.ok()) return v.status();
    out_volume = *std::move(v);
    sink = std::make_unique<VolumeSink>(out_volume.get());
  } else {
    auto f = FileSink::Open(a.dst);
    if (!f.ok()) return f.status();
    sink = *std::move(f);
  }

  CatchInterrupts();
  const auto start = std::chrono::steady_clock::now();
  absl::StatusOr<CopyStats> stats;
  {
    Progress progress("cp", source->size(), ctx.progress() && a.dst != "-");
    stats = Copy(*source, *sink, [&](uint64_t done) { progress.Update(done); });
  }
  if (!stats.ok()) return stats.status();
  const CopySummary summary = CopySummary::Since(*stats, start);
  if (a.dst == "-" && !ctx.flags.json) return absl::OkStatus();
  nlohmann::json j = {{"source", a.src}, {"destination", a.dst}};
  summary.AddTo(j);
  ctx.Print(j, ctx.flags.quiet ? ""
                               : absl::StrCat("copied ", summary.Bytes(), " from ", a.src, " to ",
                                              a.dst, " ", summary.Time()));
  return absl::OkStatus();
}

}  // namespace

void AddCopyCommand(CLI::App& app, Context& ctx) {
  auto args = std::make_shared<CpArgs>();
  CLI::App* cp = app.add_subcommand(
      "cp", "Copy between local files and volumes (vol:NAME), keeping holes as holes");
  cp->add_option("SRC", args->src, "A file or block device, or vol:NAME")->required();
  cp->add_option("DST", args->dst, "A file (created or truncated), - for stdout, or vol:NAME")
      ->required();
  cp->add_flag("--create", args->create,
               "Create the destination volume (blank, the source's size) if it does not exist");
  cp->callback([&ctx, args] {
    ctx.what = "cp " + args->src + " " + args->dst;
    ctx.run = [&ctx, args] { return RunCp(ctx, *args); };
  });
}

}  // namespace cowblk::cli
