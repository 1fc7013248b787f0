// cowblk volume map NAME: which byte ranges of a volume live in its COW file
// and which still read from its image (or are zeros, for a blank volume),
// as `qemu-img map` shows; from GetAllocation, every page.
// cowblk du [VOLUME...]: the size and allocated bytes of volumes and of the
// images under them, with totals (as `rbd du`).

#include <set>
#include <memory>
#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "client/cli/context.h"
#include "client/cli/output.h"

namespace cowblk::cli {
namespace {

struct MapArgs {
  std::string name, offset, length;
};

absl::Status RunMap(Context& ctx, const MapArgs& a) {
  uint64_t offset = 0, length = 0;
  if (!a.offset.empty()) {
    auto o = ParseSize(a.offset, "--offset");
    if (!o.ok()) return o.status();
    offset = *o;
  }
  if (!a.length.empty()) {
    auto l = ParseSize(a.length, "--length");
    if (!l.ok()) return l.status();
    length = *l;
  }
  auto client = ctx.client();
  if (!client.ok()) return client.status();
  auto volume = (*client)->GetVolume(a.name);
  if (!volume.ok()) return volume.status();
  auto ranges = (*client)->GetAllocation(a.name, offset, length);
  if (!ranges.ok()) return ranges.status();
  // Where an unallocated range reads from.
  const char* under = volume->image.empty() ? "zeros" : "image";
  const std::string under_text =
      volume->image.empty() ? under : absl::StrCat(under, " ", volume->image);
  nlohmann::json j = nlohmann::json::array();
  std::vector<std::vector<std::string>> rows = {{"OFFSET", "LENGTH", "SOURCE"}};
  for (const AllocationRange& r : *ranges) {
    const char* source = r.allocated ? "volume" : under;
    j.push_back({{"start", r.offset},
                 {"length", r.length},
                 {"allocated", r.allocated},
                 {"source", source}});
    rows.push_back({absl::StrFormat("0x%x", r.offset), absl::StrFormat("0x%x", r.length),
                    r.allocated ? source : under_text});
  }
  ctx.Print(j, Table(rows));
  return absl::OkStatus();
}

// Every item (`list`), or with `all` false the `names`, one `get` each.
template <typename Info, typename ListFn, typename GetFn>
absl::StatusOr<std::vector<Info>> AllOrNamed(bool all, const std::vector<std::string>& names,
                                             ListFn list, GetFn get) {
  if (all) return list();
  std::vector<Info> out;
  for (const std::string& name : names) {
    absl::StatusOr<Info> info = get(name);
    if (!info.ok()) return info.status();
    out.push_back(*std::move(info));
  }
  return out;
}

absl::Status RunDu(Context& ctx, const std::vector<std::string>& names) {
  auto client = ctx.client();
  if (!client.ok()) return client.status();
  Client& c = **client;
  const bool all = names.empty();
  auto volumes = AllOrNamed<VolumeInfo>(
      all, names, [&] { return c.ListVolumes(); },
      [&](const std::string& n) { return c.GetVolume(n); });
  if (!volumes.ok()) return volumes.status();
  // With names, the images under those volumes.
  std::set<std::string> under;
  for (const VolumeInfo& v : *volumes) {
    if (!v.image.empty()) under.insert(v.image);
  }
  auto images = AllOrNamed<ImageInfo>(
      all, std::vector<std::string>(under.begin(), under.end()),
      [&] { return c.ListImages(); }, [&](const std::string& n) { return c.GetImage(n); });
  if (!images.ok()) return images.status();

  uint64_t total_size = 0, total_allocated = 0;
  nlohmann::json jv = nlohmann::json::array(), ji = nlohmann::json::array();
  std::vector<std::vector<std::string>> rows = {{"NAME", "KIND", "SIZE", "ALLOCATED"}};
  for (const VolumeInfo& v : *volumes) {
    total_size += v.size_bytes;
    total_allocated += v.allocated_bytes;
    jv.push_back({{"name", v.name},
                  {"size_bytes", v.size_bytes},
                  {"allocated_bytes", v.allocated_bytes},
                  {"image", v.image},
                  {"state", VolumeStateName(v.state)}});
    rows.push_back({v.name, "volume", FormatSize(v.size_bytes), FormatSize(v.allocated_bytes)});
  }
  // An image is stored whole: all of its size counts.
  for (const ImageInfo& i : *images) {
    total_size += i.size_bytes;
    total_allocated += i.size_bytes;
    ji.push_back({{"name", i.name},
                  {"size_bytes", i.size_bytes},
                  {"allocated_bytes", i.size_bytes},
                  {"volume_count", i.volume_count}});
    rows.push_back({i.name, "image", FormatSize(i.size_bytes), FormatSize(i.size_bytes)});
  }
  rows.push_back({"total", "", FormatSize(total_size), FormatSize(total_allocated)});
  ctx.Print({{"volumes", jv},
             {"images", ji},
             {"total", {{"size_bytes", total_size}, {"allocated_bytes", total_allocated}}}},
            Table(rows));
  return absl::OkStatus();
}

}  // namespace

void AddAllocationCommands(CLI::App& app, Context& ctx) {
  auto map_args = std::make_shared<MapArgs>();
  CLI::App* map = app.get_subcommand("volume")->add_subcommand(
      "map", "Show which byte ranges live in the volume and which read from its image");
  map->add_option("NAME", map_args->name, "Volume name")->required();
  map->add_option("--offset", map_args->offset, "First byte to describe (a multiple of 512)");
  map->add_option("--length", map_args->length, "Bytes to describe; default: to the end");
  map->callback([&ctx, map_args] {
    ctx.what = "volume map " + map_args->name;
    ctx.run = [&ctx, map_args] { return RunMap(ctx, *map_args); };
  });

  auto names = std::make_shared<std::vector<std::string>>();
  CLI::App* du =
      app.add_subcommand("du", "Size and allocated bytes of volumes and their images, with totals");
  du->add_option("VOLUME", *names, "Only these volumes and the images under them");
  du->callback([&ctx, names] {
    ctx.what = "du";
    ctx.run = [&ctx, names] { return RunDu(ctx, *names); };
  });
}

}  // namespace cowblk::cli
