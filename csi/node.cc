#include "csi/node.h"

#include <fcntl.h>
#include <poll.h>
#include <spawn.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <sys/statvfs.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <algorithm>
#include <chrono>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <thread>
#include <utility>

#include <nlohmann/json.hpp>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "common/file_io.h"
#include "common/log.h"
#include "csi/placement.h"

extern char** environ;

namespace cowblk::csi {
namespace {

namespace fs = std::filesystem;
using Clock = std::chrono::steady_clock;

grpc::Status ToGrpc(const absl::Status& s) {
  if (s.ok()) return grpc::Status::OK;
  return grpc::Status(static_cast<grpc::StatusCode>(s.code()), std::string(s.message()));
}

// ---- processes ---------------------------------------------------------

// Starts argv with stdin from /dev/null and stdout+stderr to `out_fd` (or
// /dev/null when -1), in a new session when `detach` (so it outlives this
// process and its signals). Returns the pid, or the error.
absl::StatusOr<pid_t> Start(const std::vector<std::string>& argv, int out_fd, bool detach) {
  std::vector<char*> cargv;
  for (const std::string& a : argv) cargv.push_back(const_cast<char*>(a.c_str()));
  cargv.push_back(nullptr);
  posix_spawn_file_actions_t actions;
  posix_spawn_file_actions_init(&actions);
  posix_spawn_file_actions_addopen(&actions, STDIN_FILENO, "/dev/null", O_RDONLY, 0);
  if (out_fd >= 0) {
    posix_spawn_file_actions_adddup2(&actions, out_fd, STDOUT_FILENO);
    posix_spawn_file_actions_adddup2(&actions, out_fd, STDERR_FILENO);
  } else {
    posix_spawn_file_actions_addopen(&actions, STDOUT_FILENO, "/dev/null", O_WRONLY, 0);
    posix_spawn_file_actions_addopen(&actions, STDERR_FILENO, "/dev/null", O_WRONLY, 0);
  }
  posix_spawnattr_t attr;
  posix_spawnattr_init(&attr);
  // The plugin blocks SIGINT and SIGTERM for its sigwait: children start
  // with them unblocked and at their defaults.
  sigset_t none, defaults;
  sigemptyset(&none);
  sigemptyset(&defaults);
  sigaddset(&defaults, SIGINT);
  sigaddset(&defaults, SIGTERM);
  sigaddset(&defaults, SIGPIPE);
  posix_spawnattr_setsigmask(&attr, &none);
  posix_spawnattr_setsigdefault(&attr, &defaults);
  short flags = POSIX_SPAWN_SETSIGMASK | POSIX_SPAWN_SETSIGDEF;
  if (detach) flags |= POSIX_SPAWN_SETSID;
  posix_spawnattr_setflags(&attr, flags);
  pid_t pid = -1;
  const int rc = posix_spawnp(&pid, cargv[0], &actions, &attr, cargv.data(), environ);
  posix_spawnattr_destroy(&attr);
  posix_spawn_file_actions_destroy(&actions);
  if (rc != 0) return absl::InternalError(absl::StrCat("cannot run ", argv[0], ": ", strerror(rc)));
  return pid;
}

// Whether `pid` is still a live process. A zombie is gone: a child of ours
// is reaped here; another (a gateway daemon, whose parent exited, waiting
// for its new parent to reap it) is read as state Z in /proc.
bool Alive(pid_t pid) {
  if (pid <= 0) return false;
  int status;
  if (waitpid(pid, &status, WNOHANG) == pid) return false;
  if (kill(pid, 0) != 0 && errno != EPERM) return false;
  std::ifstream in("/proc/" + std::to_string(pid) + "/stat");
  std::string line;
  if (!std::getline(in, line)) return false;
  const size_t paren = line.rfind(')');  // the name may hold spaces and ')'
  return paren == std::string::npos || paren + 2 >= line.size() || line[paren + 2] != 'Z';
}

// Waits until `pid` has exited, at most `timeout`; reaps it when it is our
// child. False on timeout.
bool WaitGone(pid_t pid, std::chrono::milliseconds timeout) {
  const int pidfd = static_cast<int>(syscall(SYS_pidfd_open, pid, 0));
  if (pidfd < 0) return !Alive(pid);  // ESRCH: gone already
  struct pollfd p = {pidfd, POLLIN, 0};
  const int n = poll(&p, 1, static_cast<int>(timeout.count()));
  close(pidfd);
  int status;
  waitpid(pid, &status, WNOHANG);
  return n == 1;
}

struct RunResult {
  int exit_code = -1;  // 128 + signal when a signal ended it
  std::string output;  // stdout and stderr, at most 64 KiB
};

// Runs argv to its end (at most `timeout`, then SIGKILL) and returns its
// exit code and output. The end is the process's exit, not the end of its
// output: a daemon it forks (`cowblk nbd --daemon`) may hold the pipe.
absl::StatusOr<RunResult> Run(const std::vector<std::string>& argv,
                              std::chrono::seconds timeout) {
  int fds[2];
  if (pipe2(fds, O_CLOEXEC | O_NONBLOCK) != 0) {
    return absl::InternalError("pipe: " + std::string(strerror(errno)));
  }
  auto pid = Start(argv, fds[1], /*detach=*/false);
  close(fds[1]);
  if (!pid.ok()) {
    close(fds[0]);
    return pid.status();
  }
  const int pidfd = static_cast<int>(syscall(SYS_pidfd_open, *pid, 0));
  RunResult r;
  const auto deadline = Clock::now() + timeout;
  bool timed_out = false, exited = pidfd < 0, pipe_open = true;
  char buf[4096];
  auto drain = [&] {
    for (;;) {
      const ssize_t n = read(fds[0], buf, sizeof buf);
      if (n > 0) {
        if (r.output.size() < 65536) r.output.append(buf, static_cast<size_t>(n));
        continue;
      }
      if (n == 0) pipe_open = false;
      return;
    }
  };
  while (!exited && pipe_open) {
    const auto left = std::chrono::duration_cast<std::chrono::milliseconds>(deadline - Clock::now());
    if (left.count() <= 0) {
      timed_out = true;
      break;
    }
    struct pollfd p[2] = {{fds[0], POLLIN, 0}, {pidfd, POLLIN, 0}};
    if (poll(p, 2, static_cast<int>(left.count())) <= 0) continue;
    if (p[0].revents != 0) drain();
    if (p[1].revents != 0) exited = true;
  }
  drain();
  close(fds[0]);
  if (timed_out) kill(*pid, SIGKILL);
  int status = 0;
  while (waitpid(*pid, &status, 0) < 0 && errno == EINTR) {
  }
  if (pidfd >= 0) close(pidfd);
  if (timed_out) {
    return absl::DeadlineExceededError(
        absl::StrCat(argv[0], " did not finish within ", timeout.count(), " s"));
  }
  r.exit_code = WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
  while (!r.output.empty() && (r.output.back() == '\n' || r.output.back() == ' ')) {
    r.output.pop_back();
  }
  return r;
}

// Runs argv and fails with its output unless it exits 0.
absl::Status RunOk(const std::vector<std::string>& argv, std::chrono::seconds timeout,
                   std::string* output = nullptr) {
  auto r = Run(argv, timeout);
  if (!r.ok()) return r.status();
  if (output != nullptr) *output = r->output;
  if (r->exit_code != 0) {
    return absl::InternalError(absl::StrCat(absl::StrJoin(argv, " "), " exited ", r->exit_code,
                                            r->output.empty() ? "" : ": ", r->output));
  }
  return absl::OkStatus();
}

// ---- mounts ------------------------------------------------------------

// /proc/self/mountinfo escapes space, tab, newline and backslash as \ooo.
std::string Unescape(const std::string& s) {
  std::string out;
  for (size_t i = 0; i < s.size(); ++i) {
    if (s[i] == '\\' && i + 3 < s.size()) {
      out += static_cast<char>(((s[i + 1] - '0') << 6) | ((s[i + 2] - '0') << 3) | (s[i + 3] - '0'));
      i += 3;
    } else {
      out += s[i];
    }
  }
  return out;
}

// Whether something is mounted at `path` (exactly that path).
bool IsMountPoint(const std::string& path) {
  std::error_code ec;
  const fs::path want = fs::weakly_canonical(path, ec);
  std::ifstream in("/proc/self/mountinfo");
  std::string line;
  while (std::getline(in, line)) {
    std::istringstream fields(line);
    std::string id, parent, dev, root, mount_point;
    fields >> id >> parent >> dev >> root >> mount_point;
    if (Unescape(mount_point) == want.string()) return true;
  }
  return false;
}

// Unmounts `path` (every mount stacked there). A mount the kernel still
// holds for a moment (EBUSY: a loop device being released, udev probing
// it) is retried for up to 10 s: the kernel offers no event to wait for.
absl::Status Unmount(const std::string& path) {
  const auto deadline = Clock::now() + std::chrono::seconds(10);
  for (auto pause = std::chrono::milliseconds(5); IsMountPoint(path);) {
    if (umount2(path.c_str(), 0) == 0 || errno == EINVAL) continue;
    if (errno != EBUSY || Clock::now() > deadline) {
      return absl::InternalError(absl::StrCat("umount ", path, ": ", strerror(errno)));
    }
    std::this_thread::sleep_for(pause);
    pause = std::min(pause * 2, std::chrono::milliseconds(200));
  }
  return absl::OkStatus();
}

// ---- state ---------------------------------------------------------------

// What a staged volume is, in SERVER_VOLUME/state.json.
struct Staged {
  std::string volume_id;
  std::string staging_path;
  std::string loop;     // /dev/loopN
  bool block = false;   // volumeMode: Block (no filesystem)
  std::string fs_type;  // mount: ext4 or xfs
  pid_t fuse_pid = 0;
};

void to_json(nlohmann::json& j, const Staged& s) {
  j = {{"volume_id", s.volume_id}, {"staging_path", s.staging_path}, {"loop", s.loop},
       {"block", s.block},         {"fs_type", s.fs_type},           {"fuse_pid", s.fuse_pid}};
}

std::string DirOf(const NodeOptions& o, const ParsedId& id) {
  return o.state_dir + "/" + id.server + "_" + id.volume;
}

std::optional<Staged> ReadState(const std::string& dir) {
  std::ifstream in(dir + "/state.json");
  if (!in) return std::nullopt;
  try {
    nlohmann::json j = nlohmann::json::parse(in);
    Staged s;
    s.volume_id = j.at("volume_id").get<std::string>();
    s.staging_path = j.at("staging_path").get<std::string>();
    s.loop = j.at("loop").get<std::string>();
    s.block = j.at("block").get<bool>();
    s.fs_type = j.at("fs_type").get<std::string>();
    s.fuse_pid = j.at("fuse_pid").get<pid_t>();
    return s;
  } catch (const std::exception&) {
    return std::nullopt;
  }
}

absl::Status WriteState(const std::string& dir, const Staged& s) {
  const std::string tmp = dir + "/.state.json.tmp";
  {
    std::ofstream out(tmp, std::ios::trunc);
    out << nlohmann::json(s).dump(2) << "\n";
    out.flush();
    if (!out) return absl::InternalError("cannot write " + tmp);
  }
  if (rename(tmp.c_str(), (dir + "/state.json").c_str()) != 0) {
    return absl::InternalError("rename " + tmp + ": " + strerror(errno));
  }
  return absl::OkStatus();
}

pid_t ReadPid(const std::string& file) {
  std::ifstream in(file);
  long pid = 0;
  if (!(in >> pid) || pid <= 0) return 0;
  return static_cast<pid_t>(pid);
}

// The file a loop device reads, "" when it has none.
std::string LoopBackingFile(const std::string& loop) {
  const std::string name = fs::path(loop).filename();
  std::ifstream in("/sys/block/" + name + "/loop/backing_file");
  std::string file;
  std::getline(in, file);
  return file;
}

// ---- the chain, step by step --------------------------------------------

// Stops the gateway whose pid file is in `dir`: SIGTERM (it answers what is
// in flight, flushes and exits), SIGKILL if it does not exit in time.
absl::Status StopGateway(const std::string& dir, std::chrono::seconds timeout) {
  const pid_t pid = ReadPid(dir + "/gateway.pid");
  if (pid == 0 || !Alive(pid)) return absl::OkStatus();
  kill(pid, SIGTERM);
  if (WaitGone(pid, timeout)) return absl::OkStatus();
  kill(pid, SIGKILL);
  WaitGone(pid, std::chrono::seconds(5));
  return absl::InternalError(absl::StrCat("the gateway (pid ", pid, ") did not stop within ",
                                          timeout.count(), " s after SIGTERM; killed"));
}

// Takes down everything staged in `dir` that is still up, in reverse order,
// and removes `dir`. Errors name the first step that failed; the steps
// after it still run where they are safe.
absl::Status Detach(const std::string& dir, const Staged* s, std::chrono::seconds timeout) {
  absl::Status first;
  auto note = [&first](absl::Status st) {
    if (first.ok() && !st.ok()) first = std::move(st);
  };
  const std::string fuse_dir = dir + "/fuse";
  const std::string disk = fuse_dir + "/disk";
  if (s != nullptr && !s->block && !s->staging_path.empty()) note(Unmount(s->staging_path));
  if (s != nullptr && !s->loop.empty() && LoopBackingFile(s->loop) == disk) {
    note(RunOk({"losetup", "-d", s->loop}, timeout));
    // losetup -d returns before the kernel lets go of the file while
    // anything (udev's probe) still has the device open; until then the
    // FUSE mount under it is busy. Unmount below retries for that.
  }
  if (!first.ok()) return first;  // the filesystem may still be in use: keep the rest
  note(Unmount(fuse_dir));
  if (!first.ok()) return first;  // nbdfuse serves on: no use waiting for it
  if (s != nullptr && s->fuse_pid > 0 && !WaitGone(s->fuse_pid, timeout)) {
    note(absl::InternalError(absl::StrCat("nbdfuse (pid ", s->fuse_pid, ") did not exit")));
  }
  note(StopGateway(dir, timeout));
  if (first.ok()) {
    std::error_code ec;
    fs::remove_all(dir, ec);
    if (ec) note(absl::InternalError("cannot remove " + dir + ": " + ec.message()));
  }
  return first;
}

// nbdfuse with its pid written to a FIFO once the FUSE file is ready:
// opening the FIFO for reading and waiting for that pid is the readiness
// signal (no polling of the mount).
absl::StatusOr<pid_t> StartFuse(const NodeOptions& o, const std::string& dir) {
  const std::string fifo = dir + "/fuse.ready";
  unlink(fifo.c_str());
  if (mkfifo(fifo.c_str(), 0600) != 0) {
    return absl::InternalError("mkfifo " + fifo + ": " + strerror(errno));
  }
  const int log = open((dir + "/nbdfuse.log").c_str(), O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0600);
  auto pid = Start({o.nbdfuse_bin, "-P", fifo, dir + "/fuse/disk", "--unix", dir + "/gateway.sock"},
                   log, /*detach=*/true);
  if (log >= 0) close(log);
  if (!pid.ok()) return pid.status();
  const int rfd = open(fifo.c_str(), O_RDONLY | O_NONBLOCK | O_CLOEXEC);
  std::string got;
  const auto deadline = Clock::now() + std::chrono::seconds(o.step_timeout_seconds);
  while (rfd >= 0 && Clock::now() < deadline) {
    // Wake for the pid, or within a second to see whether nbdfuse died.
    struct pollfd p = {rfd, POLLIN, 0};
    if (poll(&p, 1, 1000) > 0) {
      char buf[32];
      const ssize_t n = read(rfd, buf, sizeof buf);
      if (n > 0) got.append(buf, static_cast<size_t>(n));
      if (n == 0 || got.find('\n') != std::string::npos) break;
    }
    if (!Alive(*pid)) break;
  }
  if (rfd >= 0) close(rfd);
  unlink(fifo.c_str());
  if (got.empty()) {
    if (Alive(*pid)) {
      kill(*pid, SIGTERM);
      WaitGone(*pid, std::chrono::seconds(5));
    }
    std::ifstream in(dir + "/nbdfuse.log");
    std::string log_text((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
    return absl::InternalError("nbdfuse did not start: " + log_text);
  }
  return *pid;
}

// The filesystem on `dev` ("" for none), by blkid's probe of its contents.
absl::StatusOr<std::string> FsTypeOf(const std::string& dev) {
  auto r = Run({"blkid", "-p", "-s", "TYPE", "-o", "value", dev}, std::chrono::seconds(60));
  if (!r.ok()) return r.status();
  if (r->exit_code == 2) return std::string();  // nothing found
  if (r->exit_code != 0) return absl::InternalError("blkid " + dev + ": " + r->output);
  return r->output;
}

// The bytes an ext4 filesystem on `dev` spans (dumpe2fs's block count
// times block size), 0 when that cannot be read.
uint64_t Ext4Bytes(const std::string& dev) {
  auto r = Run({"dumpe2fs", "-h", dev}, std::chrono::seconds(60));
  if (!r.ok() || r->exit_code != 0) return 0;
  uint64_t blocks = 0, block_size = 0;
  std::istringstream in(r->output);
  std::string line;
  while (std::getline(in, line)) {
    auto value = [&line](const char* key) -> uint64_t {
      if (line.rfind(key, 0) != 0) return 0;
      return std::strtoull(line.c_str() + line.find(':') + 1, nullptr, 10);
    };
    if (uint64_t v = value("Block count:")) blocks = v;
    if (uint64_t v = value("Block size:")) block_size = v;
  }
  return blocks * block_size;
}

// The size of the block device (or file) at `path`: common/file_io's FileSize.
absl::StatusOr<uint64_t> DeviceBytes(const std::string& path) {
  const int fd = open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) return absl::InternalError("open " + path + ": " + strerror(errno));
  absl::StatusOr<uint64_t> size = FileSize(fd, path);
  close(fd);
  return size;
}

// An ext4 filesystem smaller than its device (the volume grew while it was
// not staged: offline expansion) is grown before it is mounted: e2fsck -f,
// then resize2fs. Offline, because an online resize needs CAP_SYS_RESOURCE,
// which containers (and this project's test machine) may lack.
absl::Status GrowExt4Offline(const std::string& dev, bool* grown) {
  *grown = false;
  const uint64_t fs_bytes = Ext4Bytes(dev), dev_bytes = DeviceBytes(dev).value_or(0);
  if (fs_bytes == 0 || dev_bytes == 0 || fs_bytes + 4096 > dev_bytes) return absl::OkStatus();
  auto fsck = Run({"e2fsck", "-f", "-p", dev}, std::chrono::seconds(600));
  if (!fsck.ok()) return fsck.status();
  if (fsck->exit_code > 1) {  // 1: errors corrected
    return absl::InternalError(absl::StrCat("e2fsck -f -p ", dev, " exited ", fsck->exit_code,
                                            " before growing the filesystem: ", fsck->output));
  }
  if (absl::Status s = RunOk({"resize2fs", dev}, std::chrono::seconds(600)); !s.ok()) return s;
  *grown = true;
  return absl::OkStatus();
}

// mount(8) options from the capability's mount_flags and readonly.
std::string MountOptions(const ::csi::v1::VolumeCapability& cap, bool readonly) {
  std::vector<std::string> opts;
  for (const std::string& f : cap.mount().mount_flags()) opts.push_back(f);
  if (readonly) opts.push_back("ro");
  return absl::StrJoin(opts, ",");
}

bool ValidFlag(const std::string& f) {
  if (f.empty() || f.size() > 256) return false;
  for (char c : f) {
    if (!(isalnum(static_cast<unsigned char>(c)) || c == '=' || c == '_' || c == '-' || c == '.' ||
          c == ':' || c == '/')) {
      return false;
    }
  }
  return true;
}

// The gateway's connection flags: the plugin's, with the request's secrets
// written (0600) under `dir`/secrets and used in their place. Error texts
// name keys, never values.
absl::StatusOr<std::vector<std::string>> GatewayFlags(
    const cli::ConnectionFlags& g, const google::protobuf::Map<std::string, std::string>& secrets,
    const std::string& dir) {
  std::string ca = g.tls_ca, cert = g.tls_cert, key = g.tls_key, token_file = g.token_file;
  if (!secrets.empty()) {
    const std::string sdir = dir + "/secrets";
    if (mkdir(sdir.c_str(), 0700) != 0 && errno != EEXIST) {
      return absl::InternalError("cannot create " + sdir + ": " + strerror(errno));
    }
    for (const auto& [name, value] : secrets) {
      std::string* use = name == "ca.crt"    ? &ca
                         : name == "tls.crt" ? &cert
                         : name == "tls.key" ? &key
                         : name == "token"   ? &token_file
                                             : nullptr;
      if (use == nullptr) {
        return absl::InvalidArgumentError("unknown secret key \"" + name +
                                          "\" (known: ca.crt, tls.crt, tls.key, token)");
      }
      const std::string file = sdir + "/" + name;
      const int fd = open(file.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC | O_NOFOLLOW, 0600);
      if (fd < 0) return absl::InternalError("cannot write " + file + ": " + strerror(errno));
      const std::string text = name == "token" ? value + "\n" : value;
      const absl::Status written = PWriteFull(fd, text.data(), text.size(), 0, file);
      close(fd);
      if (!written.ok()) return written;
      *use = file;
    }
  }
  std::vector<std::string> flags;
  if (g.tls) flags.push_back("--tls");
  for (const auto& [flag, value] : {std::pair<const char*, const std::string&>{"--tls-ca", ca},
                                    {"--tls-cert", cert},
                                    {"--tls-key", key},
                                    {"--tls-server-name", g.tls_server_name},
                                    {"--token-file", token_file}}) {
    if (!value.empty()) flags.insert(flags.end(), {flag, value});
  }
  flags.insert(flags.end(), {"--timeout", std::to_string(g.timeout_seconds)});
  return flags;
}

absl::Status CheckCapability(const ::csi::v1::NodeStageVolumeRequest& req, bool* block,
                             std::string* fs_type) {
  if (!req.has_volume_capability()) return absl::InvalidArgumentError("volume_capability is missing");
  const auto& cap = req.volume_capability();
  using Mode = ::csi::v1::VolumeCapability::AccessMode;
  switch (cap.access_mode().mode()) {
    case Mode::SINGLE_NODE_WRITER:
    case Mode::SINGLE_NODE_READER_ONLY:
    case Mode::SINGLE_NODE_SINGLE_WRITER:
      break;
    default:
      return absl::InvalidArgumentError(
          "access mode " + Mode::Mode_Name(cap.access_mode().mode()) +
          " is not supported: a cowblk volume is attached to one node at a time");
  }
  if (cap.has_block()) {
    *block = true;
    return absl::OkStatus();
  }
  if (!cap.has_mount()) return absl::InvalidArgumentError("volume_capability has neither block nor mount");
  *block = false;
  *fs_type = cap.mount().fs_type().empty() ? "ext4" : cap.mount().fs_type();
  if (*fs_type != "ext4" && *fs_type != "xfs") {
    return absl::InvalidArgumentError("fs_type " + *fs_type + " is not supported (ext4, xfs)");
  }
  for (const std::string& f : cap.mount().mount_flags()) {
    if (!ValidFlag(f)) return absl::InvalidArgumentError("bad mount flag \"" + f + "\"");
  }
  return absl::OkStatus();
}

}  // namespace

class NodeService::Busy {
 public:
  Busy(NodeService* node, std::string id) : node_(node), id_(std::move(id)) {
    std::lock_guard<std::mutex> lock(node_->mu_);
    taken_ = node_->busy_.insert(id_).second;
  }
  ~Busy() {
    if (!taken_) return;
    std::lock_guard<std::mutex> lock(node_->mu_);
    node_->busy_.erase(id_);
  }
  bool taken() const { return taken_; }
  // The answer to a call that found the volume busy (the kubelet retries).
  grpc::Status Refusal() const {
    return grpc::Status(grpc::StatusCode::ABORTED, "an operation on " + id_ + " is in progress");
  }

