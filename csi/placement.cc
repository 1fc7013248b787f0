#include "csi/placement.h"

#include <openssl/sha.h>

#include <algorithm>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"

namespace cowblk::csi {
namespace {

constexpr uint64_t kSector = 512;
constexpr size_t kMaxCsiName = 128;

bool ValidCowblkName(const std::string& n) {
  if (n.empty() || n.size() > 63) return false;
  auto alnum = [](char c) { return (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9'); };
  if (!alnum(n[0])) return false;
  return std::all_of(n.begin(), n.end(),
                     [&](char c) { return alnum(c) || c == '.' || c == '_' || c == '-'; });
}

// The spec bans U+0000-U+0008, U+000B, U+000C, U+000E-U+001F, U+007F-U+009F.
bool BannedControl(const std::string& s) {
  for (size_t i = 0; i < s.size(); ++i) {
    const unsigned char c = s[i];
    if (c <= 0x08 || c == 0x0b || c == 0x0c || (c >= 0x0e && c <= 0x1f) || c == 0x7f) return true;
    // U+0080-U+009F in UTF-8: C2 80 .. C2 9F.
    if (c == 0xc2 && i + 1 < s.size()) {
      const unsigned char d = s[i + 1];
      if (d >= 0x80 && d <= 0x9f) return true;
    }
  }
  return false;
}

bool InSegments(const std::string& zone, const std::vector<Segments>& list, bool* named) {
  bool found = false;
  for (const Segments& s : list) {
    auto it = s.find(kZoneKey);
    if (it == s.end()) continue;
    *named = true;
    found |= it->second == zone;
  }
  return found;
}

}  // namespace

absl::StatusOr<std::string> VolumeNameFor(const std::string& csi_name) {
  if (csi_name.empty()) return absl::InvalidArgumentError("name is required");
  if (csi_name.size() > kMaxCsiName) {
    return absl::InvalidArgumentError(
        absl::StrCat("name is ", csi_name.size(), " bytes; at most ", kMaxCsiName));
  }
  if (BannedControl(csi_name)) {
    return absl::InvalidArgumentError("name holds a control character");
  }
  if (ValidCowblkName(csi_name)) return csi_name;
  unsigned char digest[SHA256_DIGEST_LENGTH];
  SHA256(reinterpret_cast<const unsigned char*>(csi_name.data()), csi_name.size(), digest);
  std::string out = "csi-";
  for (int i = 0; i < 16; ++i) absl::StrAppendFormat(&out, "%02x", digest[i]);
  return out;
}

std::string VolumeId(const std::string& server, const std::string& volume) {
  return server + "/" + volume;
}

absl::StatusOr<ParsedId> ParseVolumeId(const std::string& id) {
  if (id.empty()) return absl::InvalidArgumentError("volume_id is required");
  const size_t slash = id.find('/');
  if (slash == std::string::npos || slash == 0 || slash + 1 == id.size() ||
      id.find('/', slash + 1) != std::string::npos || !ValidCowblkName(id.substr(slash + 1))) {
    return absl::NotFoundError(absl::StrCat("volume ", id, " not found (not a SERVER/VOLUME id)"));
  }
  return ParsedId{id.substr(0, slash), id.substr(slash + 1)};
}

absl::StatusOr<uint64_t> SizeFor(int64_t required_bytes, int64_t limit_bytes,
                                 uint64_t default_size) {
  if (required_bytes < 0 || limit_bytes < 0) {
    return absl::InvalidArgumentError("capacity_range: negative bytes");
  }
  const uint64_t limit = static_cast<uint64_t>(limit_bytes);
  if (limit != 0 && static_cast<uint64_t>(required_bytes) > limit) {
    return absl::OutOfRangeError(absl::StrCat("capacity_range: required_bytes ", required_bytes,
                                              " above limit_bytes ", limit_bytes));
  }
  uint64_t size;
  if (required_bytes == 0) {
    size = default_size;
    if (limit != 0 && size > limit) size = limit / kSector * kSector;
    if (size == 0) {
      return absl::OutOfRangeError(
          absl::StrCat("capacity_range: limit_bytes ", limit_bytes, " below one sector"));
    }
    return size;
  }
  size = (static_cast<uint64_t>(required_bytes) + kSector - 1) / kSector * kSector;
  if (limit != 0 && size > limit) {
    return absl::OutOfRangeError(absl::StrCat(
        "capacity_range: volumes are multiples of 512 bytes; none lies in [", required_bytes,
        ", ", limit_bytes, "]"));
  }
  return size;
}

bool SizeFits(uint64_t size, int64_t required_bytes, int64_t limit_bytes) {
  if (required_bytes > 0 && size < static_cast<uint64_t>(required_bytes)) return false;
  if (limit_bytes > 0 && size > static_cast<uint64_t>(limit_bytes)) return false;
  return true;
}

uint64_t Available(uint64_t free_bytes, uint64_t provisioned_bytes, uint64_t allocated_bytes) {
  const uint64_t promised = provisioned_bytes > allocated_bytes ? provisioned_bytes - allocated_bytes
                                                                : 0;
  return free_bytes > promised ? free_bytes - promised : 0;
}

bool ZoneAllowed(const std::string& zone, const TopologyRequirement& req) {
  if (zone.empty()) return true;
  bool named = false;
  if (!req.requisite.empty()) {
    const bool in = InSegments(zone, req.requisite, &named);
    return in || !named;
  }
  const bool in = InSegments(zone, req.preferred, &named);
  return in || !named;
}

absl::StatusOr<Candidate> Place(const std::vector<Candidate>& servers, uint64_t size,
                                const TopologyRequirement& req) {
  // The rank of a zone among the preferred segments (lower first).
  auto preference = [&](const std::string& zone) {
    for (size_t i = 0; i < req.preferred.size(); ++i) {
      auto it = req.preferred[i].find(kZoneKey);
      if (it != req.preferred[i].end() && it->second == zone) return i;
    }
    return req.preferred.size();
  };
  const Candidate* best = nullptr;
  bool allowed = false, reachable = false;
  for (const Candidate& c : servers) {
    if (!ZoneAllowed(c.zone, req)) continue;
    allowed = true;
    if (!c.reachable) continue;
    reachable = true;
    if (c.available < size || (c.max_volume_size != 0 && size > c.max_volume_size)) continue;
    if (best == nullptr || c.available > best->available ||
        (c.available == best->available &&
         (preference(c.zone) < preference(best->zone) ||
          (preference(c.zone) == preference(best->zone) && c.name < best->name)))) {
      best = &c;
    }
  }
  if (best != nullptr) return *best;
  if (!allowed) {
    return absl::InvalidArgumentError("accessibility_requirements allow none of the servers");
  }
  if (!reachable) return absl::UnavailableError("no allowed cowblkd server answers");
  return absl::ResourceExhaustedError(
      absl::StrCat("no allowed server has room for ", size, " bytes"));
}

}  // namespace cowblk::csi
