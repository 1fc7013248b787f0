#include "server/transport/nbd/transmission.h"

#include <optional>

#include "absl/strings/str_cat.h"
#include "common/log.h"
#include "common/nbd_wire.h"
#include "server/core/out_of_memory.h"
#include "common/block_range.h"
#include "server/transport/nbd/block_status.h"
#include "server/transport/nbd/handshake.h"
#include "server/transport/nbd/wire_parse.h"

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
    const RequestHeader h =
        ParseRequestHeader(reinterpret_cast<const uint8_t*>(in_->Consume(kRequestBytes)));
    const RequestVerdict verdict = CheckRequest(h, block_status_);
    if (verdict == RequestVerdict::kBadMagic) {
      why = "malformed request (bad magic)";
      Log(LogLevel::kWarning, "nbd_malformed", {{"peer", peer_}, {"error", why}});
      break;
    }
    header_only_ = h.type == kCmdWrite && h.length >= kLargeWriteBytes;
    if (verdict == RequestVerdict::kDisconnect) {
      why = "the client disconnected";
      break;
    }
    ++requests_;
    if (!Take(h, verdict, &why)) break;
  }
  pipeline_->FlushSubmissions();
  return why;
}

bool Transmission::Take(const RequestHeader& h, RequestVerdict verdict, std::string* why) {
  const std::optional<engine::OpType> op = OpOf(h.type);
  const bool transfers = h.type == kCmdRead || h.type == kCmdWrite;
  core::Call* call;
  // The server's byte budget may have no room for it yet: wait for its call.
  while ((call = pipeline_->Begin(h.cookie, transfers ? h.length : 0)) == nullptr) {
    pipeline_->FlushSubmissions();
    if (!sender_->WaitForRoom()) {
      *why = "a reply could not be sent";
      return false;
    }
  }
  call->op = op;
  call->offset = h.offset;
  call->length = h.length;
  call->fua = (h.flags & kCmdFlagFua) != 0;
  call->no_hole = h.type == kCmdWriteZeroes && (h.flags & kCmdFlagNoHole) != 0;
  if (verdict == RequestVerdict::kWriteTooLarge) {
    // Its payload cannot be taken in: answer, then end the connection
    // (the stream is out of step from here).
    *why = absl::StrCat("a write of ", h.length, " bytes (the limit is ", kMaxBlock, ")");
    pipeline_->Refuse(call, absl::InvalidArgumentError(*why));
    Log(LogLevel::kWarning, "nbd_malformed", {{"peer", peer_}, {"error", *why}});
    return false;
  }
  if (const uint32_t length = PayloadBytes(h); length > 0) {
    // Without memory for its payload, this write fails (ENOMEM) and the
    // connection goes on past the payload.
    char* payload = call->PayloadBuffer();
    if (length > in_->buffered()) pipeline_->FlushSubmissions();
    if (payload != nullptr ? !in_->Take(payload, length) : !in_->Skip(length)) {
      idle_timed_out_ = in_->timed_out();
      *why = in_->timed_out() ? "idle timeout: the client stalled in a write's payload"
                              : "the client closed the connection in a write";
      // Not written (the reply will hardly reach anyone).
      pipeline_->Refuse(call, absl::AbortedError(*why));
      return false;
    }
    if (payload == nullptr) {
      pipeline_->Refuse(call, core::OutOfMemory("a write's payload"));
      return true;
    }
  }
  if (verdict == RequestVerdict::kUnknownCommand) {
    pipeline_->Refuse(call,
                      absl::InvalidArgumentError(absl::StrCat("unknown command ", h.type)));
    return true;
  }
  if (verdict == RequestVerdict::kBadFlags) {
    pipeline_->Refuse(call, absl::InvalidArgumentError(
                                absl::StrCat("flags ", h.flags, " are not allowed with command ",
                                             op ? engine::OpTypeName(*op) : "block_status")));
    return true;
  }
  if (h.type == kCmdBlockStatus) {
    AnswerBlockStatus(call, h);
    return true;
  }
  // Requests parsed before a large write are not held while it writes.
  if (h.type == kCmdWrite && pipeline_->inline_writes() && h.length >= kLargeWriteBytes) {
    pipeline_->FlushSubmissions();
  }
  pipeline_->Submit(call);
  return true;
}

void Transmission::AnswerBlockStatus(core::Call* call, const RequestHeader& h) {
  store::VolumeHandle& volume = *pipeline_->volume();
  absl::Status valid = CheckBlockRange(h.offset, h.length, volume.size(), kExtentRules);
  if (!valid.ok()) {
    // The protocol's word for a status past the end is EINVAL, not ENOSPC.
    pipeline_->Refuse(call, absl::InvalidArgumentError(valid.message()));
    return;
  }
  // The engine thread answers the bitmap read: what was queued goes first.
  pipeline_->FlushSubmissions();
  std::string payload = BlockStatusPayload(
      kBaseAllocationId,
      AllocationExtents(volume, h.offset, h.length, (h.flags & kCmdFlagReqOne) != 0));
  // The reply's payload: ReplySender sends `length` bytes of data().
  call->length = payload.size();
  call->UseString(std::move(payload));
  pipeline_->AnswerDirectly(call);
}

}  // namespace cowblk::nbd
