// Where cowblk-csi creates a volume: names, volume ids, capacity ranges and
// the choice of server. Pure functions over plain values, no I/O, so that
// the rules are tested without servers (and the controller only asks the
// servers and applies them).
//
// Thread-safety: every function may be called from any thread.

#ifndef COWBLK_CSI_PLACEMENT_H_
#define COWBLK_CSI_PLACEMENT_H_

#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <vector>

#include "absl/status/statusor.h"

namespace cowblk::csi {

// The topology key every volume and node carries when the servers have
// zones (cowblk-csi --server NAME=HOST:PORT@ZONE).
inline constexpr char kZoneKey[] = "topology.cowblk.io/zone";

// The cowblk volume name for a CSI volume name: the name itself when it is
// a valid cowblk name ([a-z0-9][a-z0-9._-]{0,62}, as external-provisioner's
// "pvc-<uuid>" is), else "csi-" and 32 hex digits of its SHA-256. The same
// CSI name always maps to the same cowblk name, which is what makes
// CreateVolume idempotent. InvalidArgument for an empty name, one longer
// than 128 bytes or with a control character the spec bans.
absl::StatusOr<std::string> VolumeNameFor(const std::string& csi_name);

// "SERVER/VOLUME": the volume id names the server that holds the volume.
std::string VolumeId(const std::string& server, const std::string& volume);
struct ParsedId {
  std::string server;
  std::string volume;
};
// NotFound for an id no cowblk-csi made (no slash, an empty part); the
// spec's answer to an unknown id. InvalidArgument for an empty id.
absl::StatusOr<ParsedId> ParseVolumeId(const std::string& id);

// The size to create for a CSI capacity range (0: not said): the required
// bytes rounded up to 512, or `default_size` (clamped to the limit) when
// nothing is required. InvalidArgument for negative values; OutOfRange
// when the limit is below the required bytes or the rounded size.
absl::StatusOr<uint64_t> SizeFor(int64_t required_bytes, int64_t limit_bytes,
                                 uint64_t default_size);
// Whether a volume of `size` satisfies the range.
bool SizeFits(uint64_t size, int64_t required_bytes, int64_t limit_bytes);

// A server as the placement sees it.
struct Candidate {
  std::string name;
  std::string zone;  // "" when the server has none
  bool reachable = false;
  // What its volumes may still take of its free bytes: free_bytes minus
  // (provisioned_bytes - allocated_bytes), at least 0 (COW files grow
  // with first writes, so a volume's unwritten part is promised space).
  uint64_t available = 0;
  uint64_t max_volume_size = 0;
};

// available as above, from ServerInfo's numbers.
uint64_t Available(uint64_t free_bytes, uint64_t provisioned_bytes, uint64_t allocated_bytes);

// Topology: a list of segment maps (CSI's Topology).
using Segments = std::map<std::string, std::string>;
struct TopologyRequirement {
  std::vector<Segments> requisite;
  std::vector<Segments> preferred;
};

// Whether a server in `zone` may hold a volume with `req`: always when
// `req` names no zone (or the server has none); otherwise its zone must be
// in one of the requisite segments (or, with no requisite, the preferred).
bool ZoneAllowed(const std::string& zone, const TopologyRequirement& req);

// The reachable candidate, allowed by `req`, with the most available
// bytes that holds `size` (ties: the first preferred zone, then the
// name). ResourceExhausted when an allowed, reachable server exists but
// none has room; Unavailable when none is reachable; InvalidArgument when
// the topology allows no configured server.
absl::StatusOr<Candidate> Place(const std::vector<Candidate>& servers, uint64_t size,
                                const TopologyRequirement& req);

}  // namespace cowblk::csi

#endif  // COWBLK_CSI_PLACEMENT_H_
