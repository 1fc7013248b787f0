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
      default:
        if (ReplyOptions::Handles(option)) {
          auto unknown = [this](const std::string& name) {
            auto volume = store_->FindVolume(name);
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
    negotiated_ = reply_options_.For(*name);
    *chosen = *std::move(volume);
  }
  return true;
}

}  // namespace cowblk::nbd
