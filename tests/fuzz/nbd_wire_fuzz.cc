// libFuzzer target for the NBD export's parser (server/transport/nbd/
// wire_parse.h): the input is what a client sends on the socket, from its
// flags through option haggling to transmission requests and their
// payloads, walked the way Handshake and Transmission walk it. Every byte of
// it is a stranger's, so each verdict must agree with the bytes it came from
// and nothing a verdict lets through may exceed the export's limits.

#include <cstddef>
#include <cstdint>
#include <cstring>
#include <optional>
#include <string>

#include "absl/status/statusor.h"
#include "common/nbd_wire.h"
#include "server/transport/nbd/wire_parse.h"
#include "tests/fuzz/fuzz_check.h"

namespace cowblk::nbd {
namespace {

// The client's bytes, taken in order like SocketReader::Take.
class Stream {
 public:
  Stream(const uint8_t* data, size_t size) : data_(data), size_(size) {}
  // The next `n` bytes, or null when the client "closed" first.
  const uint8_t* Take(size_t n) {
    if (n > size_ - pos_) return nullptr;
    const uint8_t* p = data_ + pos_;
    pos_ += n;
    return p;
  }

 private:
  const uint8_t* const data_;
  const size_t size_;
  size_t pos_ = 0;
};

bool IsBlockCommand(uint16_t type) {
  return type == kCmdRead || type == kCmdWrite || type == kCmdFlush || type == kCmdTrim ||
         type == kCmdWriteZeroes;
}

// GO/INFO data that parsed must be exactly its own encoding: the name's
// length, the name, the count and as many information types.
void CheckInfoOrGo(const std::string& data, const std::string& name) {
  const auto* p = reinterpret_cast<const uint8_t*>(data.data());
  FUZZ_CHECK(data.size() >= 6 + name.size());
  FUZZ_CHECK(Get32(p) == name.size());
  FUZZ_CHECK(data.compare(4, name.size(), name) == 0);
  FUZZ_CHECK(data.size() == 6 + name.size() + 2 * size_t{Get16(p + 4 + name.size())});
}

// LIST/SET_META_CONTEXT data that parsed must be exactly its own encoding.
void CheckMetaContext(const std::string& data, const MetaContextOption& o) {
  std::string again;
  Put32(&again, static_cast<uint32_t>(o.export_name.size()));
  again += o.export_name;
  Put32(&again, static_cast<uint32_t>(o.queries.size()));
  for (const std::string& q : o.queries) {
    Put32(&again, static_cast<uint32_t>(q.size()));
    again += q;
  }
  FUZZ_CHECK(again == data);
}

// Option haggling; true when the client picked an export (transmission
// follows), false when the handshake ended. `*block_status`: the last
// SET_META_CONTEXT selected base:allocation (the export's name aside).
bool Handshake(Stream* in, bool* block_status) {
  const uint8_t* flags = in->Take(4);
  if (flags == nullptr) return false;
  const uint32_t client_flags = Get32(flags);
  const bool flags_ok = CheckClientFlags(client_flags).ok();
  FUZZ_CHECK(flags_ok == ((client_flags & ~uint32_t{kFlagFixedNewstyle | kFlagNoZeroes}) == 0));
  if (!flags_ok) return false;
  while (true) {
    const uint8_t* b = in->Take(16);
    if (b == nullptr) return false;
    absl::StatusOr<OptionHeader> header = ParseOptionHeader(b);
    FUZZ_CHECK(header.ok() == (Get64(b) == kOptMagic && Get32(b + 12) <= kMaxOptionBytes));
    if (!header.ok()) {
      FUZZ_CHECK(!header.status().message().empty());
      return false;
    }
    FUZZ_CHECK(header->option == Get32(b + 8) && header->length == Get32(b + 12));
    const uint8_t* payload = in->Take(header->length);
    if (payload == nullptr) return false;
    const std::string data(reinterpret_cast<const char*>(payload), header->length);
    switch (header->option) {
      case kOptExportName:
        return true;
      case kOptAbort:
        return false;
      case kOptInfo:
      case kOptGo: {
        const std::optional<std::string> name = ParseInfoOrGoName(data);
        if (!name) break;  // answered NBD_REP_ERR_INVALID; haggling goes on
        CheckInfoOrGo(data, *name);
        if (header->option == kOptGo) return true;
        break;
      }
      case kOptListMetaContext:
      case kOptSetMetaContext: {
        const std::optional<MetaContextOption> o = ParseMetaContextOption(data);
        if (!o) break;  // answered NBD_REP_ERR_INVALID
        CheckMetaContext(data, *o);
        if (header->option == kOptSetMetaContext) {
          *block_status = false;
          for (const std::string& q : o->queries) {
            *block_status = *block_status || SelectsBaseAllocation(q, false);
          }
        }
        break;
      }
      default:
        break;
    }
  }
}

void CheckVerdict(const uint8_t* raw, const RequestHeader& h, RequestVerdict v,
                  bool block_status) {
  // The header is read field by field, nothing lost or shifted.
  std::string again;
  Put32(&again, h.magic);
  Put16(&again, h.flags);
  Put16(&again, h.type);
  Put64(&again, h.cookie);
  Put64(&again, h.offset);
  Put32(&again, h.length);
  FUZZ_CHECK(again.size() == kRequestBytes && std::memcmp(again.data(), raw, kRequestBytes) == 0);
  FUZZ_CHECK((v == RequestVerdict::kBadMagic) == (h.magic != kRequestMagic));
  if (v == RequestVerdict::kBadMagic) return;
  FUZZ_CHECK((v == RequestVerdict::kDisconnect) == (h.type == kCmdDisc));
  FUZZ_CHECK((v == RequestVerdict::kWriteTooLarge) == (h.type == kCmdWrite && h.length > kMaxBlock));
  const bool status = block_status && h.type == kCmdBlockStatus;
  FUZZ_CHECK((v == RequestVerdict::kUnknownCommand) ==
             (!IsBlockCommand(h.type) && !status && h.type != kCmdDisc));
  if (v == RequestVerdict::kSubmit || v == RequestVerdict::kBadFlags) {
    FUZZ_CHECK(IsBlockCommand(h.type) || status);
    FUZZ_CHECK(PayloadBytes(h) <= kMaxBlock);
    FUZZ_CHECK(PayloadBytes(h) == (h.type == kCmdWrite ? h.length : 0));
  }
  if (v == RequestVerdict::kSubmit) {
    // Only FUA, NO_HOLE and FAST_ZERO on WRITE_ZEROES and REQ_ONE on
    // BLOCK_STATUS get through.
    const uint16_t allowed = status ? kCmdFlagReqOne
                             : h.type == kCmdWriteZeroes
                                 ? (kCmdFlagFua | kCmdFlagNoHole | kCmdFlagFastZero)
                                 : kCmdFlagFua;
    FUZZ_CHECK((h.flags & ~allowed) == 0);
  }
}

void Transmission(Stream* in, bool block_status) {
  while (true) {
    const uint8_t* raw = in->Take(kRequestBytes);
    if (raw == nullptr) return;
    const RequestHeader h = ParseRequestHeader(raw);
    const RequestVerdict v = CheckRequest(h, block_status);
    CheckVerdict(raw, h, v, block_status);
    switch (v) {
      case RequestVerdict::kBadMagic:
      case RequestVerdict::kDisconnect:
      case RequestVerdict::kWriteTooLarge:
        return;
      case RequestVerdict::kUnknownCommand:
        break;
      case RequestVerdict::kBadFlags:
      case RequestVerdict::kSubmit:
        if (in->Take(PayloadBytes(h)) == nullptr) return;
        break;
    }
  }
}

int FuzzOneInput(const uint8_t* data, size_t size) {
  Stream in(data, size);
  bool block_status = false;
  if (Handshake(&in, &block_status)) Transmission(&in, block_status);
  return 0;
}

}  // namespace
}  // namespace cowblk::nbd

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  return cowblk::nbd::FuzzOneInput(data, size);
}
