// cowblk snapshot create|ls|info|rm

#include <ctime>
#include <memory>
#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "client/cli/context.h"
#include "client/cli/output.h"

namespace cowblk::cli {
namespace {

// UTC, to the second: "2026-12-07T23:12:30Z".
std::string FormatTime(int64_t unix_nanos) {
  const std::time_t t = static_cast<std::time_t>(unix_nanos / 1000000000);
  std::tm tm{};
  gmtime_r(&t, &tm);
  char buf[32];
  std::strftime(buf, sizeof buf, "%Y-%m-%dT%H:%M:%SZ", &tm);
  return buf;
}

nlohmann::json ToJson(const SnapshotInfo& s) {
  return {{"name", s.name},
          {"source_volume", s.source_volume},
          {"size_bytes", s.size_bytes},
          {"created_unix_nanos", s.created_unix_nanos},
          {"created", FormatTime(s.created_unix_nanos)},
          {"volume_count", s.volume_count}};
}

}  // namespace

void AddSnapshotCommands(CLI::App& app, Context& ctx) {
  CLI::App* snapshot =
      app.add_subcommand("snapshot", "Take, list, inspect, delete snapshots of volumes");
  snapshot->require_subcommand(1);
  struct Args {
    std::string volume, name;
  };
  auto args = std::make_shared<Args>();

  CLI::App* create = snapshot->add_subcommand(
      "create", "Snapshot a volume: an image of it at one moment (volume create --image NAME "
                "makes a volume from it)");
  create->add_option("VOLUME", args->volume, "The volume")->required();
  create->add_option("NAME", args->name, "Name of the new snapshot (and of its image)")->required();
  create->callback([&ctx, args] {
    ctx.what = "snapshot create " + args->name;
    ctx.run = [&ctx, args]() -> absl::Status {
      auto client = ctx.client();
      if (!client.ok()) return client.status();
      auto s = (*client)->CreateSnapshot(args->volume, args->name);
      if (!s.ok()) return s.status();
      ctx.Print(ToJson(*s), absl::StrCat("created snapshot ", s->name, " of volume ",
                                         s->source_volume, " (", FormatSize(s->size_bytes), ")"));
      return absl::OkStatus();
    };
  });

  auto* ls = snapshot->add_subcommand("ls", "List snapshots, all or those of one volume");
  ls->alias("list");
  ls->add_option("VOLUME", args->volume, "Only the snapshots of this volume");
  ls->callback([&ctx, args] {
    ctx.what = "snapshot ls";
    ctx.run = [&ctx, args]() -> absl::Status {
      auto client = ctx.client();
      if (!client.ok()) return client.status();
      auto list = (*client)->ListSnapshots(args->volume);
      if (!list.ok()) return list.status();
      nlohmann::json j = nlohmann::json::array();
      std::vector<std::vector<std::string>> rows = {{"NAME", "VOLUME", "SIZE", "CREATED", "VOLUMES"}};
      for (const SnapshotInfo& s : *list) {
        j.push_back(ToJson(s));
        rows.push_back({s.name, s.source_volume, FormatSize(s.size_bytes),
                        FormatTime(s.created_unix_nanos), std::to_string(s.volume_count)});
      }
      ctx.Print(j, list->empty() ? "no snapshots" : Table(rows));
      return absl::OkStatus();
    };
  });

  CLI::App* info = snapshot->add_subcommand("info", "Describe a snapshot");
  info->add_option("NAME", args->name, "Snapshot name")->required();
  info->callback([&ctx, args] {
    ctx.what = "snapshot info " + args->name;
    ctx.run = [&ctx, args]() -> absl::Status {
      auto client = ctx.client();
      if (!client.ok()) return client.status();
      auto s = (*client)->GetSnapshot(args->name);
      if (!s.ok()) return s.status();
      ctx.Print(ToJson(*s),
                absl::StrCat("name:    ", s->name, "\nvolume:  ", s->source_volume,
                             "\nsize:    ", FormatSize(s->size_bytes), " (", s->size_bytes,
                             " bytes)\ncreated: ", FormatTime(s->created_unix_nanos),
                             "\nvolumes: ", s->volume_count));
      return absl::OkStatus();
    };
  });

  AddRemoveCommand(snapshot, ctx, "snapshot",
                   "Delete snapshots (one volumes still use goes with the last of them)",
                   [](Client& client, const std::string& name) {
                     return client.DeleteSnapshot(name);
                   });
}

}  // namespace cowblk::cli
