#include "server/transport/nbd/handshake_steps.h"

#include "common/nbd_wire.h"
#include "server/transport/nbd/wire_parse.h"

namespace cowblk::nbd {

absl::StatusOr<bool> Greet(int fd, SocketReader* in) {
  const std::string hello = Greeting();
  if (!SendAll(fd, hello.data(), hello.size())) {
    return absl::AbortedError("handshake: send failed");
  }
  uint8_t b[4];
  if (!in->Take(b, 4)) return absl::AbortedError("handshake: no client flags");
  const uint32_t client_flags = Get32(b);
  if (absl::Status s = CheckClientFlags(client_flags); !s.ok()) return s;
  return (client_flags & kFlagNoZeroes) != 0;
}

absl::StatusOr<ClientOption> TakeOption(SocketReader* in) {
  uint8_t b[16];
  if (!in->Take(b, 16)) return absl::AbortedError("handshake: ended during option haggling");
  absl::StatusOr<OptionHeader> header = ParseOptionHeader(b);
  if (!header.ok()) return header.status();
  ClientOption o;
  o.option = header->option;
  if (!in->TakeString(&o.data, header->length)) {
    return absl::AbortedError("handshake: ended in an option");
  }
  return o;
}

bool ReplyOptions::Answer(int fd, uint32_t option, const std::string& data,
                          const std::function<std::string(const std::string&)>& unknown) {
  if (option != kOptStructuredReply) return MetaContext(fd, option, data, unknown);
  const bool valid = data.empty();
  if (valid) structured_ = true;
  const std::string m = OptionReply(option, valid ? kRepAck : kRepErrInvalid,
                                    valid ? "" : "NBD_OPT_STRUCTURED_REPLY takes no data");
  return SendAll(fd, m.data(), m.size());
}

bool ReplyOptions::MetaContext(int fd, uint32_t option, const std::string& data,
                               const std::function<std::string(const std::string&)>& unknown) {
  auto send = [&](uint32_t type, const std::string& payload) {
    const std::string m = OptionReply(option, type, payload);
    return SendAll(fd, m.data(), m.size());
  };
  const bool listing = option == kOptListMetaContext;
  // Block status answers are structured replies.
  if (!structured_) return send(kRepErrInvalid, "negotiate NBD_OPT_STRUCTURED_REPLY first");
  const std::optional<MetaContextOption> o = ParseMetaContextOption(data);
  if (!o) return send(kRepErrInvalid, "malformed NBD_OPT_LIST/SET_META_CONTEXT");
  if (const std::string why = unknown(o->export_name); !why.empty()) {
    return send(kRepErrUnknown, why);
  }
  // Listing without a query lists every context; SET replaces the selection.
  bool selected = listing && o->queries.empty();
  for (const std::string& q : o->queries) selected = selected || SelectsBaseAllocation(q, listing);
  if (!listing) {
    base_allocation_for_.reset();
    if (selected) base_allocation_for_ = o->export_name;
  }
  // In a list the id is reserved: zero.
  if (selected && !send(kRepMetaContext,
                        MetaContextEntry(listing ? 0 : kBaseAllocationId, kBaseAllocation))) {
    return false;
  }
  return send(kRepAck, "");
}

}  // namespace cowblk::nbd
