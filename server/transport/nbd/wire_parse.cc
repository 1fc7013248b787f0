#include "server/transport/nbd/wire_parse.h"

#include "absl/strings/str_cat.h"
#include "common/nbd_wire.h"

namespace cowblk::nbd {
namespace {

bool IsBlockCommand(uint16_t type) {
  return type == kCmdRead || type == kCmdWrite || type == kCmdFlush || type == kCmdTrim ||
         type == kCmdWriteZeroes;
}

}  // namespace

absl::Status CheckClientFlags(uint32_t client_flags) {
  if ((client_flags & ~uint32_t{kFlagFixedNewstyle | kFlagNoZeroes}) != 0) {
    return absl::InvalidArgumentError(
        absl::StrCat("handshake: unknown client flags ", client_flags));
  }
  return absl::OkStatus();
}

absl::StatusOr<OptionHeader> ParseOptionHeader(const uint8_t* b) {
  if (Get64(b) != kOptMagic) return absl::InvalidArgumentError("handshake: bad option magic");
  OptionHeader h{Get32(b + 8), Get32(b + 12)};
  if (h.length > kMaxOptionBytes) {
    return absl::InvalidArgumentError(
        absl::StrCat("handshake: option ", h.option, " of ", h.length, " bytes"));
  }
  return h;
}

std::optional<std::string> ParseInfoOrGoName(const std::string& data) {
  const auto* p = reinterpret_cast<const uint8_t*>(data.data());
  if (data.size() < 6) return std::nullopt;
  const uint32_t name_len = Get32(p);
  if (name_len > data.size() - 6 ||
      data.size() != 6 + name_len + 2 * size_t{Get16(p + 4 + name_len)}) {
    return std::nullopt;
  }
  return data.substr(4, name_len);
}

RequestHeader ParseRequestHeader(const uint8_t* h) {
  return {Get32(h), Get16(h + 4), Get16(h + 6), Get64(h + 8), Get64(h + 16), Get32(h + 24)};
}

RequestVerdict CheckRequest(const RequestHeader& h) {
  if (h.magic != kRequestMagic) return RequestVerdict::kBadMagic;
  if (h.type == kCmdDisc) return RequestVerdict::kDisconnect;
  if (h.type == kCmdWrite && h.length > kMaxBlock) return RequestVerdict::kWriteTooLarge;
  if (!IsBlockCommand(h.type)) return RequestVerdict::kUnknownCommand;
  const uint16_t allowed =
      h.type == kCmdWriteZeroes ? (kCmdFlagFua | kCmdFlagNoHole) : kCmdFlagFua;
  if ((h.flags & ~allowed) != 0) return RequestVerdict::kBadFlags;
  return RequestVerdict::kSubmit;
}

uint32_t PayloadBytes(const RequestHeader& h) { return h.type == kCmdWrite ? h.length : 0; }

}  // namespace cowblk::nbd
