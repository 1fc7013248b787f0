#include "client/gateway/handshake.h"

#include "absl/strings/str_cat.h"
#include "server/transport/nbd/handshake_steps.h"
#include "server/transport/nbd/wire_parse.h"

namespace cowblk::gateway {
namespace {

using namespace cowblk::nbd;  // the protocol's numbers

class Handshake {
 public:
  Handshake(int fd, SocketReader* in, const Exports& exports)
      : fd_(fd), in_(in), exports_(exports) {}

  // What the client negotiated for the volume Run returned.
  const Negotiated& negotiated() const { return negotiated_; }

  Volume* Run(std::string* why) {
    const absl::StatusOr<bool> no_zeroes = Greet(fd_, in_);
    if (!no_zeroes.ok()) return Fail(why, std::string(no_zeroes.status().message()));
    while (true) {
      absl::StatusOr<ClientOption> next = TakeOption(in_);
      if (!next.ok()) return Fail(why, std::string(next.status().message()));
      const uint32_t option = next->option;
      const std::string& data = next->data;
      bool sent = true;
      switch (option) {
        case kOptExportName: {
          // This option has no error reply: the connection just ends.
          Volume* v = Find(data);
          if (v == nullptr) return Fail(why, absl::StrCat("export_name: no export '", data, "'"));
          const std::string m = ExportNameReply(v->size(), kTransmissionFlags, *no_zeroes);
          if (!SendAll(fd_, m.data(), m.size())) return Fail(why, "handshake: send failed");
          negotiated_ = reply_options_.For(data);
          return v;
        }
        case kOptAbort:
          Reply(option, kRepAck, "");
          return Fail(why, "the client aborted the handshake");
        case kOptList:
          sent = List(static_cast<uint32_t>(data.size()));
          break;
        case kOptInfo:
        case kOptGo: {
          Volume* chosen = nullptr;
          sent = InfoOrGo(option, data, &chosen);
          if (sent && chosen != nullptr) return chosen;
          break;
        }
        default:
          if (ReplyOptions::Handles(option)) {
            auto unknown = [this](const std::string& name) {
              return Find(name) != nullptr ? std::string()
                                           : absl::StrCat("no export '", name, "'");
            };
            sent = reply_options_.Answer(fd_, option, data, unknown);
          } else {
            sent = Reply(option, kRepErrUnsup, absl::StrCat("option ", option, " is not supported"));
          }
      }
      if (!sent) return Fail(why, "handshake: send failed");
    }
  }

 private:
  static Volume* Fail(std::string* why, std::string reason) {
    *why = std::move(reason);
    return nullptr;
  }
  // The empty name is the default export when there is only one (as
  // qemu-nbd and nbdkit have it: `nbdfuse --unix S` asks for "").
  Volume* Find(const std::string& name) const {
    if (name.empty() && exports_.size() == 1) return exports_.begin()->second.get();
    auto it = exports_.find(name);
    return it == exports_.end() ? nullptr : it->second.get();
  }
  bool Reply(uint32_t option, uint32_t type, const std::string& data) {
    const std::string m = OptionReply(option, type, data);
    return SendAll(fd_, m.data(), m.size());
  }
  bool List(uint32_t length) {
    if (length != 0) return Reply(kOptList, kRepErrInvalid, "NBD_OPT_LIST takes no data");
    for (const auto& [name, volume] : exports_) {
      if (!Reply(kOptList, kRepServer, ListEntry(name))) return false;
    }
    return Reply(kOptList, kRepAck, "");
  }
  bool InfoOrGo(uint32_t option, const std::string& data, Volume** chosen) {
    const std::optional<std::string> name = ParseInfoOrGoName(data);
    if (!name) return Reply(option, kRepErrInvalid, "malformed NBD_OPT_GO/NBD_OPT_INFO");
    Volume* v = Find(*name);
    if (v == nullptr) return Reply(option, kRepErrUnknown, absl::StrCat("no export '", *name, "'"));
    if (!Reply(option, kRepInfo, InfoExport(v->size(), kTransmissionFlags)) ||
        !Reply(option, kRepInfo, InfoBlockSize(v->sector_size(), 4096)) ||
        !Reply(option, kRepAck, "")) {
      return false;
    }
    if (option == kOptGo) {
      negotiated_ = reply_options_.For(*name);
      *chosen = v;
    }
    return true;
  }

  const int fd_;
  SocketReader* const in_;
  const Exports& exports_;
  ReplyOptions reply_options_;
  Negotiated negotiated_;
};

}  // namespace

Volume* RunHandshake(int fd, nbd::SocketReader* in, const Exports& exports, std::string* why,
                     nbd::Negotiated* negotiated) {
  Handshake handshake(fd, in, exports);
  Volume* v = handshake.Run(why);
  *negotiated = handshake.negotiated();
  return v;
}

}  // namespace cowblk::gateway