 private:
  NodeService* const node_;
  const std::string id_;
  bool taken_ = false;
};

NodeService::NodeService(Driver* driver, NodeOptions options)
    : driver_(driver), options_(std::move(options)) {}

absl::Status NodeService::Stage(const ::csi::v1::NodeStageVolumeRequest& req) {
  if (req.volume_id().empty()) return absl::InvalidArgumentError("volume_id is missing");
  if (req.staging_target_path().empty() || req.staging_target_path()[0] != '/') {
    return absl::InvalidArgumentError("staging_target_path must be an absolute path");
  }
  bool block = false;
  std::string fs_type;
  if (absl::Status s = CheckCapability(req, &block, &fs_type); !s.ok()) return s;
  auto id = ParseVolumeId(req.volume_id());
  if (!id.ok()) return id.status();
  const ServerConfig* server = driver_->config(id->server);
  if (server == nullptr) {
    return absl::NotFoundError("volume " + req.volume_id() + ": no server named " + id->server);
  }
  const std::string dir = DirOf(options_, *id);
  const auto timeout = std::chrono::seconds(options_.step_timeout_seconds);

  // Staged already: the same staging path and kind is success; another one
  // is a conflict.
  if (std::optional<Staged> old = ReadState(dir)) {
    if (old->staging_path != req.staging_target_path() || old->block != block) {
      return absl::AlreadyExistsError("volume " + req.volume_id() + " is staged at " +
                                      old->staging_path + " with another capability");
    }
    const bool fs_up = block || IsMountPoint(old->staging_path);
    if (fs_up && LoopBackingFile(old->loop) == dir + "/fuse/disk" && Alive(old->fuse_pid)) {
      return absl::OkStatus();
    }
    // Half there (a node restart, a crash mid-stage): take it down, stage anew.
    if (absl::Status s = Detach(dir, &*old, timeout); !s.ok()) return s;
  } else if (fs::exists(dir)) {
    // A stage that failed before it wrote its state: take down what it left.
    Staged partial;
    partial.fuse_pid = 0;
    if (absl::Status s = Detach(dir, &partial, timeout); !s.ok()) return s;
  }

  std::error_code ec;
  // The state directory holds credentials (secrets/): only root reads it.
  if (mkdir(options_.state_dir.c_str(), 0700) != 0 && errno != EEXIST) {
    return absl::InternalError("cannot create " + options_.state_dir + ": " + strerror(errno));
  }
  if (mkdir(dir.c_str(), 0700) != 0 && errno != EEXIST) {
    return absl::InternalError("cannot create " + dir + ": " + strerror(errno));
  }
  fs::create_directories(dir + "/fuse", ec);
  if (ec) return absl::InternalError("cannot create " + dir + ": " + ec.message());
  Staged st;
  st.volume_id = req.volume_id();
  st.staging_path = req.staging_target_path();
  st.block = block;
  st.fs_type = fs_type;
  auto fail = [&](absl::Status s) {
    Detach(dir, &st, timeout).IgnoreError();
    Log(LogLevel::kWarning, "stage_failed", {{"volume_id", req.volume_id()}, {"error", std::string(s.message())}});
    return s;
  };

  // 1. The gateway: `cowblk nbd` in front of the volume, returning once it
  //    serves (or with the server's error and the CLI's exit code).
  auto creds = GatewayFlags(options_.gateway, req.secrets(), dir);
  if (!creds.ok()) return fail(creds.status());
  std::vector<std::string> gw = {options_.cowblk_bin, "--server", server->address};
  gw.insert(gw.end(), creds->begin(), creds->end());
  gw.insert(gw.end(), {"nbd", id->volume, "--socket", dir + "/gateway.sock", "--daemon",
                       "--pid-file", dir + "/gateway.pid"});
  auto r = Run(gw, timeout);
  if (!r.ok()) return fail(r.status());
  if (r->exit_code != 0) {
    // The CLI's exit codes (docs/cli.md): 4 no such volume, 3 unreachable,
    // 6 not allowed.
    const std::string why = "the gateway for " + req.volume_id() + " did not start: " + r->output;
    switch (r->exit_code) {
      case 4: return fail(absl::NotFoundError(why));
      case 3: return fail(absl::UnavailableError(why));
      case 6: return fail(absl::PermissionDeniedError(why));
      default: return fail(absl::InternalError(why));
    }
  }
  // 2. nbdfuse: the volume as the file fuse/disk.
  auto fuse = StartFuse(options_, dir);
  if (!fuse.ok()) return fail(fuse.status());
  st.fuse_pid = *fuse;
  // 3. A loop device over it.
  std::string loop;
  if (absl::Status s = RunOk({"losetup", "-f", "--show", dir + "/fuse/disk"}, timeout, &loop); !s.ok()) {
    return fail(s);
  }
  st.loop = loop;
  // Written before the filesystem steps, so a failure or a crash from here
  // on leaves a state a later stage or unstage takes apart.
  if (absl::Status s = WriteState(dir, st); !s.ok()) return fail(s);
  if (!block) {
    // 4. A filesystem on first use; an existing one is mounted as it is,
    //    never formatted again.
    auto found = FsTypeOf(loop);
    if (!found.ok()) return fail(found.status());
    if (found->empty()) {
      std::vector<std::string> mkfs = {"mkfs." + fs_type, "-q"};
      if (fs_type == "ext4") mkfs.insert(mkfs.end(), {"-E", "nodiscard"});
      if (fs_type == "xfs") mkfs.push_back("-K");  // no discard of the whole device
      mkfs.push_back(loop);
      if (absl::Status s = RunOk(mkfs, std::chrono::seconds(600)); !s.ok()) return fail(s);
      Log(LogLevel::kInfo, "formatted", {{"volume_id", req.volume_id()}, {"fs_type", fs_type}});
    } else if (*found != fs_type) {
      Log(LogLevel::kWarning, "fs_type_differs",
          {{"volume_id", req.volume_id()}, {"requested", fs_type}, {"found", *found}});
      st.fs_type = *found;
      if (absl::Status s = WriteState(dir, st); !s.ok()) return fail(s);
    }
    if (st.fs_type == "ext4") {
      bool grown = false;
      if (absl::Status s = GrowExt4Offline(loop, &grown); !s.ok()) return fail(s);
      if (grown) Log(LogLevel::kInfo, "expanded", {{"volume_id", req.volume_id()}, {"when", "stage"}});
    }
    fs::create_directories(st.staging_path, ec);
    if (ec) return fail(absl::InternalError("cannot create " + st.staging_path + ": " + ec.message()));
    std::vector<std::string> mount = {"mount", "-t", st.fs_type};
    const std::string opts = MountOptions(req.volume_capability(), false);
    if (!opts.empty()) mount.insert(mount.end(), {"-o", opts});
    mount.insert(mount.end(), {loop, st.staging_path});
    if (absl::Status s = RunOk(mount, timeout); !s.ok()) return fail(s);
  }
  Log(LogLevel::kInfo, "staged",
      {{"volume_id", req.volume_id()}, {"staging_path", st.staging_path}, {"loop", loop},
       {"mode", block ? "block" : st.fs_type}});
  return absl::OkStatus();
}

absl::Status NodeService::Unstage(const std::string& volume_id, const std::string& staging_path) {
  if (volume_id.empty()) return absl::InvalidArgumentError("volume_id is missing");
  if (staging_path.empty()) return absl::InvalidArgumentError("staging_target_path is missing");
  auto id = ParseVolumeId(volume_id);
  if (!id.ok()) return absl::OkStatus();  // never staged by this plugin
  const std::string dir = DirOf(options_, *id);
  std::optional<Staged> st = ReadState(dir);
  if (!st.has_value()) {
    if (!fs::exists(dir)) return absl::OkStatus();
    Staged partial;
    return Detach(dir, &partial, std::chrono::seconds(options_.step_timeout_seconds));
  }
  if (st->staging_path != staging_path) {
    return absl::InvalidArgumentError("volume " + volume_id + " is staged at " + st->staging_path +
                                      ", not " + staging_path);
  }
  absl::Status s = Detach(dir, &*st, std::chrono::seconds(options_.step_timeout_seconds));
  if (s.ok()) Log(LogLevel::kInfo, "unstaged", {{"volume_id", volume_id}});
  return s;
}

grpc::Status NodeService::NodeStageVolume(grpc::ServerContext*,
                                          const ::csi::v1::NodeStageVolumeRequest* req,
                                          ::csi::v1::NodeStageVolumeResponse*) {
  Busy busy(this, req->volume_id());
  if (!busy.taken()) return busy.Refusal();
  return ToGrpc(Stage(*req));
}

grpc::Status NodeService::NodeUnstageVolume(grpc::ServerContext*,
                                            const ::csi::v1::NodeUnstageVolumeRequest* req,
                                            ::csi::v1::NodeUnstageVolumeResponse*) {
  Busy busy(this, req->volume_id());
  if (!busy.taken()) return busy.Refusal();
  return ToGrpc(Unstage(req->volume_id(), req->staging_target_path()));
}

grpc::Status NodeService::NodePublishVolume(grpc::ServerContext*,
                                            const ::csi::v1::NodePublishVolumeRequest* req,
                                            ::csi::v1::NodePublishVolumeResponse*) {
  if (req->volume_id().empty()) return ToGrpc(absl::InvalidArgumentError("volume_id is missing"));
  if (req->target_path().empty() || req->target_path()[0] != '/') {
    return ToGrpc(absl::InvalidArgumentError("target_path must be an absolute path"));
  }
  if (req->staging_target_path().empty()) {
    return ToGrpc(absl::InvalidArgumentError("staging_target_path is missing"));
  }
  if (!req->has_volume_capability()) {
    return ToGrpc(absl::InvalidArgumentError("volume_capability is missing"));
  }
  Busy busy(this, req->volume_id());
  if (!busy.taken()) return busy.Refusal();
  auto id = ParseVolumeId(req->volume_id());
  if (!id.ok()) return ToGrpc(id.status());
  std::optional<Staged> st = ReadState(DirOf(options_, *id));
  if (!st.has_value() || st->staging_path != req->staging_target_path()) {
    return ToGrpc(absl::FailedPreconditionError("volume " + req->volume_id() + " is not staged at " +
                                                req->staging_target_path()));
  }
  if (st->block != req->volume_capability().has_block()) {
    return ToGrpc(absl::InvalidArgumentError("volume " + req->volume_id() + " is staged as " +
                                             (st->block ? "a block device" : "a filesystem")));
  }
  const std::string& target = req->target_path();
  if (IsMountPoint(target)) return grpc::Status::OK;  // published already
  std::error_code ec;
  const std::string source = st->block ? st->loop : st->staging_path;
  if (st->block) {
    // A block volume is published as a file the device is bind-mounted on.
    fs::create_directories(fs::path(target).parent_path(), ec);
    const int fd = open(target.c_str(), O_WRONLY | O_CREAT | O_CLOEXEC, 0600);
    if (fd < 0) return ToGrpc(absl::InternalError("cannot create " + target + ": " + strerror(errno)));
    close(fd);
  } else {
    fs::create_directories(target, ec);
    if (ec) return ToGrpc(absl::InternalError("cannot create " + target + ": " + ec.message()));
  }
  if (mount(source.c_str(), target.c_str(), nullptr, MS_BIND, nullptr) != 0) {
    return ToGrpc(absl::InternalError("bind mount of " + source + " on " + target + ": " + strerror(errno)));
  }
  if (req->readonly() &&
      mount(nullptr, target.c_str(), nullptr, MS_BIND | MS_REMOUNT | MS_RDONLY, nullptr) != 0) {
    const int err = errno;
    umount2(target.c_str(), 0);
    return ToGrpc(absl::InternalError("read-only remount of " + target + ": " + strerror(err)));
  }
  Log(LogLevel::kInfo, "published", {{"volume_id", req->volume_id()}, {"target", target},
                                     {"readonly", req->readonly() ? "true" : "false"}});
  return grpc::Status::OK;
}

grpc::Status NodeService::NodeUnpublishVolume(grpc::ServerContext*,
                                              const ::csi::v1::NodeUnpublishVolumeRequest* req,
                                              ::csi::v1::NodeUnpublishVolumeResponse*) {
  if (req->volume_id().empty()) return ToGrpc(absl::InvalidArgumentError("volume_id is missing"));
  if (req->target_path().empty()) return ToGrpc(absl::InvalidArgumentError("target_path is missing"));
  Busy busy(this, req->volume_id());
  if (!busy.taken()) return busy.Refusal();
  if (absl::Status s = Unmount(req->target_path()); !s.ok()) return ToGrpc(s);
  std::error_code ec;
  fs::remove(req->target_path(), ec);  // an empty directory or the block file; gone is fine
  return grpc::Status::OK;
}

grpc::Status NodeService::NodeGetVolumeStats(grpc::ServerContext*,
                                             const ::csi::v1::NodeGetVolumeStatsRequest* req,
                                             ::csi::v1::NodeGetVolumeStatsResponse* resp) {
  if (req->volume_id().empty()) return ToGrpc(absl::InvalidArgumentError("volume_id is missing"));
  if (req->volume_path().empty()) return ToGrpc(absl::InvalidArgumentError("volume_path is missing"));
  struct stat sb {};
  if (stat(req->volume_path().c_str(), &sb) != 0) {
    return ToGrpc(absl::NotFoundError("volume_path " + req->volume_path() + ": " + strerror(errno)));
  }
  if (S_ISBLK(sb.st_mode)) {
    absl::StatusOr<uint64_t> size = DeviceBytes(req->volume_path());
    if (!size.ok()) return ToGrpc(size.status());
    auto* u = resp->add_usage();
    u->set_unit(::csi::v1::VolumeUsage::BYTES);
    u->set_total(static_cast<int64_t>(*size));
  } else {
    struct statvfs v {};
    if (statvfs(req->volume_path().c_str(), &v) != 0) {
      return ToGrpc(absl::InternalError("statvfs " + req->volume_path() + ": " + strerror(errno)));
    }
    auto* b = resp->add_usage();
    b->set_unit(::csi::v1::VolumeUsage::BYTES);
    b->set_total(static_cast<int64_t>(v.f_blocks * v.f_frsize));
    b->set_available(static_cast<int64_t>(v.f_bavail * v.f_frsize));
    b->set_used(static_cast<int64_t>((v.f_blocks - v.f_bfree) * v.f_frsize));
    auto* i = resp->add_usage();
    i->set_unit(::csi::v1::VolumeUsage::INODES);
    i->set_total(static_cast<int64_t>(v.f_files));
    i->set_available(static_cast<int64_t>(v.f_favail));
    i->set_used(static_cast<int64_t>(v.f_files - v.f_ffree));
  }
  // The condition: the processes that carry the volume are alive.
  auto id = ParseVolumeId(req->volume_id());
  auto* cond = resp->mutable_volume_condition();
  cond->set_abnormal(false);
  cond->set_message("attached");
  if (id.ok()) {
    const std::string dir = DirOf(options_, *id);
    std::optional<Staged> st = ReadState(dir);
    if (!st.has_value()) {
      cond->set_abnormal(true);
      cond->set_message("not staged on this node");
    } else if (!Alive(ReadPid(dir + "/gateway.pid"))) {
      cond->set_abnormal(true);
      cond->set_message("the gateway (cowblk nbd) of this volume is not running");
    } else if (!Alive(st->fuse_pid)) {
      cond->set_abnormal(true);
      cond->set_message("nbdfuse of this volume is not running");
    }
  }
  return grpc::Status::OK;
}

grpc::Status NodeService::NodeExpandVolume(grpc::ServerContext*,
                                           const ::csi::v1::NodeExpandVolumeRequest* req,
                                           ::csi::v1::NodeExpandVolumeResponse* resp) {
  if (req->volume_id().empty()) return ToGrpc(absl::InvalidArgumentError("volume_id is missing"));
  if (req->volume_path().empty()) return ToGrpc(absl::InvalidArgumentError("volume_path is missing"));
  Busy busy(this, req->volume_id());
  if (!busy.taken()) return busy.Refusal();
  auto id = ParseVolumeId(req->volume_id());
  if (!id.ok()) return ToGrpc(id.status());
  std::optional<Staged> st = ReadState(DirOf(options_, *id));
  if (!st.has_value()) {
    return ToGrpc(absl::NotFoundError("volume " + req->volume_id() + " is not staged on this node"));
  }
  absl::StatusOr<uint64_t> device = DeviceBytes(st->loop);
  if (!device.ok()) return ToGrpc(device.status());
  const uint64_t size = *device;
  const int64_t required = req->capacity_range().required_bytes();
  if (required > 0 && size < static_cast<uint64_t>(required)) {
    return ToGrpc(absl::FailedPreconditionError(absl::StrCat(
        "volume ", req->volume_id(), " is attached with ", size, " bytes, less than ", required,
        ": it grew while staged; expansion is offline (unstage and stage it again)")));
  }
  // ext4 grew at stage time already (GrowExt4Offline); one that did not
  // (staged by an older plugin) is grown online. xfs grows only mounted.
  const auto timeout = std::chrono::seconds(600);
  if (!st->block && st->fs_type == "xfs") {
    if (absl::Status s = RunOk({"xfs_growfs", st->staging_path}, timeout); !s.ok()) return ToGrpc(s);
  } else if (!st->block && Ext4Bytes(st->loop) + 4096 <= size) {
    if (absl::Status s = RunOk({"resize2fs", st->loop}, timeout); !s.ok()) return ToGrpc(s);
  }
  resp->set_capacity_bytes(static_cast<int64_t>(size));
  return grpc::Status::OK;
}

grpc::Status NodeService::NodeGetCapabilities(grpc::ServerContext*,
                                              const ::csi::v1::NodeGetCapabilitiesRequest*,
                                              ::csi::v1::NodeGetCapabilitiesResponse* resp) {
  using Rpc = ::csi::v1::NodeServiceCapability::RPC;
  for (auto t : {Rpc::STAGE_UNSTAGE_VOLUME, Rpc::GET_VOLUME_STATS, Rpc::VOLUME_CONDITION,
                 Rpc::EXPAND_VOLUME}) {
    resp->add_capabilities()->mutable_rpc()->set_type(t);
  }
  return grpc::Status::OK;
}

grpc::Status NodeService::NodeGetInfo(grpc::ServerContext*, const ::csi::v1::NodeGetInfoRequest*,
                                      ::csi::v1::NodeGetInfoResponse* resp) {
  resp->set_node_id(options_.node_id);
  if (!options_.zone.empty()) {
    (*resp->mutable_accessible_topology()->mutable_segments())[kZoneKey] = options_.zone;
  }
  return grpc::Status::OK;
}

}  // namespace cowblk::csi
