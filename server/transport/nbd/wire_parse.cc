#include "server/transport/nbd/wire_parse.h"

#include <endian.h>

#include <cerrno>
#include <cstring>

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

std::optional<MetaContextOption> ParseMetaContextOption(const std::string& data) {
  const auto* p = reinterpret_cast<const uint8_t*>(data.data());
  size_t at = 0;
  // A u32 length and that many bytes, within the data.
  auto string_at = [&](std::string* out) {
    if (data.size() - at < 4) return false;
    const uint32_t n = Get32(p + at);
    at += 4;
    if (n > data.size() - at) return false;
    out->assign(data, at, n);
    at += n;
    return true;
  };
  MetaContextOption o;
  if (!string_at(&o.export_name) || data.size() - at < 4) return std::nullopt;
  const uint32_t count = Get32(p + at);
  at += 4;
  // Each query takes at least its 4-byte length: a count the data cannot
  // hold is malformed (and reserves nothing).
  if (count > (data.size() - at) / 4) return std::nullopt;
  o.queries.resize(count);
  for (std::string& q : o.queries) {
    if (!string_at(&q)) return std::nullopt;
  }
  if (at != data.size()) return std::nullopt;
  return o;
}

bool SelectsBaseAllocation(const std::string& query, bool listing) {
  return query == kBaseAllocation || (listing && query == "base:");
}

RequestHeader ParseRequestHeader(const uint8_t* h) {
  return {Get32(h), Get16(h + 4), Get16(h + 6), Get64(h + 8), Get64(h + 16), Get32(h + 24)};
}

RequestVerdict CheckRequest(const RequestHeader& h, bool block_status) {
  if (h.magic != kRequestMagic) return RequestVerdict::kBadMagic;
  if (h.type == kCmdDisc) return RequestVerdict::kDisconnect;
  if (h.type == kCmdWrite && h.length > kMaxBlock) return RequestVerdict::kWriteTooLarge;
  const bool status = block_status && h.type == kCmdBlockStatus;
  if (!IsBlockCommand(h.type) && !status) return RequestVerdict::kUnknownCommand;
  const uint16_t allowed = status                        ? kCmdFlagReqOne
                           : h.type == kCmdWriteZeroes ? (kCmdFlagFua | kCmdFlagNoHole | kCmdFlagFastZero)
                                                       : kCmdFlagFua;
  if ((h.flags & ~allowed) != 0) return RequestVerdict::kBadFlags;
  return RequestVerdict::kSubmit;
}

uint32_t PayloadBytes(const RequestHeader& h) { return h.type == kCmdWrite ? h.length : 0; }

std::string Greeting() {
  std::string m;
  Put64(&m, kNbdMagic);
  Put64(&m, kOptMagic);
  Put16(&m, kFlagFixedNewstyle | kFlagNoZeroes);
  return m;
}

std::string OptionReply(uint32_t option, uint32_t type, const std::string& data) {
  std::string m;
  Put64(&m, kRepMagic);
  Put32(&m, option);
  Put32(&m, type);
  Put32(&m, static_cast<uint32_t>(data.size()));
  m += data;
  return m;
}

std::string ExportNameReply(uint64_t size, uint16_t transmission_flags, bool no_zeroes) {
  std::string m;
  Put64(&m, size);
  Put16(&m, transmission_flags);
  if (!no_zeroes) m.append(124, '\0');
  return m;
}

std::string ListEntry(const std::string& name) {
  std::string m;
  Put32(&m, static_cast<uint32_t>(name.size()));
  m += name;
  return m;
}

std::string InfoExport(uint64_t size, uint16_t transmission_flags) {
  std::string m;
  Put16(&m, kInfoExport);
  Put64(&m, size);
  Put16(&m, transmission_flags);
  return m;
}

std::string InfoBlockSize(uint32_t minimum, uint32_t preferred) {
  std::string m;
  Put16(&m, kInfoBlockSize);
  Put32(&m, minimum);
  Put32(&m, preferred);
  Put32(&m, kMaxBlock);
  return m;
}

std::string MetaContextEntry(uint32_t id, const std::string& name) {
  std::string m;
  Put32(&m, id);
  m += name;
  return m;
}

std::string BlockStatusPayload(uint32_t context_id, const std::vector<Extent>& extents) {
  std::string m;
  m.reserve(4 + 8 * extents.size());
  Put32(&m, context_id);
  for (const Extent& e : extents) {
    Put32(&m, e.length);
    Put32(&m, e.flags);
  }
  return m;
}

size_t ReplyHeaderBytes(bool structured, uint32_t error, ReplyKind kind) {
  if (!structured) return kSimpleReplyBytes;
  if (error != 0) return kStructuredReplyBytes + 6;  // errno, message length
  return kStructuredReplyBytes + (kind == ReplyKind::kReadData ? 8 : 0);  // offset
}

size_t ReplyHeader(uint8_t* out, bool structured, uint32_t error, uint64_t cookie,
                   ReplyKind kind, uint64_t offset, uint32_t data_bytes) {
  uint8_t* p = out;
  auto put = [&p](auto v) {
    std::memcpy(p, &v, sizeof v);
    p += sizeof v;
  };
  if (!structured) {
    put(htobe32(kSimpleReplyMagic));
    put(htobe32(error));
    put(htobe64(cookie));
    return kSimpleReplyBytes;
  }
  const uint16_t type = error != 0                      ? kReplyTypeError
                        : kind == ReplyKind::kReadData    ? kReplyTypeOffsetData
                        : kind == ReplyKind::kBlockStatus ? kReplyTypeBlockStatus
                                                          : kReplyTypeNone;
  const size_t head = ReplyHeaderBytes(true, error, kind);
  put(htobe32(kStructuredReplyMagic));
  put(static_cast<uint16_t>(htobe16(kReplyFlagDone)));
  put(static_cast<uint16_t>(htobe16(type)));
  put(htobe64(cookie));
  const uint32_t data = error != 0 || kind == ReplyKind::kNone ? 0 : data_bytes;
  put(htobe32(static_cast<uint32_t>(head - kStructuredReplyBytes + data)));
  if (error != 0) {
    put(htobe32(error));
    put(uint16_t{0});  // no message
  } else if (kind == ReplyKind::kReadData) {
    put(htobe64(offset));
  }
  return head;
}

uint32_t ReplyErrnoFor(absl::StatusCode code, bool read, bool out_of_memory) {
  switch (code) {
    case absl::StatusCode::kOk:
      return 0;
    case absl::StatusCode::kInvalidArgument:
      return EINVAL;
    case absl::StatusCode::kOutOfRange:
      // The protocol's words: a write (trim, zeroing) past the end is ENOSPC.
      return read ? EINVAL : ENOSPC;
    case absl::StatusCode::kResourceExhausted:
      return out_of_memory ? ENOMEM : ENOSPC;
    case absl::StatusCode::kPermissionDenied:
    case absl::StatusCode::kUnauthenticated:
    case absl::StatusCode::kFailedPrecondition:
      return EPERM;
    case absl::StatusCode::kUnavailable:
      return ESHUTDOWN;
    default:
      return EIO;
  }
}

}  // namespace cowblk::nbd
