// cowblk volume create|ls|info|rm|commit|rebase|clone|resize

#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "client/cli/context.h"
#include "client/cli/output.h"

namespace cowblk::cli {
namespace {

std::vector<std::string> Row(const VolumeInfo& v) {
  return {
      v.name, FormatSize(v.size_bytes), FormatSize(v.allocated_bytes),
      v.image.empty() ? "-" : v.image,
      v.state == VolumeState::kError ? absl::StrCat("error: ", v.error) : VolumeStateName(v.state)};
}

const std::vector<std::string> kHeader = {"NAME", "SIZE", "ALLOCATED", "IMAGE", "STATE"};

}  // namespace

void AddVolumeCommands(CLI::App& app, Context& ctx) {
  CLI::App* volume = app.add_subcommand("volume", "Create, list, inspect, delete, commit, rebase, clone, resize volumes");
  volume->require_subcommand(1);

  struct Args {
    std::string name, image, size;
    bool unsafe = false;
  };
  auto args = std::make_shared<Args>();

  CLI::App* create = volume->add_subcommand("create", "Create a volume: blank, or over an image");
  create->add_option("NAME", args->name, "Volume name")->required();
  auto* size = create->add_option("--size", args->size, "Size of a blank volume (64M, 1G, ...)");
  auto* image = create->add_option("--image", args->image, "Image to layer the volume over");
  size->excludes(image);
  create->callback([&ctx, args, size, image] {
    ctx.what = "volume create " + args->name;
    ctx.run = [&ctx, args, size, image]() -> absl::Status {
      if (size->count() == 0 && image->count() == 0) {
        return absl::InvalidArgumentError("give --size SIZE or --image IMAGE");
      }
      auto client = ctx.client();
      if (!client.ok()) return client.status();
      absl::StatusOr<VolumeInfo> v;
      if (image->count() != 0) {
        v = (*client)->CreateVolumeFromImage(args->name, args->image);
      } else {
        auto bytes = ParseSize(args->size, "--size");
        if (!bytes.ok()) return bytes.status();
        v = (*client)->CreateVolume(args->name, *bytes);
      }
      if (!v.ok()) return v.status();
      ctx.Print(ToJson(*v),
                absl::StrCat("created volume ", v->name, " (", FormatSize(v->size_bytes),
                             v->image.empty() ? "" : ", over image " + v->image, ")"));
      return absl::OkStatus();
    };
  });

  CLI::App* ls = volume->add_subcommand("ls", "List volumes");
  ls->alias("list");
  ls->callback([&ctx] {
    ctx.what = "volume ls";
    ctx.run = [&ctx]() -> absl::Status {
      auto client = ctx.client();
      if (!client.ok()) return client.status();
      auto list = (*client)->ListVolumes();
      if (!list.ok()) return list.status();
      nlohmann::json j = nlohmann::json::array();
      std::vector<std::vector<std::string>> rows = {kHeader};
      for (const VolumeInfo& v : *list) {
        j.push_back(ToJson(v));
        rows.push_back(Row(v));
      }
      ctx.Print(j, list->empty() ? "no volumes" : Table(rows));
      return absl::OkStatus();
    };
  });

  CLI::App* info = volume->add_subcommand("info", "Describe a volume");
  info->add_option("NAME", args->name, "Volume name")->required();
  info->callback([&ctx, args] {
    ctx.what = "volume info " + args->name;
    ctx.run = [&ctx, args]() -> absl::Status {
      auto client = ctx.client();
      if (!client.ok()) return client.status();
      auto v = (*client)->GetVolume(args->name);
      if (!v.ok()) return v.status();
      std::string text = absl::StrCat(
          "name:        ", v->name, "\nsize:        ", FormatSize(v->size_bytes), " (",
          v->size_bytes, " bytes)\nallocated:   ", FormatSize(v->allocated_bytes), " (",
          v->allocated_bytes, " bytes)\nimage:       ", v->image.empty() ? "- (blank)" : v->image,
          "\nsector size: ", v->sector_size, "\nstate:       ", VolumeStateName(v->state));
      if (!v->error.empty()) absl::StrAppend(&text, "\nerror:       ", v->error);
      ctx.Print(ToJson(*v), text);
      return absl::OkStatus();
    };
  });

  AddRemoveCommand(volume, ctx, "volume", "Delete volumes and their data",
                   [](Client& client, const std::string& name) { return client.DeleteVolume(name); });

  CLI::App* rebase = volume->add_subcommand(
      "rebase", "Take back a volume whose image's mtime changed, rewriting its header only "
                "(as qemu-img rebase -u)");
  rebase->add_option("NAME", args->name, "Volume name")->required();
  rebase->add_flag("-u,--unsafe", args->unsafe, "Required: you vouch that the image's content is unchanged")
      ->required();
  rebase->add_option("--image", args->image,
                     "Image to record (same size); default: the one the volume is over");
  rebase->callback([&ctx, args] {
    ctx.what = "volume rebase " + args->name;
    ctx.run = [&ctx, args]() -> absl::Status {
      auto client = ctx.client();
      if (!client.ok()) return client.status();
      auto v = (*client)->RebaseVolume(args->name, args->image);
      if (!v.ok()) return v.status();
      ctx.Print(ToJson(*v), absl::StrCat("rebased volume ", v->name, " onto image ",
                                         v->image.empty() ? "- (blank)" : v->image, ": ",
                                         v->state == VolumeState::kError
                                             ? absl::StrCat("error: ", v->error)
                                             : VolumeStateName(v->state)));
      return absl::OkStatus();
    };
  });

  CLI::App* commit = volume->add_subcommand(
      "commit", "Merge a volume (its writes over its image) into a new image");
  commit->add_option("NAME", args->name, "Volume name")->required();
  commit->add_option("IMAGE", args->image, "Name of the new image")->required();
  commit->callback([&ctx, args] {
    ctx.what = "volume commit " + args->name;
    ctx.run = [&ctx, args]() -> absl::Status {
      auto client = ctx.client();
      if (!client.ok()) return client.status();
      auto image = (*client)->CommitVolume(args->name, args->image);
      if (!image.ok()) return image.status();
      ctx.Print(ToJson(*image),
                absl::StrCat("committed volume ", args->name, " to image ", image->name, " (",
                             FormatSize(image->size_bytes), ")"));
      return absl::OkStatus();
    };
  });

  CLI::App* clone = volume->add_subcommand(
      "clone", "Make a new volume that is a copy of a volume at one moment (over the same image)");
  clone->add_option("SOURCE", args->name, "The volume to copy")->required();
  clone->add_option("NAME", args->image, "Name of the new volume")->required();
  clone->callback([&ctx, args] {
    ctx.what = "volume clone " + args->name;
    ctx.run = [&ctx, args]() -> absl::Status {
      auto client = ctx.client();
      if (!client.ok()) return client.status();
      auto v = (*client)->CloneVolume(args->name, args->image);
      if (!v.ok()) return v.status();
      ctx.Print(ToJson(*v), absl::StrCat("cloned volume ", args->name, " to volume ", v->name, " (",
                                         FormatSize(v->size_bytes), ")"));
      return absl::OkStatus();
    };
  });

  CLI::App* resize = volume->add_subcommand("resize", "Grow a blank volume, keeping its data");
  resize->add_option("NAME", args->name, "Volume name")->required();
  resize->add_option("--size", args->size, "The new size (64M, 1G, ...)")->required();
  resize->callback([&ctx, args] {
    ctx.what = "volume resize " + args->name;
    ctx.run = [&ctx, args]() -> absl::Status {
      auto bytes = ParseSize(args->size, "--size");
      if (!bytes.ok()) return bytes.status();
      auto client = ctx.client();
      if (!client.ok()) return client.status();
      auto v = (*client)->ResizeVolume(args->name, *bytes);
      if (!v.ok()) return v.status();
      ctx.Print(ToJson(*v), absl::StrCat("resized volume ", v->name, " to ",
                                         FormatSize(v->size_bytes)));
      return absl::OkStatus();
    };
  });
}

}  // namespace cowblk::cli
