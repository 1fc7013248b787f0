#include "csi/controller.h"

#include <algorithm>
#include <set>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "common/log.h"
#include "common/version.h"

namespace cowblk::csi {
namespace {

using namespace ::csi::v1;  // NOLINT: the generated messages

grpc::Status ToGrpc(const absl::Status& s) {
  if (s.ok()) return grpc::Status::OK;
  return grpc::Status(static_cast<grpc::StatusCode>(s.code()), std::string(s.message()));
}

grpc::Status Invalid(const std::string& why) {
  return grpc::Status(grpc::StatusCode::INVALID_ARGUMENT, why);
}

// Why cowblk cannot serve `cap`, or "" when it can. A block device on one
// server: any number of readers, but writers only on one node.
std::string Unsupported(const VolumeCapability& cap) {
  if (!cap.has_access_mode() || cap.access_mode().mode() == VolumeCapability::AccessMode::UNKNOWN) {
    return "volume capability without an access mode";
  }
  switch (cap.access_mode().mode()) {
    case VolumeCapability::AccessMode::SINGLE_NODE_WRITER:
    case VolumeCapability::AccessMode::SINGLE_NODE_READER_ONLY:
    case VolumeCapability::AccessMode::SINGLE_NODE_SINGLE_WRITER:
    case VolumeCapability::AccessMode::SINGLE_NODE_MULTI_WRITER:
    case VolumeCapability::AccessMode::MULTI_NODE_READER_ONLY:
      break;
    default:
      return absl::StrCat("access mode ",
                          VolumeCapability::AccessMode::Mode_Name(cap.access_mode().mode()),
                          " is not supported: one writing node at a time");
  }
  if (cap.has_mount()) {
    const std::string& fs = cap.mount().fs_type();
    if (!fs.empty() && fs != "ext4" && fs != "xfs") {
      return absl::StrCat("fs_type ", fs, " is not supported (ext4, xfs)");
    }
  } else if (!cap.has_block()) {
    return "volume capability without an access type (block or mount)";
  }
  return "";
}

std::string UnsupportedAny(const google::protobuf::RepeatedPtrField<VolumeCapability>& caps) {
  for (const VolumeCapability& c : caps) {
    if (std::string why = Unsupported(c); !why.empty()) return why;
  }
  return "";
}

// StorageClass parameters cowblk-csi knows: none of its own yet; the
// external-provisioner's own (csi.storage.k8s.io/...) pass.
std::string UnknownParameter(const google::protobuf::Map<std::string, std::string>& params) {
  for (const auto& [key, value] : params) {
    if (!absl::StartsWith(key, "csi.storage.k8s.io/")) return key;
  }
  return "";
}

TopologyRequirement FromProto(const ::csi::v1::TopologyRequirement& t) {
  TopologyRequirement out;
  for (const Topology& s : t.requisite()) out.requisite.emplace_back(s.segments().begin(), s.segments().end());
  for (const Topology& s : t.preferred()) out.preferred.emplace_back(s.segments().begin(), s.segments().end());
  return out;
}

bool ValidServerName(const std::string& n) {
  if (n.empty() || n.size() > 63) return false;
  return std::all_of(n.begin(), n.end(), [](char c) {
    return (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '.' || c == '-';
  });
}

}  // namespace

absl::StatusOr<ServerConfig> ParseServer(const std::string& text) {
  ServerConfig c;
  const size_t eq = text.find('=');
  if (eq == std::string::npos) {
    return absl::InvalidArgumentError(
        absl::StrCat("--server ", text, ": want NAME=HOST:PORT or NAME=HOST:PORT@ZONE"));
  }
  c.name = text.substr(0, eq);
  std::string rest = text.substr(eq + 1);
  const size_t at = rest.rfind('@');
  if (at != std::string::npos) {
    c.zone = rest.substr(at + 1);
    rest = rest.substr(0, at);
    if (c.zone.empty()) return absl::InvalidArgumentError(absl::StrCat("--server ", text, ": empty zone"));
  }
  c.address = rest;
  if (!ValidServerName(c.name)) {
    return absl::InvalidArgumentError(
        absl::StrCat("--server ", text, ": NAME must match [a-z0-9.-]{1,63}"));
  }
  if (c.address.empty()) return absl::InvalidArgumentError(absl::StrCat("--server ", text, ": no address"));
  return c;
}

absl::StatusOr<std::unique_ptr<Driver>> Driver::Create(const DriverOptions& options) {
  if (options.servers.empty()) return absl::InvalidArgumentError("no --server given");
  if (options.default_size == 0 || options.default_size % 512 != 0) {
    return absl::InvalidArgumentError("the default size must be a positive multiple of 512");
  }
  std::unique_ptr<Driver> d(new Driver(options));
  std::set<std::string> names;
  for (const ServerConfig& s : options.servers) {
    if (!ValidServerName(s.name)) return absl::InvalidArgumentError("bad server name " + s.name);
    if (!names.insert(s.name).second) {
      return absl::InvalidArgumentError("server " + s.name + " given twice");
    }
    ClientOptions o = options.client;
    o.target = s.address;
    auto c = Client::Create(o);
    if (!c.ok()) return c.status();
    d->clients_.push_back(*std::move(c));
  }
  return d;
}

bool Driver::has_zones() const {
  return std::any_of(options_.servers.begin(), options_.servers.end(),
                     [](const ServerConfig& s) { return !s.zone.empty(); });
}

Client* Driver::server(const std::string& name) {
  for (size_t i = 0; i < options_.servers.size(); ++i) {
    if (options_.servers[i].name == name) return &clients_[i];
  }
  return nullptr;
}

const ServerConfig* Driver::config(const std::string& name) const {
  for (const ServerConfig& s : options_.servers) {
    if (s.name == name) return &s;
  }
  return nullptr;
}

std::vector<Candidate> Driver::Candidates() {
  std::vector<Candidate> out;
  for (size_t i = 0; i < options_.servers.size(); ++i) {
    Candidate c;
    c.name = options_.servers[i].name;
    c.zone = options_.servers[i].zone;
    auto info = clients_[i].GetServerInfo();
    if (info.ok()) {
      c.reachable = true;
      c.available = Available(info->free_bytes, info->provisioned_bytes, info->allocated_bytes);
      c.max_volume_size = info->max_volume_size_bytes;
    } else {
      Log(LogLevel::kWarning, "server_unreachable",
          {{"server", c.name}, {"error", std::string(info.status().message())}});
    }
    out.push_back(c);
  }
  return out;
}

// ---- Identity ------------------------------------------------------------

grpc::Status IdentityService::GetPluginInfo(grpc::ServerContext*, const GetPluginInfoRequest*,
                                            GetPluginInfoResponse* resp) {
  resp->set_name(driver_->options().driver_name);
  resp->set_vendor_version(Version());
  (*resp->mutable_manifest())["commit"] = GitCommit();
  return grpc::Status::OK;
}

grpc::Status IdentityService::GetPluginCapabilities(grpc::ServerContext*,
                                                    const GetPluginCapabilitiesRequest*,
                                                    GetPluginCapabilitiesResponse* resp) {
  if (controller_) {
    resp->add_capabilities()->mutable_service()->set_type(
        PluginCapability::Service::CONTROLLER_SERVICE);
  }
  // Growing closes the volume on its server for the copy: offline.
  resp->add_capabilities()->mutable_volume_expansion()->set_type(
      PluginCapability::VolumeExpansion::OFFLINE);
  if (driver_->has_zones()) {
    resp->add_capabilities()->mutable_service()->set_type(
        PluginCapability::Service::VOLUME_ACCESSIBILITY_CONSTRAINTS);
  }
  return grpc::Status::OK;
}

grpc::Status IdentityService::Probe(grpc::ServerContext*, const ProbeRequest*,
                                    ProbeResponse* resp) {
  bool any = false;
  for (const Candidate& c : driver_->Candidates()) any |= c.reachable;
  resp->mutable_ready()->set_value(any);
  return grpc::Status::OK;
}

// ---- Controller ----------------------------------------------------------

void ControllerService::Fill(const std::string& server, const VolumeInfo& v,
                             ::csi::v1::Volume* out) const {
  out->set_capacity_bytes(static_cast<int64_t>(v.size_bytes));
  out->set_volume_id(VolumeId(server, v.name));
  (*out->mutable_volume_context())["cowblk.io/server"] = server;
  (*out->mutable_volume_context())["cowblk.io/volume"] = v.name;
  const ServerConfig* c = driver_->config(server);
  if (c != nullptr && !c->zone.empty()) {
    (*out->add_accessible_topology()->mutable_segments())[kZoneKey] = c->zone;
  }
}

grpc::Status ControllerService::CreateVolume(grpc::ServerContext*, const CreateVolumeRequest* req,
                                             CreateVolumeResponse* resp) {
  auto name = VolumeNameFor(req->name());
  if (!name.ok()) return ToGrpc(name.status());
  if (req->volume_capabilities().empty()) return Invalid("volume_capabilities are required");
  if (std::string why = UnsupportedAny(req->volume_capabilities()); !why.empty()) {
    return Invalid(why);
  }
  // A clone (or a volume from a snapshot) lives on its source's server,
  // of its source's size.
  const bool clone = req->has_volume_content_source();
  const bool from_snapshot = clone && req->volume_content_source().has_snapshot();
  ParsedId source;
  if (clone) {
    if (!from_snapshot && !req->volume_content_source().has_volume()) {
      return Invalid("volume_content_source: neither a snapshot nor a volume");
    }
    auto id = from_snapshot
                  ? ParseVolumeId(req->volume_content_source().snapshot().snapshot_id())
                  : ParseVolumeId(req->volume_content_source().volume().volume_id());
    if (!id.ok()) return ToGrpc(id.status());
    if (driver_->server(id->server) == nullptr) {
      return grpc::Status(grpc::StatusCode::NOT_FOUND, "no server " + id->server);
    }
    source = *id;
  }
  if (std::string key = UnknownParameter(req->parameters()); !key.empty()) {
    return Invalid("unknown parameter " + key);
  }
  const int64_t required = req->capacity_range().required_bytes();
  const int64_t limit = req->capacity_range().limit_bytes();
  auto size = SizeFor(required, limit, driver_->options().default_size);
  if (!size.ok()) return ToGrpc(size.status());
  const TopologyRequirement topology = FromProto(req->accessibility_requirements());

  std::lock_guard<std::mutex> lock(driver_->admin_mutex());
  // The name may exist on any server: every one must say NOT_FOUND before
  // a new volume is made, or a retried call could make a second one.
  for (const ServerConfig& s : driver_->options().servers) {
    auto v = driver_->server(s.name)->GetVolume(*name);
    if (absl::IsNotFound(v.status())) continue;
    if (!v.ok()) {
      return grpc::Status(grpc::StatusCode::UNAVAILABLE,
                          absl::StrCat("server ", s.name, " does not answer (",
                                       v.status().message(), "): cannot tell whether ", req->name(),
                                       " exists"));
    }
    if (!SizeFits(v->size_bytes, required, limit) || !ZoneAllowed(s.zone, topology) ||
        (clone && s.name != source.server)) {
      return grpc::Status(grpc::StatusCode::ALREADY_EXISTS,
                          absl::StrCat("volume ", req->name(), " exists as ", VolumeId(s.name, *name),
                                       " with ", v->size_bytes,
                                       " bytes, incompatible with this request"));
    }
    Fill(s.name, *v, resp->mutable_volume());
    if (clone) *resp->mutable_volume()->mutable_content_source() = req->volume_content_source();
    return grpc::Status::OK;
  }
  if (from_snapshot) return CreateFromSnapshot(*req, *name, source, topology, resp);
  if (clone) return CreateClone(*req, *name, source, topology, resp);
  auto where = Place(driver_->Candidates(), *size, topology);
  if (!where.ok()) return ToGrpc(where.status());
  auto v = driver_->server(where->name)->CreateVolume(*name, *size);
  if (!v.ok()) return ToGrpc(v.status());
  Log(LogLevel::kInfo, "volume_created",
      {{"name", req->name()}, {"volume_id", VolumeId(where->name, v->name)},
       {"size_bytes", std::to_string(v->size_bytes)}});
  Fill(where->name, *v, resp->mutable_volume());
  return grpc::Status::OK;
}

grpc::Status ControllerService::CreateClone(const CreateVolumeRequest& req,
                                            const std::string& name, const ParsedId& source,
                                            const TopologyRequirement& topology,
                                            CreateVolumeResponse* resp) {
  const ServerConfig* where = driver_->config(source.server);
  Client* server = driver_->server(source.server);
  auto src = server->GetVolume(source.volume);
  if (!src.ok()) return ToGrpc(src.status());
  // A clone starts at its source's size and grows when the range asks more
  // (ResizeVolume: blank sources only); it never shrinks.
  const int64_t limit = req.capacity_range().limit_bytes();
  if (limit > 0 && src->size_bytes > static_cast<uint64_t>(limit)) {
    return grpc::Status(grpc::StatusCode::OUT_OF_RANGE,
                        absl::StrCat("a clone has at least its source's size, ", src->size_bytes,
                                     " bytes, above limit_bytes ", limit));
  }
  uint64_t grow_to = 0;
  if (!SizeFits(src->size_bytes, req.capacity_range().required_bytes(), limit)) {
    auto size = SizeFor(req.capacity_range().required_bytes(), limit, src->size_bytes);
    if (!size.ok()) return ToGrpc(size.status());
    grow_to = *size;
  }
  if (!ZoneAllowed(where->zone, topology)) {
    return Invalid("accessibility_requirements exclude the source volume's server " + where->name);
  }
  auto v = server->CloneVolume(source.volume, name);
  if (!v.ok()) return ToGrpc(v.status());
  if (grow_to != 0) {
    v = server->ResizeVolume(name, grow_to);
    if (!v.ok()) {
      // No half-made clone under the claim's name.
      server->DeleteVolume(name).IgnoreError();
      return ToGrpc(v.status());
    }
  }
  Log(LogLevel::kInfo, "volume_cloned",
      {{"name", req.name()}, {"volume_id", VolumeId(where->name, v->name)},
       {"source", VolumeId(source.server, source.volume)}});
  Fill(where->name, *v, resp->mutable_volume());
  *resp->mutable_volume()->mutable_content_source() = req.volume_content_source();
  return grpc::Status::OK;
}

grpc::Status ControllerService::CreateFromSnapshot(const CreateVolumeRequest& req,
                                                   const std::string& name,
                                                   const ParsedId& snapshot,
                                                   const TopologyRequirement& topology,
                                                   CreateVolumeResponse* resp) {
  const ServerConfig* where = driver_->config(snapshot.server);
  Client* server = driver_->server(snapshot.server);
  auto snap = server->GetSnapshot(snapshot.volume);
  if (!snap.ok()) return ToGrpc(snap.status());
  // A volume over an image has the image's size: it cannot grow
  // (ResizeVolume grows blank volumes only).
  if (!SizeFits(snap->size_bytes, req.capacity_range().required_bytes(),
                req.capacity_range().limit_bytes())) {
    return grpc::Status(grpc::StatusCode::OUT_OF_RANGE,
                        absl::StrCat("a volume from snapshot ", snapshot.volume, " has its ",
                                     snap->size_bytes,
                                     " bytes, outside capacity_range (a volume over a "
                                     "snapshot does not grow)"));
  }
  if (!ZoneAllowed(where->zone, topology)) {
    return Invalid("accessibility_requirements exclude the snapshot's server " + where->name);
  }
  auto v = server->CreateVolumeFromImage(name, snapshot.volume);
  if (!v.ok()) return ToGrpc(v.status());
  Log(LogLevel::kInfo, "volume_restored",
      {{"name", req.name()}, {"volume_id", VolumeId(where->name, v->name)},
       {"snapshot", VolumeId(snapshot.server, snapshot.volume)}});
  Fill(where->name, *v, resp->mutable_volume());
  *resp->mutable_volume()->mutable_content_source() = req.volume_content_source();
  return grpc::Status::OK;
}

grpc::Status ControllerService::DeleteVolume(grpc::ServerContext*, const DeleteVolumeRequest* req,
                                             DeleteVolumeResponse*) {
  auto id = ParseVolumeId(req->volume_id());
  // An id no cowblk-csi made names no volume: deleted already, as the spec
  // wants it answered.
  if (absl::IsNotFound(id.status())) return grpc::Status::OK;
  if (!id.ok()) return ToGrpc(id.status());
  Client* server = driver_->server(id->server);
  if (server == nullptr) {
    Log(LogLevel::kWarning, "delete_unknown_server", {{"volume_id", req->volume_id()}});
    return grpc::Status::OK;
  }
  std::lock_guard<std::mutex> lock(driver_->admin_mutex());
  absl::Status s = server->DeleteVolume(id->volume);
  if (absl::IsNotFound(s)) return grpc::Status::OK;
  if (s.ok()) Log(LogLevel::kInfo, "volume_deleted", {{"volume_id", req->volume_id()}});
  return ToGrpc(s);
}

grpc::Status ControllerService::ValidateVolumeCapabilities(
    grpc::ServerContext*, const ValidateVolumeCapabilitiesRequest* req,
    ValidateVolumeCapabilitiesResponse* resp) {
  if (req->volume_id().empty()) return Invalid("volume_id is required");
  if (req->volume_capabilities().empty()) return Invalid("volume_capabilities are required");
  auto id = ParseVolumeId(req->volume_id());
  if (!id.ok()) return ToGrpc(id.status());
  Client* server = driver_->server(id->server);
  if (server == nullptr) {
    return grpc::Status(grpc::StatusCode::NOT_FOUND, "no server " + id->server);
  }
  auto v = server->GetVolume(id->volume);
  if (!v.ok()) return ToGrpc(v.status());
  if (std::string why = UnsupportedAny(req->volume_capabilities()); !why.empty()) {
    resp->set_message(why);
    return grpc::Status::OK;
  }
  if (std::string key = UnknownParameter(req->parameters()); !key.empty()) {
    resp->set_message("unknown parameter " + key);
    return grpc::Status::OK;
  }
  auto* confirmed = resp->mutable_confirmed();
  *confirmed->mutable_volume_context() = req->volume_context();
  *confirmed->mutable_volume_capabilities() = req->volume_capabilities();
  *confirmed->mutable_parameters() = req->parameters();
  return grpc::Status::OK;
}

grpc::Status ControllerService::ListVolumes(grpc::ServerContext*, const ListVolumesRequest* req,
                                            ListVolumesResponse* resp) {
  if (req->max_entries() < 0) return Invalid("max_entries is negative");
  if (!req->starting_token().empty() && !ParseVolumeId(req->starting_token()).ok()) {
    return grpc::Status(grpc::StatusCode::ABORTED, "starting_token is not one this plugin gave");
  }
  // Every volume of every server, in volume id order; a page starts after
  // the id its token names (which may have been deleted meanwhile).
  std::vector<std::pair<std::string, VolumeInfo>> all;
  for (const ServerConfig& s : driver_->options().servers) {
    auto list = driver_->server(s.name)->ListVolumes();
    if (!list.ok()) {
      return grpc::Status(grpc::StatusCode::UNAVAILABLE,
                          absl::StrCat("server ", s.name, ": ", list.status().message()));
    }
    for (VolumeInfo& v : *list) all.emplace_back(VolumeId(s.name, v.name), std::move(v));
  }
  std::sort(all.begin(), all.end(),
            [](const auto& a, const auto& b) { return a.first < b.first; });
  const size_t max = req->max_entries() == 0 ? all.size() : static_cast<size_t>(req->max_entries());
  size_t n = 0;
  for (const auto& [id, v] : all) {
    if (!req->starting_token().empty() && id <= req->starting_token()) continue;
    if (n == max) {
      resp->set_next_token(resp->entries(resp->entries_size() - 1).volume().volume_id());
      break;
    }
    Fill(ParseVolumeId(id)->server, v, resp->add_entries()->mutable_volume());
    ++n;
  }
  return grpc::Status::OK;
}

grpc::Status ControllerService::GetCapacity(grpc::ServerContext*, const GetCapacityRequest* req,
                                            GetCapacityResponse* resp) {
  // Capabilities or parameters cowblk cannot serve: no capacity for them.
  if (!UnsupportedAny(req->volume_capabilities()).empty() ||
      !UnknownParameter(req->parameters()).empty()) {
    resp->set_available_capacity(0);
    return grpc::Status::OK;
  }
  TopologyRequirement topology;
  if (req->has_accessible_topology()) {
    topology.requisite.emplace_back(req->accessible_topology().segments().begin(),
                                    req->accessible_topology().segments().end());
  }
  uint64_t total = 0, largest = 0;
  for (const Candidate& c : driver_->Candidates()) {
    if (!c.reachable || !ZoneAllowed(c.zone, topology)) continue;
    total += c.available;
    largest = std::max(largest, c.max_volume_size != 0 ? std::min(c.available, c.max_volume_size)
                                                       : c.available);
  }
  resp->set_available_capacity(static_cast<int64_t>(total));
  resp->mutable_maximum_volume_size()->set_value(static_cast<int64_t>(largest));
  resp->mutable_minimum_volume_size()->set_value(512);
  return grpc::Status::OK;
}

grpc::Status ControllerService::ControllerGetCapabilities(
    grpc::ServerContext*, const ControllerGetCapabilitiesRequest*,
    ControllerGetCapabilitiesResponse* resp) {
  for (auto type : {ControllerServiceCapability::RPC::CREATE_DELETE_VOLUME,
                    ControllerServiceCapability::RPC::CLONE_VOLUME,
                    ControllerServiceCapability::RPC::LIST_VOLUMES,
                    ControllerServiceCapability::RPC::GET_CAPACITY,
                    ControllerServiceCapability::RPC::EXPAND_VOLUME,
                    ControllerServiceCapability::RPC::CREATE_DELETE_SNAPSHOT,
                    ControllerServiceCapability::RPC::LIST_SNAPSHOTS}) {
    resp->add_capabilities()->mutable_rpc()->set_type(type);
  }
  return grpc::Status::OK;
}

grpc::Status ControllerService::ControllerExpandVolume(grpc::ServerContext*,
                                                       const ControllerExpandVolumeRequest* req,
                                                       ControllerExpandVolumeResponse* resp) {
  if (req->volume_id().empty()) return Invalid("volume_id is required");
  if (!req->has_capacity_range()) return Invalid("capacity_range is required");
  auto id = ParseVolumeId(req->volume_id());
  if (!id.ok()) return ToGrpc(id.status());
  Client* server = driver_->server(id->server);
  if (server == nullptr) return grpc::Status(grpc::StatusCode::NOT_FOUND, "no server " + id->server);
  auto v = server->GetVolume(id->volume);
  if (!v.ok()) return ToGrpc(v.status());
  const int64_t limit = req->capacity_range().limit_bytes();
  if (limit > 0 && v->size_bytes > static_cast<uint64_t>(limit)) {
    return grpc::Status(grpc::StatusCode::OUT_OF_RANGE, "volumes cannot shrink");
  }
  const bool block = req->has_volume_capability() && req->volume_capability().has_block();
  if (SizeFits(v->size_bytes, req->capacity_range().required_bytes(), limit)) {
    resp->set_capacity_bytes(static_cast<int64_t>(v->size_bytes));
    resp->set_node_expansion_required(false);
    return grpc::Status::OK;
  }
  auto size = SizeFor(req->capacity_range().required_bytes(), limit, v->size_bytes);
  if (!size.ok()) return ToGrpc(size.status());
  std::lock_guard<std::mutex> lock(driver_->admin_mutex());
  auto grown = server->ResizeVolume(id->volume, *size);
  if (!grown.ok()) return ToGrpc(grown.status());
  Log(LogLevel::kInfo, "volume_expanded",
      {{"volume_id", req->volume_id()}, {"size_bytes", std::to_string(grown->size_bytes)}});
  resp->set_capacity_bytes(static_cast<int64_t>(grown->size_bytes));
  // A filesystem on it grows on the node; a raw block device needs nothing.
  resp->set_node_expansion_required(!block);
  return grpc::Status::OK;
}

// ---- Snapshots -----------------------------------------------------------

namespace {

void FillSnapshot(const std::string& server, const SnapshotInfo& s, ::csi::v1::Snapshot* out) {
  out->set_size_bytes(static_cast<int64_t>(s.size_bytes));
  out->set_snapshot_id(VolumeId(server, s.name));
  out->set_source_volume_id(VolumeId(server, s.source_volume));
  out->mutable_creation_time()->set_seconds(s.created_unix_nanos / 1000000000);
  out->mutable_creation_time()->set_nanos(static_cast<int32_t>(s.created_unix_nanos % 1000000000));
  // Written whole before CreateSnapshot returns.
  out->set_ready_to_use(true);
}

}  // namespace

grpc::Status ControllerService::CreateSnapshot(grpc::ServerContext*,
                                               const CreateSnapshotRequest* req,
                                               CreateSnapshotResponse* resp) {
  if (req->source_volume_id().empty()) return Invalid("source_volume_id is required");
  auto name = VolumeNameFor(req->name());
  if (!name.ok()) return ToGrpc(name.status());
  if (std::string key = UnknownParameter(req->parameters()); !key.empty()) {
    return Invalid("unknown parameter " + key);
  }
  auto source = ParseVolumeId(req->source_volume_id());
  if (!source.ok()) return ToGrpc(source.status());
  if (driver_->server(source->server) == nullptr) {
    return grpc::Status(grpc::StatusCode::NOT_FOUND, "no server " + source->server);
  }
  std::lock_guard<std::mutex> lock(driver_->admin_mutex());
  // The name may be taken on any server: the same snapshot when it is of
  // the same volume, ALREADY_EXISTS otherwise.
  for (const ServerConfig& s : driver_->options().servers) {
    auto snap = driver_->server(s.name)->GetSnapshot(*name);
    if (absl::IsNotFound(snap.status())) continue;
    if (!snap.ok()) {
      return grpc::Status(grpc::StatusCode::UNAVAILABLE,
                          absl::StrCat("server ", s.name, " does not answer (",
                                       snap.status().message(), "): cannot tell whether snapshot ",
                                       req->name(), " exists"));
    }
    if (s.name != source->server || snap->source_volume != source->volume) {
      return grpc::Status(grpc::StatusCode::ALREADY_EXISTS,
                          absl::StrCat("snapshot ", req->name(), " exists as ",
                                       VolumeId(s.name, *name), " of volume ",
                                       VolumeId(s.name, snap->source_volume)));
    }
    FillSnapshot(s.name, *snap, resp->mutable_snapshot());
    return grpc::Status::OK;
  }
  auto snap = driver_->server(source->server)->CreateSnapshot(source->volume, *name);
  if (!snap.ok()) return ToGrpc(snap.status());
  Log(LogLevel::kInfo, "snapshot_created",
      {{"name", req->name()}, {"snapshot_id", VolumeId(source->server, snap->name)},
       {"source", req->source_volume_id()}});
  FillSnapshot(source->server, *snap, resp->mutable_snapshot());
  return grpc::Status::OK;
}

grpc::Status ControllerService::DeleteSnapshot(grpc::ServerContext*,
                                               const DeleteSnapshotRequest* req,
                                               DeleteSnapshotResponse*) {
  if (req->snapshot_id().empty()) return Invalid("snapshot_id is required");
  auto id = ParseVolumeId(req->snapshot_id());
  if (absl::IsNotFound(id.status())) return grpc::Status::OK;  // none of ours: gone
  if (!id.ok()) return ToGrpc(id.status());
  Client* server = driver_->server(id->server);
  if (server == nullptr) {
    Log(LogLevel::kWarning, "delete_unknown_server", {{"snapshot_id", req->snapshot_id()}});
    return grpc::Status::OK;
  }
  std::lock_guard<std::mutex> lock(driver_->admin_mutex());
  absl::Status s = server->DeleteSnapshot(id->volume);
  if (absl::IsNotFound(s)) return grpc::Status::OK;
  if (s.ok()) Log(LogLevel::kInfo, "snapshot_deleted", {{"snapshot_id", req->snapshot_id()}});
  return ToGrpc(s);
}

grpc::Status ControllerService::ListSnapshots(grpc::ServerContext*,
                                              const ListSnapshotsRequest* req,
                                              ListSnapshotsResponse* resp) {
  if (req->max_entries() < 0) return Invalid("max_entries is negative");
  if (!req->starting_token().empty() && !ParseVolumeId(req->starting_token()).ok()) {
    return grpc::Status(grpc::StatusCode::ABORTED, "starting_token is not one this plugin gave");
  }
  std::vector<std::pair<std::string, SnapshotInfo>> all;
  if (!req->snapshot_id().empty()) {
    // One snapshot, or none (an id that names nothing lists nothing).
    auto id = ParseVolumeId(req->snapshot_id());
    Client* server = id.ok() ? driver_->server(id->server) : nullptr;
    if (server == nullptr) return grpc::Status::OK;
    auto snap = server->GetSnapshot(id->volume);
    if (absl::IsNotFound(snap.status()) || absl::IsInvalidArgument(snap.status())) {
      return grpc::Status::OK;
    }
    if (!snap.ok()) return ToGrpc(snap.status());
    if (!req->source_volume_id().empty() &&
        req->source_volume_id() != VolumeId(id->server, snap->source_volume)) {
      return grpc::Status::OK;
    }
    all.emplace_back(req->snapshot_id(), *snap);
  } else {
    std::string only_server, only_volume;
    if (!req->source_volume_id().empty()) {
      auto id = ParseVolumeId(req->source_volume_id());
      if (!id.ok() || driver_->server(id->server) == nullptr) return grpc::Status::OK;
      only_server = id->server;
      only_volume = id->volume;
    }
    for (const ServerConfig& s : driver_->options().servers) {
      if (!only_server.empty() && s.name != only_server) continue;
      auto list = driver_->server(s.name)->ListSnapshots(only_volume);
      if (!list.ok()) {
        return grpc::Status(grpc::StatusCode::UNAVAILABLE,
                            absl::StrCat("server ", s.name, ": ", list.status().message()));
      }
      for (SnapshotInfo& v : *list) all.emplace_back(VolumeId(s.name, v.name), std::move(v));
    }
  }
  std::sort(all.begin(), all.end(), [](const auto& a, const auto& b) { return a.first < b.first; });
  const size_t max = req->max_entries() == 0 ? all.size() : static_cast<size_t>(req->max_entries());
  size_t n = 0;
  for (const auto& [id, snap] : all) {
    if (!req->starting_token().empty() && id <= req->starting_token()) continue;
    if (n == max) {
      resp->set_next_token(resp->entries(resp->entries_size() - 1).snapshot().snapshot_id());
      break;
    }
    FillSnapshot(ParseVolumeId(id)->server, snap, resp->add_entries()->mutable_snapshot());
    ++n;
  }
  return grpc::Status::OK;
}

}  // namespace cowblk::csi
