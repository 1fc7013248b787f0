// cowblk server info

#include <string>

#include "absl/strings/str_cat.h"
#include "client/cli/context.h"
#include "client/cli/output.h"

namespace cowblk::cli {

void AddServerCommands(CLI::App& app, Context& ctx) {
  CLI::App* server = app.add_subcommand("server", "Describe the server");
  server->require_subcommand(1);
  CLI::App* info = server->add_subcommand(
      "info", "Version, data directory capacity and free space, volumes, NBD export");
  info->callback([&ctx] {
    ctx.what = "server info";
    ctx.run = [&ctx]() -> absl::Status {
      auto client = ctx.client();
      if (!client.ok()) return client.status();
      auto s = (*client)->GetServerInfo();
      if (!s.ok()) return s.status();
      nlohmann::json j = {{"version", s->version},
                          {"commit", s->commit},
                          {"capacity_bytes", s->capacity_bytes},
                          {"free_bytes", s->free_bytes},
                          {"volume_count", s->volume_count},
                          {"provisioned_bytes", s->provisioned_bytes},
                          {"allocated_bytes", s->allocated_bytes},
                          {"max_volume_size_bytes", s->max_volume_size_bytes},
                          {"nbd_address", s->nbd_address},
                          {"nbd_port", s->nbd_port}};
      auto sized = [](uint64_t b) { return absl::StrCat(FormatSize(b), " (", b, " bytes)"); };
      std::string text = absl::StrCat(
          "version:         ", s->version, " (commit ", s->commit, ")",
          "\ncapacity:        ", sized(s->capacity_bytes),
          "\nfree:            ", sized(s->free_bytes),
          "\nvolumes:         ", s->volume_count,
          "\nprovisioned:     ", sized(s->provisioned_bytes),
          "\nallocated:       ", sized(s->allocated_bytes),
          "\nmax volume size: ", sized(s->max_volume_size_bytes),
          "\nnbd export:      ", s->nbd_address.empty() ? "-" : s->nbd_address);
      ctx.Print(j, text);
      return absl::OkStatus();
    };
  });
}

}  // namespace cowblk::cli
