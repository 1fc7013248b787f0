// cowblk map VOLUME, cowblk unmap DEVICE, cowblk showmapped: a volume as a
// kernel block device (/dev/nbdN), as `rbd-nbd map` does. That needs the
// kernel's nbd module; attaching through it (netlink or nbd-client) is not
// built yet, so map and unmap say what is missing and name the path that
// works without it: `cowblk nbd` + nbdfuse + losetup (docs/attach.md).
// showmapped lists the nbd devices that have a server attached (none
// without the module).

#include <sys/stat.h>

#include <cerrno>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <string>

#include "absl/strings/str_cat.h"
#include "client/cli/context.h"

namespace cowblk::cli {
namespace {

constexpr char kFusePath[] =
    "without it, attach through FUSE: `cowblk nbd VOLUME --socket S` + `nbdfuse FILE "
    "--unix S` + `losetup` (docs/attach.md, \"Without the nbd module\")";

bool NbdModuleLoaded() {
  struct stat st;
  return stat("/sys/module/nbd", &st) == 0;
}

// What `modprobe nbd` says (it is tried once, as rbd-nbd does).
std::string TryModprobe() {
  FILE* p = popen("modprobe nbd 2>&1", "r");
  if (p == nullptr) return absl::StrCat("cannot run modprobe: ", std::strerror(errno));
  std::string out;
  char buf[512];
  size_t n;
  while ((n = fread(buf, 1, sizeof buf, p)) > 0) out.append(buf, n);
  const int rc = pclose(p);
  while (!out.empty() && (out.back() == '\n' || out.back() == ' ')) out.pop_back();
  for (char& c : out) {
    if (c == '\n') c = ' ';
  }
  if (rc == 0) return "";
  return out.empty() ? absl::StrCat("modprobe nbd failed (status ", rc, ")") : out;
}

absl::Status NoKernelAttach(const std::string& what) {
  if (!NbdModuleLoaded()) {
    const std::string modprobe = TryModprobe();
    if (!NbdModuleLoaded()) {
      return absl::FailedPreconditionError(absl::StrCat(
          what, " needs the kernel's nbd module, which this kernel has not loaded "
                "(/sys/module/nbd is missing; modprobe nbd: ",
          modprobe.empty() ? "succeeded but no module appeared" : modprobe, "); ", kFusePath));
    }
  }
  return absl::UnimplementedError(absl::StrCat(
      what,
      " through the kernel's nbd module is not built yet: run `cowblk nbd VOLUME --socket S "
      "--daemon` and `nbd-client -unix S /dev/nbdN -name VOLUME` (docs/attach.md)"));
}

// Each /sys/block/nbdN with a server attached (its pid file exists).
nlohmann::json Mapped() {
  nlohmann::json devices = nlohmann::json::array();
  std::error_code ec;
  for (const auto& e : std::filesystem::directory_iterator("/sys/block", ec)) {
    const std::string name = e.path().filename();
    if (name.rfind("nbd", 0) != 0) continue;
    std::ifstream pid(e.path() / "pid");
    long p = 0;
    if (!(pid >> p)) continue;
    devices.push_back({{"device", "/dev/" + name}, {"pid", p}});
  }
  return devices;
}

}  // namespace

void AddMapCommands(CLI::App& app, Context& ctx) {
  auto volume = std::make_shared<std::string>();
  CLI::App* map = app.add_subcommand("map", "Attach a volume as a kernel block device /dev/nbdN");
  map->add_option("volume", *volume, "Volume")->required();
  map->callback([&ctx, volume] {
    ctx.what = "map " + *volume;
    ctx.run = [] { return NoKernelAttach("map"); };
  });
  auto device = std::make_shared<std::string>();
  CLI::App* unmap = app.add_subcommand("unmap", "Detach a device that map attached");
  unmap->add_option("device", *device, "Device (/dev/nbdN)")->required();
  unmap->callback([&ctx, device] {
    ctx.what = "unmap " + *device;
    ctx.run = [] { return NoKernelAttach("unmap"); };
  });
  CLI::App* show = app.add_subcommand("showmapped", "List the nbd devices attached to a server");
  show->callback([&ctx] {
    ctx.what = "showmapped";
    ctx.run = [&ctx]() -> absl::Status {
      const nlohmann::json devices = Mapped();
      std::string text;
      for (const auto& d : devices) {
        text += absl::StrCat(d["device"].get<std::string>(), "  pid ", d["pid"].get<long>(), "\n");
      }
      ctx.Print({{"devices", devices}}, text);
      return absl::OkStatus();
    };
  });
}

}  // namespace cowblk::cli
