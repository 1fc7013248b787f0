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

Grant Handshake::GrantFor(const std::string& name) const {
  if (!security_->access) return Grant::kWrite;
  return security_->access(identity_, name);
}

absl::StatusOr<std::shared_ptr<store::VolumeHandle>> Handshake::Open(const std::string& name,
                                                                     Grant* grant) const {
  *grant = GrantFor(name);
  if (*grant == Grant::kNone) {
    // As for a volume that is not there: the client learns nothing.
    return absl::NotFoundError(absl::StrCat("volume ", name, " not found"));
  }
  return store_->FindVolume(name);
}

bool Handshake::BeforeTls(uint32_t option, const std::string& data, std::string* why) {
  auto send = [&](uint32_t type, const std::string& payload) {
    if (SendOptionReply(option, type, payload)) return true;
    *why = "send failed";
    return false;
  };
  if (option != kOptStartTls) {
    return send(kRepErrTlsReqd, "this server requires TLS: NBD_OPT_STARTTLS first");
  }
  if (!data.empty()) return send(kRepErrInvalid, "NBD_OPT_STARTTLS takes no data");
  if (!send(kRepAck, "")) return false;
  absl::StatusOr<std::string> identity = security_->start_tls();
  if (!identity.ok()) {
    *why = std::string(identity.status().message());
    return false;
  }
  identity_ = *std::move(identity);
  tls_done_ = true;
  return true;
}

std::shared_ptr<store::VolumeHandle> Handshake::Run(std::string* why) {
  const absl::StatusOr<bool> no_zeroes = Greet(fd_, in_);
  if (!no_zeroes.ok()) return Fail(why, std::string(no_zeroes.status().message()));
  const bool tls_required = static_cast<bool>(security_->start_tls);
  while (true) {
    absl::StatusOr<ClientOption> next = TakeOption(in_);
    if (!next.ok()) return Fail(why, std::string(next.status().message()));
    const uint32_t option = next->option;
    const auto length = static_cast<uint32_t>(next->data.size());
    const std::string& data = next->data;
    if (tls_required && !tls_done_ && option != kOptAbort) {
      // This option has no error reply: the connection just ends.
      if (option == kOptExportName) return Fail(why, "export_name: TLS is required");
      if (!BeforeTls(option, data, why)) return nullptr;
      continue;
    }
    switch (option) {
      case kOptExportName: {
        auto volume = Open(data, &grant_);
        // This option has no error reply: the connection just ends.
        if (!volume.ok()) {
          return Fail(why, absl::StrCat("export_name: ", volume.status().message()));
        }
        const std::string m =
            ExportNameReply(
            (*volume)->size(),
            kTransmissionFlags | (grant_ == Grant::kWrite ? 0 : kTxReadOnly), *no_zeroes);
        if (!SendAll(fd_, m.data(), m.size())) return Fail(why, "handshake: send failed");
        negotiated_ = reply_options_.For(data);
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
      case kOptStartTls:
        if (tls_required) {
          // TLS is up already.
          if (!SendOptionReply(option, kRepErrInvalid, "TLS is already negotiated")) {
            return Fail(why, "send failed");
          }
          break;
        }
        [[fallthrough]];
      default:
        if (ReplyOptions::Handles(option)) {
          auto unknown = [this](const std::string& name) {
            Grant grant;
            auto volume = Open(name, &grant);
            return volume.ok() ? std::string() : store::ForClients(volume.status().message());
          };
          if (!reply_options_.Answer(fd_, option, data, unknown)) return Fail(why, "send failed");
        } else if (!SendOptionReply(option, kRepErrUnsup,
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
    if (!v.ready || GrantFor(v.name) == Grant::kNone) continue;
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
  Grant grant;
  auto volume = Open(*name, &grant);
  if (!volume.ok()) return send(kRepErrUnknown, store::ForClients(volume.status().message()));
  const uint16_t flags = kTransmissionFlags | (grant == Grant::kWrite ? 0 : kTxReadOnly);
  if (!send(kRepInfo, InfoExport((*volume)->size(), flags)) ||
      !send(kRepInfo, InfoBlockSize(kMinBlock, kPreferredBlock)) || !send(kRepAck, "")) {
    return false;
  }
  if (option == kOptGo) {
    grant_ = grant;
    negotiated_ = reply_options_.For(*name);
    *chosen = *std::move(volume);
  }
  return true;
}

}  // namespace cowblk::nbd
