#include "server/transport/nbd/handshake.h"

#include "absl/strings/str_cat.h"
#include "server/store/client_text.h"
#include "server/transport/nbd/handshake_steps.h"

namespace cowblk::nbd {
namespace {

// Sets why the handshake ends; returns null (for `return Fail(...)`).
std::nullptr_t Fail(std::string* why, std::string reason) {
  *why = std::move(reason);
  return nullptr;
}

}  // namespace

bool Handshake::SendOptionReply(uint32_t option, uint32_t type, const std::string& data) {
  const std::string m = OptionReply(option, type, data);
  return SendAll(fd_, m.data(), m.size());
}

std::shared_ptr<store::VolumeHandle> Handshake::Run(std::string* why) {
  const absl::StatusOr<bool> no_zeroes = Greet(fd_, in_);
  if (!no_zeroes.ok()) return Fail(why, std::string(no_zeroes.status().message()));
  while (true) {
    absl::StatusOr<ClientOption> next = TakeOption(in_);
    if (!next.ok()) return Fail(why, std::string(next.status().message()));
    const uint32_t option = next->option;
    const auto length = static_cast<uint32_t>(next->data.size());
    const std::string& data = next->data;
    switch (option) {
      case kOptExportName: {
        auto volume = store_->FindVolume(data);
        // This option has no error reply: the connection just ends.
        if (!volume.ok()) {
          return Fail(why, absl::StrCat("export_name: ", volume.status().message()));
        }
        const std::string m = ExportNameReply((*volume)->size(), kTransmissionFlags, *no_zeroes);
        if (!SendAll(fd_, m.data(), m.size())) return Fail(why, "handshake: send failed");
        Chose(data);
        return *std::move(volume);
      }
      case kOptAbort:
        SendOptionReply(option, kRepAck, "");
        return Fail(why, "the client aborted the handshake");
      case kOptList:
        if (!List(length, why)) return nullptr;
        break;
      case kOptInfo:
      case kOptGo: {
        std::shared_ptr<store::VolumeHandle> chosen;
        if (!InfoOrGo(option, data, &chosen, why)) return nullptr;
        if (chosen) return chosen;
        break;
      }
      case kOptStructuredReply: {
        const bool valid = length == 0;
        if (valid) negotiated_.structured_replies = true;
        if (!SendOptionReply(option, valid ? kRepAck : kRepErrInvalid,
                             valid ? "" : "NBD_OPT_STRUCTURED_REPLY takes no data")) {
          return Fail(why, "send failed");
        }
        break;
      }
      case kOptListMetaContext:
      case kOptSetMetaContext:
        if (!MetaContext(option, data, why)) return nullptr;
        break;
      default:
        if (!SendOptionReply(option, kRepErrUnsup,
                             absl::StrCat("option ", option, " is not supported"))) {
          return Fail(why, "send failed");
        }
    }
  }
}

bool Handshake::List(uint32_t length, std::string* why) {
  if (length != 0) {
    if (!SendOptionReply(kOptList, kRepErrInvalid, "NBD_OPT_LIST takes no data")) {
      *why = "send failed";
      return false;
    }
    return true;
  }
  bool ok = true;
  for (const store::VolumeInfo& v : store_->ListVolumes("", 1 << 20)) {
    if (!v.ready) continue;
    ok = ok && SendOptionReply(kOptList, kRepServer, ListEntry(v.name));
  }
  if (!ok || !SendOptionReply(kOptList, kRepAck, "")) {
    *why = "send failed";
    return false;
  }
  return true;
}

bool Handshake::InfoOrGo(uint32_t option, const std::string& data,
                         std::shared_ptr<store::VolumeHandle>* chosen, std::string* why) {
  auto send = [&](uint32_t type, const std::string& payload) {
    if (SendOptionReply(option, type, payload)) return true;
    *why = "send failed";
    return false;
  };
  const std::optional<std::string> name = ParseInfoOrGoName(data);
  if (!name) return send(kRepErrInvalid, "malformed NBD_OPT_GO/NBD_OPT_INFO");
  auto volume = store_->FindVolume(*name);
  if (!volume.ok()) return send(kRepErrUnknown, store::ForClients(volume.status().message()));
  if (!send(kRepInfo, InfoExport((*volume)->size(), kTransmissionFlags)) ||
      !send(kRepInfo, InfoBlockSize(kMinBlock, kPreferredBlock)) || !send(kRepAck, "")) {
    return false;
  }
  if (option == kOptGo) {
    Chose(*name);
    *chosen = *std::move(volume);
  }
  return true;
}

void Handshake::Chose(const std::string& name) {
  negotiated_.base_allocation = base_allocation_for_ == name;
}

bool Handshake::MetaContext(uint32_t option, const std::string& data, std::string* why) {
  auto send = [&](uint32_t type, const std::string& payload) {
    if (SendOptionReply(option, type, payload)) return true;
    *why = "send failed";
    return false;
  };
  const bool listing = option == kOptListMetaContext;
  // Block status answers are structured replies.
  if (!negotiated_.structured_replies) {
    return send(kRepErrInvalid, "negotiate NBD_OPT_STRUCTURED_REPLY first");
  }
  const std::optional<MetaContextOption> o = ParseMetaContextOption(data);
  if (!o) return send(kRepErrInvalid, "malformed NBD_OPT_LIST/SET_META_CONTEXT");
  auto volume = store_->FindVolume(o->export_name);
  if (!volume.ok()) return send(kRepErrUnknown, store::ForClients(volume.status().message()));
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
