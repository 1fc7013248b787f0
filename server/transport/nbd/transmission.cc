#include "server/transport/nbd/transmission.h"

#include <optional>

#include "absl/strings/str_cat.h"
#include "common/log.h"
#include "common/nbd_wire.h"
#include "server/transport/nbd/handshake.h"

namespace cowblk::nbd {
namespace {

std::optional<engine::OpType> OpOf(uint16_t type) {
  switch (type) {
    case kCmdRead:
      return engine::OpType::kRead;
    case kCmdWrite:
      return engine::OpType::kWrite;
    case kCmdFlush:
      return engine::OpType::kFlush;
    case kCmdTrim:
      return engine::OpType::kTrim;
    case kCmdWriteZeroes:
      return engine::OpType::kWriteZeroes;
    default:
      return std::nullopt;
  }
}

}  // namespace

std::string Transmission::Run() {
  std::string why;
  while (true) {
    if (in_->buffered() < kRequestBytes) {
      pipeline_->FlushSubmissions();  // do not hold submitted requests while waiting
      if (in_->Fill(header_only_, kRequestBytes)) continue;
      // A client waiting for answers is not idle, however long they take.
      if (in_->timed_out() && !pipeline_->idle()) continue;
      idle_timed_out_ = in_->timed_out();
      why = !in_->timed_out()       ? "the client closed the connection"
            : in_->buffered() == 0 ? "idle timeout: nothing received, nothing in flight"
                                   : "idle timeout: the client stalled in a request header";
      break;
    }
    if (!pipeline_->HasRoom()) pipeline_->FlushSubmissions();
    if (!sender_->WaitForRoom()) {
      why = "a reply could not be sent";
      break;
    }
    const auto* h = reinterpret_cast<const uint8_t*>(in_->Consume(kRequestBytes));
    const uint32_t magic = Get32(h);
    const uint16_t flags = Get16(h + 4);
    const uint16_t type = Get16(h + 6);
    const uint64_t cookie = Get64(h + 8);
    const uint64_t offset = Get64(h + 16);
    const uint32_t length = Get32(h + 24);
    if (magic != kRequestMagic) {
      why = "malformed request (bad magic)";
      Log(LogLevel::kWarning, "nbd_malformed", {{"peer", peer_}, {"error", why}});
      break;
    }
    header_only_ = type == kCmdWrite && length >= kLargeWriteBytes;
    if (type == kCmdDisc) {
      why = "the client disconnected";
      break;
    }
    ++requests_;
    if (!Take(flags, type, cookie, offset, length, &why)) break;
  }
  pipeline_->FlushSubmissions();
  return why;
}

bool Transmission::Take(uint16_t flags, uint16_t type, uint64_t cookie, uint64_t offset,
                        uint32_t length, std::string* why) {
  const std::optional<engine::OpType> op = OpOf(type);
  const bool transfers = type == kCmdRead || type == kCmdWrite;
  core::Call* call = pipeline_->Begin(cookie, transfers ? length : 0);
  call->op = op;
  call->offset = offset;
  call->length = length;
  call->fua = (flags & kCmdFlagFua) != 0;
  if (type == kCmdWrite) {
    if (length > kMaxBlock) {
      // Its payload cannot be taken in: answer, then end the connection
      // (the stream is out of step from here).
      *why = absl::StrCat("a write of ", length, " bytes (the limit is ", kMaxBlock, ")");
      pipeline_->Refuse(call, absl::InvalidArgumentError(*why));
      Log(LogLevel::kWarning, "nbd_malformed", {{"peer", peer_}, {"error", *why}});
      return false;
    }
    char* payload = length > 0 ? call->PayloadBuffer() : nullptr;
    if (length > 0 && payload == nullptr) {
      *why = "out of memory for a write's payload";
      pipeline_->Refuse(call, absl::ResourceExhaustedError(*why));
      return false;
    }
    if (length > in_->buffered()) pipeline_->FlushSubmissions();
    if (!in_->Take(payload, length)) {
      idle_timed_out_ = in_->timed_out();
      *why = in_->timed_out() ? "idle timeout: the client stalled in a write's payload"
                              : "the client closed the connection in a write";
      // Not written (the reply will hardly reach anyone).
      pipeline_->Refuse(call, absl::AbortedError(*why));
      return false;
    }
  }
  if (!op) {
    pipeline_->Refuse(call, absl::InvalidArgumentError(absl::StrCat("unknown command ", type)));
    return true;
  }
  const uint16_t allowed = type == kCmdWriteZeroes ? (kCmdFlagFua | kCmdFlagNoHole) : kCmdFlagFua;
  if ((flags & ~allowed) != 0) {
    pipeline_->Refuse(call, absl::InvalidArgumentError(
                                absl::StrCat("flags ", flags, " are not allowed with command ",
                                             engine::OpTypeName(*op))));
    return true;
  }
  // Requests parsed before a large write are not held while it writes.
  if (type == kCmdWrite && pipeline_->inline_writes() && length >= kLargeWriteBytes) {
    pipeline_->FlushSubmissions();
  }
  pipeline_->Submit(call);
  return true;
}

}  // namespace cowblk::nbd
