#include "server/transport/nbd/handshake.h"

#include "absl/strings/str_cat.h"
#include "server/store/client_text.h"

namespace cowblk::nbd {
namespace {

// Sets why the handshake ends; returns null (for `return Fail(...)`).
std::nullptr_t Fail(std::string* why, std::string reason) {
  *why = std::move(reason);
  return nullptr;
}

}  // namespace

bool Handshake::SendOptionReply(uint32_t option, uint32_t type, const std::string& data) {
  std::string m;
  Put64(&m, kRepMagic);
  Put32(&m, option);
  Put32(&m, type);
  Put32(&m, static_cast<uint32_t>(data.size()));
  m += data;
  return SendAll(fd_, m.data(), m.size());
}

std::shared_ptr<store::VolumeHandle> Handshake::Run(std::string* why) {
  std::string hello;
  Put64(&hello, kNbdMagic);
  Put64(&hello, kOptMagic);
  Put16(&hello, kFlagFixedNewstyle | kFlagNoZeroes);
  if (!SendAll(fd_, hello.data(), hello.size())) return Fail(why, "handshake: send failed");
  uint8_t b[16];
  if (!in_->Take(b, 4)) return Fail(why, "handshake: no client flags");
  const uint32_t client_flags = Get32(b);
  if (absl::Status s = CheckClientFlags(client_flags); !s.ok()) {
    return Fail(why, std::string(s.message()));
  }
  const bool no_zeroes = (client_flags & kFlagNoZeroes) != 0;
  while (true) {
    if (!in_->Take(b, 16)) return Fail(why, "handshake: ended during option haggling");
    absl::StatusOr<OptionHeader> header = ParseOptionHeader(b);
    if (!header.ok()) return Fail(why, std::string(header.status().message()));
    const uint32_t option = header->option;
    const uint32_t length = header->length;
    std::string data;
    if (!in_->TakeString(&data, length)) return Fail(why, "handshake: ended in an option");
    switch (option) {
      case kOptExportName: {
        auto volume = store_->FindVolume(data);
        // This option has no error reply: the connection just ends.
        if (!volume.ok()) {
          return Fail(why, absl::StrCat("export_name: ", volume.status().message()));
        }
        std::string m;
        Put64(&m, (*volume)->size());
        Put16(&m, kTransmissionFlags);
        if (!no_zeroes) m.append(124, '\0');
        if (!SendAll(fd_, m.data(), m.size())) return Fail(why, "handshake: send failed");
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
    std::string m;
    Put32(&m, static_cast<uint32_t>(v.name.size()));
    m += v.name;
    ok = ok && SendOptionReply(kOptList, kRepServer, m);
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
  std::string info;
  Put16(&info, kInfoExport);
  Put64(&info, (*volume)->size());
  Put16(&info, kTransmissionFlags);
  std::string sizes;
  Put16(&sizes, kInfoBlockSize);
  Put32(&sizes, kMinBlock);
  Put32(&sizes, kPreferredBlock);
  Put32(&sizes, kMaxBlock);
  if (!send(kRepInfo, info) || !send(kRepInfo, sizes) || !send(kRepAck, "")) return false;
  if (option == kOptGo) *chosen = *std::move(volume);
  return true;
}

}  // namespace cowblk::nbd
