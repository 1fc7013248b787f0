// cowblk image upload|download|ls|info|rm

#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <chrono>
#include <cstring>
#include <random>
#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "client/cli/context.h"
#include "client/cli/copy.h"
#include "client/cli/copy_summary.h"
#include "client/cli/endpoints.h"
#include "client/cli/output.h"
#include "client/cli/progress.h"

namespace cowblk::cli {
namespace {

struct ImageArgs {
  std::string name, file;
};

// stdin, a pipe or a character device is uploaded as it comes (the server
// still makes holes of its zero blocks); a file is copied as `cowblk cp`
// does: its holes and zero blocks are sent as zero ranges, no bytes.
absl::Status UploadStream(Context& ctx, Client& client, const ImageArgs& a) {
  absl::StatusOr<ImageInfo> image;
  {
    Progress progress("upload", 0, ctx.progress());
    auto update = [&](uint64_t n) { progress.Update(n); };
    if (a.file != "-") {
      image = client.UploadImage(a.name, a.file, update);
    } else {
      image = client.UploadImageFrom(
          a.name,
          [](char* buf, size_t size) -> absl::StatusOr<size_t> {
            while (true) {
              const ssize_t n = read(STDIN_FILENO, buf, size);
              if (n >= 0) return static_cast<size_t>(n);
              if (errno != EINTR)
                return absl::InternalError(absl::StrCat("stdin: ", std::strerror(errno)));
            }
          },
          update);
    }
  }
  if (!image.ok()) return image.status();
  ctx.Print(ToJson(*image),
            absl::StrCat("uploaded image ", image->name, " (", FormatSize(image->size_bytes), ")"));
  return absl::OkStatus();
}

bool IsStream(const std::string& file) {
  struct stat st;
  return file == "-" ||
         (stat(file.c_str(), &st) == 0 && !S_ISREG(st.st_mode) && !S_ISBLK(st.st_mode));
}

absl::Status Upload(Context& ctx, const ImageArgs& a) {
  auto client = ctx.client();
  if (!client.ok()) return client.status();
  if (IsStream(a.file)) return UploadStream(ctx, **client, a);
  auto source = FileSource::Open(a.file);
  if (!source.ok()) return source.status();
  ImageSink sink(*client, a.name);
  CatchInterrupts();
  const auto start = std::chrono::steady_clock::now();
  absl::StatusOr<CopyStats> stats;
  {
    Progress progress("upload", (*source)->size(), ctx.progress());
    stats = Copy(**source, sink, [&](uint64_t done) { progress.Update(done); });
  }
  if (!stats.ok()) return stats.status();
  const CopySummary summary = CopySummary::Since(*stats, start);
  nlohmann::json j = ToJson(sink.image());
  summary.AddTo(j);
  ctx.Print(j, absl::StrCat("uploaded image ", sink.image().name, ": ", summary.Bytes(),
                            " from ", a.file, " ", summary.Time()));
  return absl::OkStatus();
}

// There is no download call: the image is read through a temporary volume
// over it, deleted afterwards (also after a failure or Ctrl-C).
absl::Status Download(Context& ctx, const ImageArgs& a) {
  auto client = ctx.client();
  if (!client.ok()) return client.status();
  auto image = (*client)->GetImage(a.name);
  if (!image.ok()) return image.status();
  std::random_device rd;
  const std::string temp = absl::StrCat("tmp-download-", absl::Hex(rd(), absl::kZeroPad8),
                                        absl::Hex(rd(), absl::kZeroPad8));
  auto created = (*client)->CreateVolumeFromImage(temp, a.name);
  if (!created.ok()) return created.status();
  CatchInterrupts();
  const auto start = std::chrono::steady_clock::now();
  absl::StatusOr<CopyStats> stats;
  {
    auto volume = (*client)->OpenVolume(temp);
    if (!volume.ok()) {
      stats = volume.status();
    } else if (auto sink = FileSink::Open(a.file); !sink.ok()) {
      stats = sink.status();
    } else {
      VolumeSource source(volume->get(), image->size_bytes);
      Progress progress("download", image->size_bytes, ctx.progress() && a.file != "-");
      stats = Copy(source, **sink, [&](uint64_t done) { progress.Update(done); });
    }
  }
  absl::Status deleted = (*client)->DeleteVolume(temp);
  if (!stats.ok()) return stats.status();
  if (!deleted.ok()) {
    return absl::Status(deleted.code(),
                        absl::StrCat("the image was downloaded, but its temporary "
                                     "volume ",
                                     temp, " was not deleted: ", deleted.message()));
  }
  if (a.file == "-" && !ctx.flags.json) return absl::OkStatus();
  // The file's zeros are holes (FileSink): the summary says how many.
  const CopySummary summary = CopySummary::Since(*stats, start);
  nlohmann::json j = {{"image", a.name}, {"file", a.file}};
  summary.AddTo(j);
  ctx.Print(j, absl::StrCat("downloaded image ", a.name, ": ", summary.Bytes(), " to ", a.file,
                            " ", summary.Time()));
  return absl::OkStatus();
}

}  // namespace

void AddImageCommands(CLI::App& app, Context& ctx) {
  CLI::App* image = app.add_subcommand("image", "Upload, download, list, inspect, delete images");
  image->require_subcommand(1);
  auto args = std::make_shared<ImageArgs>();

  CLI::App* upload = image->add_subcommand("upload", "Upload a raw image from a file or stdin");
  upload->add_option("FILE", args->file, "The image file, or - for stdin")->required();
  upload->add_option("NAME", args->name, "Name of the new image")->required();
  upload->callback([&ctx, args] {
    ctx.what = "image upload " + args->name;
    ctx.run = [&ctx, args] { return Upload(ctx, *args); };
  });

  CLI::App* download = image->add_subcommand(
      "download", "Write an image to a file (holes where it is zero) or stdout");
  download->add_option("NAME", args->name, "Image name")->required();
  download->add_option("FILE", args->file, "The file to write, or - for stdout")->required();
  download->callback([&ctx, args] {
    ctx.what = "image download " + args->name;
    ctx.run = [&ctx, args] { return Download(ctx, *args); };
  });

  CLI::App* ls = image->add_subcommand("ls", "List images");
  ls->alias("list");
  ls->callback([&ctx] {
    ctx.what = "image ls";
    ctx.run = [&ctx]() -> absl::Status {
      auto client = ctx.client();
      if (!client.ok()) return client.status();
      auto list = (*client)->ListImages();
      if (!list.ok()) return list.status();
      nlohmann::json j = nlohmann::json::array();
      std::vector<std::vector<std::string>> rows = {{"NAME", "SIZE", "VOLUMES"}};
      for (const ImageInfo& i : *list) {
        j.push_back(ToJson(i));
        rows.push_back({i.name, FormatSize(i.size_bytes), std::to_string(i.volume_count)});
      }
      ctx.Print(j, list->empty() ? "no images" : Table(rows));
      return absl::OkStatus();
    };
  });

  CLI::App* info = image->add_subcommand("info", "Describe an image");
  info->add_option("NAME", args->name, "Image name")->required();
  info->callback([&ctx, args] {
    ctx.what = "image info " + args->name;
    ctx.run = [&ctx, args]() -> absl::Status {
      auto client = ctx.client();
      if (!client.ok()) return client.status();
      auto i = (*client)->GetImage(args->name);
      if (!i.ok()) return i.status();
      ctx.Print(ToJson(*i),
                absl::StrCat("name:    ", i->name, "\nsize:    ", FormatSize(i->size_bytes), " (",
                             i->size_bytes, " bytes)\nvolumes: ", i->volume_count));
      return absl::OkStatus();
    };
  });

  AddRemoveCommand(image, ctx, "image", "Delete images no volume uses",
                   [](Client& client, const std::string& name) { return client.DeleteImage(name); });
}

}  // namespace cowblk::cli
