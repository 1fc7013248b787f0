#include "server/service/block_service.h"

#include <grpcpp/support/proto_buffer_reader.h>

#include <cstdlib>
#include <deque>
#include <mutex>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "common/log.h"
#include "common/block_range.h"
#include "server/engine/engine.h"
#include "server/service/status_util.h"

namespace cowblk::service {
namespace {

using cowblk::v1::ReadRequest;
using cowblk::v1::ReadResponse;
using cowblk::v1::SessionRequest;
using cowblk::v1::WriteRequest;
using cowblk::v1::WriteResponse;

absl::StatusOr<engine::OpType> ToEngineOp(cowblk::v1::Op op) {
  switch (op) {
    case cowblk::v1::OP_READ:
      return engine::OpType::kRead;
    case cowblk::v1::OP_WRITE:
      return engine::OpType::kWrite;
    case cowblk::v1::OP_FLUSH:
      return engine::OpType::kFlush;
    case cowblk::v1::OP_TRIM:
      return engine::OpType::kTrim;
    case cowblk::v1::OP_WRITE_ZEROES:
      return engine::OpType::kWriteZeroes;
    default:
      return absl::InvalidArgumentError(absl::StrCat("op: ", static_cast<int>(op), " is not an operation"));
  }
}

// ---- Session -------------------------------------------------------------

// Appends `v` as a protobuf varint.
void PutVarint(std::string* out, uint64_t v) {
  while (v >= 0x80) {
    out->push_back(static_cast<char>(v | 0x80));
    v >>= 7;
  }
  out->push_back(static_cast<char>(v));
}

void FreeReadBuffer(void* p) { std::free(p); }

// Session speaks raw gRPC messages (ByteBuffer) so that a read's bytes go
// from the engine's buffer to the socket without passing through protobuf:
// requests are parsed as SessionRequest; answers are encoded by hand as
// SessionResponse, the read data as a slice that points at the page-aligned
// buffer the engine read into (no zero-fill, no copy into a message).
class SessionReactor final : public grpc::ServerBidiReactor<grpc::ByteBuffer, grpc::ByteBuffer>,
                             public CallTracker::DrainListener,
                             public engine::BatchEndListener {
 public:
  SessionReactor(BlockServiceImpl* service, grpc::CallbackServerContext* ctx)
      : service_(service),
        ctx_(ctx),
        max_in_flight_(service->options().max_in_flight),
        peer_(ctx->peer()) {
    const auto& md = ctx->client_metadata();
    auto it = md.find("cowblk-batch");
    batch_answers_ = it != md.end() && it->second == "1";
    // Tells the client how many requests one message may carry (sent with
    // the first answer).
    ctx->AddInitialMetadata("cowblk-batch-max", std::to_string(max_in_flight_));
    Log(LogLevel::kDebug, "session_started", {{"peer", peer_}});
    reading_ = true;
    StartRead(&in_raw_);
    service->calls()->Watch(this);
  }

  // The drain started: read no more requests; once the ones in flight are
  // answered, end the stream UNAVAILABLE even while a read waits (an idle
  // client would otherwise hold the drain open).
  void OnDrain() override {
    std::lock_guard<std::mutex> lock(mu_);
    if (reads_done_) return;
    reads_done_ = drained_ = true;
    MaybeFinishLocked();
  }

  void OnReadDone(bool ok) override {
    {
      std::lock_guard<std::mutex> lock(mu_);
      if (!ok || finished_) {
        // The client is done, or the stream ended (drained) while this read
        // waited: a request read now goes unanswered, and the client sends
        // it again after the UNAVAILABLE status.
        Log(LogLevel::kDebug, "session_reads_ended",
            {{"volume", volume_ ? volume_->name() : ""},
             {"peer", peer_},
             {"ok", ok ? "1" : "0"},
             {"in_flight", std::to_string(in_flight_)},
             {"cancelled", cancelled_ ? "1" : "0"},
             {"finished", finished_ ? "1" : "0"}});
        reading_ = false;
        reads_done_ = true;
        MaybeFinishLocked();
        return;
      }
      handling_ = true;
      ++messages_read_;
    }
    in_.Clear();
    grpc::Status parsed =
        grpc::GenericDeserialize<grpc::ProtoBufferReader, SessionRequest>(&in_raw_, &in_);
    if (!parsed.ok()) {
      // Not a SessionRequest: answer what is in flight, then end the stream.
      Log(LogLevel::kWarning, "session_malformed", {{"error", parsed.error_message()}});
      std::lock_guard<std::mutex> lock(mu_);
      reading_ = handling_ = false;
      reads_done_ = malformed_ = true;
      MaybeFinishLocked();
      return;
    }
    {
      engine::SubmitBatch batch;  // one engine wake-up for the message's requests
      Handle(&batch);
    }
    std::lock_guard<std::mutex> lock(mu_);
    reading_ = handling_ = false;
    MaybeReadLocked();
    MaybeFinishLocked();
  }

  void OnWriteDone(bool ok) override {
    std::lock_guard<std::mutex> lock(mu_);
    out_raw_.Clear();
    in_flight_ -= answers_written_;
    if (!ok) broken_ = true;
    while (broken_ && !queue_.empty()) {
      delete queue_.front();
      queue_.pop_front();
      --in_flight_;
    }
    if (!queue_.empty()) {
      StartWriteLocked();
    } else {
      writing_ = false;
    }
    MaybeReadLocked();
    MaybeFinishLocked();
  }

  void OnCancel() override {
    std::lock_guard<std::mutex> lock(mu_);
    cancelled_ = true;
    if (in_flight_ != 0 || !reading_) {
      // The client gave up on a stream with requests in it (a deadline):
      // say where they were, for whoever debugs a stuck request.
      Log(LogLevel::kInfo, "session_cancelled",
          {{"volume", volume_ ? volume_->name() : ""},
           {"peer", peer_},
           {"messages_read", std::to_string(messages_read_)},
           {"messages_written", std::to_string(messages_written_)},
           {"in_flight", std::to_string(in_flight_)},
           {"queued_answers", std::to_string(queue_.size())},
           {"reading", reading_ ? "1" : "0"},
           {"reads_done", reads_done_ ? "1" : "0"},
           {"handling", handling_ ? "1" : "0"},
           {"writing", writing_ ? "1" : "0"},
           {"finished", finished_ ? "1" : "0"}});
    }
    MaybeFinishLocked();
  }

  void OnDone() override {
    service_->calls()->Unwatch(this);
    service_->calls()->End();
    delete this;
  }

 private:
  struct Pending {
    ~Pending() { std::free(read_buf); }
    SessionReactor* reactor = nullptr;
    engine::Request request;
    uint64_t id = 0;
    int32_t code = 0;
    std::string message;
    char* read_buf = nullptr;  // a read's answer (page-aligned), until sent
    size_t read_len = 0;
    std::string data;  // write payload, owned here while the engine uses it
  };

  // Handles the message in `in_`: one request, a batch, or both.
  void Handle(engine::SubmitBatch* batch) {
    if (in_.batch_size() == 0) {
      HandleOne(&in_, in_.volume(), absl::OkStatus(), batch);
      return;
    }
    // A batch: the message's own request first (if it holds one), then
    // each request of the batch, as if they had come one per message.
    if (in_.op() != cowblk::v1::OP_UNSPECIFIED || in_.id() != 0 || in_.offset() != 0 ||
        in_.length() != 0 || !in_.data().empty() || in_.fua()) {
      HandleOne(&in_, in_.volume(), absl::OkStatus(), batch);
    }
    uint32_t handled = 0;
    for (SessionRequest& r : *in_.mutable_batch()) {
      absl::Status refusal;
      if (r.batch_size() != 0) {
        refusal = absl::InvalidArgumentError("batch: a request in a batch carries no batch");
      } else if (++handled > max_in_flight_) {
        refusal = absl::ResourceExhaustedError(absl::StrFormat(
            "batch: more than the session's window of %u requests in one message",
            max_in_flight_));
      }
      HandleOne(&r, r.volume().empty() ? in_.volume() : r.volume(), refusal, batch);
    }
  }

  // Handles one request; `volume` names its volume (empty: the one bound),
  // and a non-OK `refusal` answers it with that status.
  void HandleOne(SessionRequest* req, const std::string& volume, const absl::Status& refusal,
                 engine::SubmitBatch* batch) {
    auto* p = new Pending;
    p->reactor = this;
    p->id = req->id();
    {
      std::lock_guard<std::mutex> lock(mu_);
      ++in_flight_;
    }
    absl::Status s = refusal;
    if (s.ok()) s = Bind(volume);
    auto op = ToEngineOp(req->op());
    if (s.ok() && !op.ok()) s = op.status();
    if (s.ok() && *op != engine::OpType::kRead && !write_allowed_) {
      s = absl::PermissionDeniedError("the token allows reading this volume only");
    }
    if (!s.ok()) {
      Answer(p, s);
      return;
    }
    engine::Request& r = p->request;
    if (*op == engine::OpType::kWrite) {
      p->data = std::move(*req->mutable_data());
      r = engine::Request::Of(*op, req->offset(), p->data.size(), p->data.data(), req->fua());
    } else if (*op == engine::OpType::kRead) {
      if (req->length() > kMaxTransferBytes) {
        Answer(p, absl::InvalidArgumentError(absl::StrFormat(
                      "length: %u is above the limit of %u", req->length(), kMaxTransferBytes)));
        return;
      }
      if (req->length() > 0) {
        // Page-aligned: the page cache copies into it much faster than into
        // a heap string. Not zeroed: the engine fills every byte (zeros
        // past the end of a file).
        p->read_buf = static_cast<char*>(
            std::aligned_alloc(4096, (req->length() + 4095) & ~uint64_t{4095}));
        if (p->read_buf == nullptr) {
          Answer(p, absl::ResourceExhaustedError("out of memory for the read buffer"));
          return;
        }
        p->read_len = req->length();
      }
      r = engine::Request::Of(*op, req->offset(), req->length(), p->read_buf);
    } else {
      r = engine::Request::Of(*op, req->offset(), req->length(), nullptr, req->fua());
    }
    r.done = [p](absl::Status status) { p->reactor->Answer(p, status, /*from_engine=*/true); };
    r.batch_end = this;
    if (!volume_->Submit(&r, batch)) {
      Answer(p, absl::UnavailableError(absl::StrCat("volume ", volume_->name(), " is closed")));
    }
  }

  // Binds the stream to its volume on the first request.
  absl::Status Bind(const std::string& name) {
    if (volume_) {
      if (!name.empty() && name != volume_->name()) {
        return absl::InvalidArgumentError(
            absl::StrCat("volume: this session serves ", volume_->name(), ", not ", name));
      }
      return absl::OkStatus();
    }
    if (name.empty()) {
      return absl::InvalidArgumentError("volume: required in the first request of a session");
    }
    auto handle = service_->OpenVolume(*ctx_, name, Access::kRead);
    if (!handle.ok()) return handle.status();
    volume_ = *handle;
    write_allowed_ = service_->OpenVolume(*ctx_, name, Access::kWrite).ok();
    // Bound by the first request, before any answer (which carries the
    // initial metadata) was written.
    if (!volume_->epoch().empty()) ctx_->AddInitialMetadata("cowblk-epoch", volume_->epoch());
    if (service_->options().nbd_port != 0) {
      ctx_->AddInitialMetadata("cowblk-nbd-port", std::to_string(service_->options().nbd_port));
    }
    return absl::OkStatus();
  }

  // Queues the response of `p`; any thread (engine or gRPC). From the
  // engine (`from_engine`), it is written at the end of the engine's batch
  // of completions (OnBatchEnd), with the answers that completed with it.
  void Answer(Pending* p, const absl::Status& status, bool from_engine = false) {
    if (!status.ok()) {
      p->code = static_cast<int32_t>(status.code());
      p->message = std::string(status.message());
      std::free(p->read_buf);
      p->read_buf = nullptr;
      p->read_len = 0;
      Log(LogLevel::kWarning, "request_failed",
          {{"volume", volume_ ? volume_->name() : in_.volume()},
           {"id", std::to_string(p->id)},
           {"code", absl::StatusCodeToString(status.code())},
           {"error", std::string(status.message())}});
    }
    p->data.clear();
    std::lock_guard<std::mutex> lock(mu_);
    // The engine calls OnBatchEnd once its batch of completions is done:
    // the reactor must live until then.
    if (from_engine) flush_pending_ = true;
    if (broken_ || cancelled_) {
      delete p;
      --in_flight_;
      MaybeFinishLocked();
      return;
    }
    queue_.push_back(p);
    if (from_engine) return;
    if (writing_) return;
    writing_ = true;
    StartWriteLocked();
  }

  // The engine's batch of completions ended: write what queued meanwhile
  // (another thread's write may have taken it already). The reactor is
  // alive: it does not finish while an OnBatchEnd is pending.
  void OnBatchEnd() override {
    std::lock_guard<std::mutex> lock(mu_);
    flush_pending_ = false;
    if (broken_ || cancelled_) {  // nobody will read them
      while (!queue_.empty()) {
        delete queue_.front();
        queue_.pop_front();
        --in_flight_;
      }
    } else if (!writing_ && !queue_.empty()) {
      writing_ = true;
      StartWriteLocked();
    }
    MaybeReadLocked();
    MaybeFinishLocked();
  }

  // Encodes the answer of `p` as SessionResponse fields 1-4, appended to
  // `header` (empty, or a batch entry's tag and length): a slice of the
  // header, then the read data as a slice that owns p's buffer (gRPC frees
  // it once sent). Returns the encoded size of the answer alone.
  static size_t EncodeAnswer(Pending* p, std::string header, std::vector<grpc::Slice>* slices) {
    const size_t prefix = header.size();
    if (p->id != 0) {
      header.push_back(1 << 3);  // field 1, varint
      PutVarint(&header, p->id);
    }
    if (p->code != 0) {
      header.push_back(2 << 3);
      PutVarint(&header, static_cast<uint64_t>(static_cast<int64_t>(p->code)));
    }
    if (!p->message.empty()) {
      header.push_back((3 << 3) | 2);  // field 3, length-delimited
      PutVarint(&header, p->message.size());
      header += p->message;
    }
    if (p->read_len != 0) {
      header.push_back((4 << 3) | 2);
      PutVarint(&header, p->read_len);
    }
    const size_t size = header.size() - prefix + p->read_len;
    slices->emplace_back(header);
    if (p->read_len != 0) {
      slices->emplace_back(p->read_buf, p->read_len, &FreeReadBuffer);
      p->read_buf = nullptr;  // the slice owns it now
    }
    return size;
  }

  // Size of what EncodeAnswer writes for `p` (without prefix).
  static size_t AnswerSize(const Pending* p) {
    auto varint_len = [](uint64_t v) {
      size_t n = 1;
      while (v >= 0x80) v >>= 7, ++n;
      return n;
    };
    size_t n = 0;
    if (p->id != 0) n += 1 + varint_len(p->id);
    if (p->code != 0) n += 1 + varint_len(static_cast<uint64_t>(static_cast<int64_t>(p->code)));
    if (!p->message.empty()) n += 1 + varint_len(p->message.size()) + p->message.size();
    if (p->read_len != 0) n += 1 + varint_len(p->read_len) + p->read_len;
    return n;
  }

  // Writes the answer at the front of the queue; for a client that asked
  // for batches, with the answers queued behind it (up to a size that keeps
  // one message small) in the message's `batch` field. Every answer written
  // leaves the queue at once (its data now belongs to the message).
  void StartWriteLocked() {
    constexpr uint32_t kMaxAnswers = 512;
    constexpr size_t kMaxBytes = 4 << 20;
    std::vector<grpc::Slice> slices;
    Pending* front = queue_.front();
    queue_.pop_front();
    size_t bytes = EncodeAnswer(front, {}, &slices);
    delete front;
    answers_written_ = 1;
    while (batch_answers_ && !queue_.empty() && answers_written_ < kMaxAnswers) {
      Pending* next = queue_.front();
      const size_t size = AnswerSize(next);
      if (bytes + size > kMaxBytes) break;
      std::string prefix;
      prefix.push_back((5 << 3) | 2);  // field 5 (batch), length-delimited
      PutVarint(&prefix, size);
      bytes += prefix.size() + EncodeAnswer(next, std::move(prefix), &slices);
      queue_.pop_front();
      delete next;
      ++answers_written_;
    }
    out_raw_ = grpc::ByteBuffer(slices.data(), slices.size());
    ++messages_written_;
    StartWrite(&out_raw_);
  }

  void MaybeReadLocked() {
    if (!reading_ && !reads_done_ && service_->calls()->draining()) {
      // Draining: answer what is in flight, then end the stream so the
      // client reconnects elsewhere or after the restart.
      reads_done_ = drained_ = true;
      return;
    }
    if (!reading_ && !reads_done_ && !cancelled_ && !broken_ && in_flight_ < max_in_flight_) {
      reading_ = true;
      StartRead(&in_raw_);
    }
  }

  void MaybeFinishLocked() {
    if (finished_ || in_flight_ != 0 || writing_ || handling_ || flush_pending_) return;
    // A read may wait only when drained (Finish() ends it, ok = false).
    if (reading_ && !drained_) return;
    if (!(reads_done_ || cancelled_ || broken_)) return;
    finished_ = true;
    Log(LogLevel::kDebug, "session_finish",
        {{"volume", volume_ ? volume_->name() : ""},
         {"peer", peer_},
         {"cancelled", cancelled_ ? "1" : "0"},
         {"broken", broken_ ? "1" : "0"},
         {"drained", drained_ ? "1" : "0"},
         {"malformed", malformed_ ? "1" : "0"}});
    Finish(cancelled_   ? grpc::Status::CANCELLED
           : malformed_ ? grpc::Status(grpc::StatusCode::INVALID_ARGUMENT,
                                       "a Session message is not a cowblk.v1.SessionRequest")
           : drained_   ? CallTracker::Refusal()
                        : grpc::Status::OK);
  }

  BlockServiceImpl* const service_;
  grpc::CallbackServerContext* const ctx_;
  const uint32_t max_in_flight_;
  const std::string peer_;   // for the logs (gRPC forgets it once cancelled)
  grpc::ByteBuffer in_raw_;  // the read buffer; touched only between StartRead and OnReadDone
  SessionRequest in_;        // in_raw_ parsed, until the next StartRead
  grpc::ByteBuffer out_raw_;  // the message being written
  bool batch_answers_ = false;  // the client sent `cowblk-batch: 1`
  std::shared_ptr<VolumeHandle> volume_;
  bool write_allowed_ = false;

  std::mutex mu_;  // guards everything below
  std::deque<Pending*> queue_;  // answers waiting for the message being written
  uint32_t answers_written_ = 0;  // answers in the message being written
  uint32_t in_flight_ = 0;      // requests not yet answered on the wire
  bool reading_ = false;
  bool writing_ = false;
  bool reads_done_ = false;
  bool cancelled_ = false;
  bool broken_ = false;
  bool drained_ = false;
  bool malformed_ = false;
  bool handling_ = false;  // OnReadDone is handling a message
  bool finished_ = false;
  bool flush_pending_ = false;  // an OnBatchEnd() waits for the engine's batch end
  uint64_t messages_read_ = 0, messages_written_ = 0;  // for session_cancelled
};

// ---- Read ----------------------------------------------------------------

class ReadReactor final : public grpc::ServerWriteReactor<ReadResponse> {
 public:
  ReadReactor(CallTracker* calls, std::shared_ptr<VolumeHandle> volume, uint64_t offset,
              uint64_t length, uint32_t chunk)
      : calls_(calls), volume_(std::move(volume)), next_(offset), end_(offset + length),
        chunk_(chunk) {
    Next();
  }

  void OnWriteDone(bool ok) override {
    if (!ok) {
      Finish(grpc::Status(grpc::StatusCode::CANCELLED, "client went away"));
      return;
    }
    Next();
  }
  void OnDone() override {
    calls_->End();
    delete this;
  }

 private:
  void Next() {
    if (next_ >= end_) {
      Finish(grpc::Status::OK);
      return;
    }
    const uint64_t len = std::min<uint64_t>(chunk_, end_ - next_);
    response_.set_offset(next_);
    response_.mutable_data()->resize(len);
    request_ = engine::Request::Of(engine::OpType::kRead, next_, len,
                                   response_.mutable_data()->data());
    request_.done = [this, len](absl::Status s) {
      if (!s.ok()) {
        Finish(ToGrpc(s));
        return;
      }
      next_ += len;
      StartWrite(&response_);
    };
    if (!volume_->Submit(&request_)) {
      Finish(grpc::Status(grpc::StatusCode::UNAVAILABLE, "volume is closed"));
    }
  }

  CallTracker* const calls_;
  std::shared_ptr<VolumeHandle> volume_;
  uint64_t next_, end_;
  const uint32_t chunk_;
  ReadResponse response_;
  engine::Request request_;
};

// ---- Write ---------------------------------------------------------------

class WriteReactor final : public grpc::ServerReadReactor<WriteRequest> {
 public:
  WriteReactor(BlockServiceImpl* service, grpc::CallbackServerContext* ctx,
               WriteResponse* response)
      : service_(service), ctx_(ctx), response_(response) {
    StartRead(&in_);
  }

  void OnReadDone(bool ok) override {
    if (!ok) {  // the client is done: flush if asked, then answer
      if (!volume_) {
        Finish(grpc::Status(grpc::StatusCode::INVALID_ARGUMENT, "volume: no request received"));
        return;
      }
      if (!flush_) {
        Finish(grpc::Status::OK);
        return;
      }
      Submit(engine::OpType::kFlush, 0, 0);
      return;
    }
    if (!volume_) {
      auto handle = service_->OpenVolume(*ctx_, in_.volume(), Access::kWrite);
      if (!handle.ok()) {
        Finish(ToGrpc(handle.status()));
        return;
      }
      volume_ = *handle;
    } else if (!in_.volume().empty() && in_.volume() != volume_->name()) {
      Finish(grpc::Status(grpc::StatusCode::INVALID_ARGUMENT,
                          "volume: one Write call writes one volume"));
      return;
    }
    flush_ = in_.flush();
    data_ = std::move(*in_.mutable_data());
    if (data_.empty()) {
      StartRead(&in_);
      return;
    }
    Submit(engine::OpType::kWrite, in_.offset(), data_.size());
  }

  void OnDone() override {
    service_->calls()->End();
    delete this;
  }

 private:
  void Submit(engine::OpType op, uint64_t offset, uint64_t length) {
    request_ = engine::Request::Of(op, offset, length, data_.data());
    request_.done = [this, op, length](absl::Status s) {
      if (!s.ok()) {
        Finish(ToGrpc(s));
        return;
      }
      if (op == engine::OpType::kFlush) {
        Finish(grpc::Status::OK);
        return;
      }
      response_->set_bytes_written(response_->bytes_written() + length);
      StartRead(&in_);
    };
    if (!volume_->Submit(&request_)) {
      Finish(grpc::Status(grpc::StatusCode::UNAVAILABLE, "volume is closed"));
    }
  }

  BlockServiceImpl* const service_;
  grpc::CallbackServerContext* const ctx_;
  WriteResponse* const response_;
  WriteRequest in_;
  std::shared_ptr<VolumeHandle> volume_;
  std::string data_;
  bool flush_ = false;
  engine::Request request_;
};

}  // namespace

absl::StatusOr<std::shared_ptr<VolumeHandle>> BlockServiceImpl::OpenVolume(
    const grpc::ServerContextBase& ctx, const std::string& name, Access access) {
  if (absl::Status s = ValidateName("volume", name); !s.ok()) return s;
  if (absl::Status s = auth_->Check(ctx, access, name); !s.ok()) return s;
  return store_->FindVolume(name);
}

// A reactor that only answers "shutting down" (or another error).
template <typename Base>
class Refused : public Base {
 public:
  explicit Refused(const grpc::Status& s) { this->Finish(s); }
  void OnDone() override { delete this; }
};

grpc::ServerBidiReactor<grpc::ByteBuffer, grpc::ByteBuffer>* BlockServiceImpl::Session(
    grpc::CallbackServerContext* ctx) {
  if (!calls_->Begin()) {
    return new Refused<grpc::ServerBidiReactor<grpc::ByteBuffer, grpc::ByteBuffer>>(
        CallTracker::Refusal());
  }
  return new SessionReactor(this, ctx);
}

grpc::ServerWriteReactor<ReadResponse>* BlockServiceImpl::Read(grpc::CallbackServerContext* ctx,
                                                               const ReadRequest* request) {
  if (!calls_->Begin()) {
    return new Refused<grpc::ServerWriteReactor<ReadResponse>>(CallTracker::Refusal());
  }
  auto fail = [this](const absl::Status& s) {
    calls_->End();
    return new Refused<grpc::ServerWriteReactor<ReadResponse>>(ToGrpc(s));
  };
  auto handle = OpenVolume(*ctx, request->volume(), Access::kRead);
  if (!handle.ok()) return fail(handle.status());
  const uint64_t offset = request->offset(), length = request->length();
  const uint64_t size = (*handle)->size();
  if (offset % 512 != 0) {
    return fail(absl::InvalidArgumentError(absl::StrFormat("offset: %u is not a multiple of 512", offset)));
  }
  if (length == 0 || length % 512 != 0) {
    return fail(absl::InvalidArgumentError(
        absl::StrFormat("length: %u is not a positive multiple of 512", length)));
  }
  if (offset > size || length > size - offset) {
    return fail(absl::OutOfRangeError(absl::StrFormat(
        "offset %u length %u: beyond the volume size %u", offset, length, size)));
  }
  return new ReadReactor(calls_, *std::move(handle), offset, length, options_.read_chunk);
}

grpc::ServerReadReactor<WriteRequest>* BlockServiceImpl::Write(grpc::CallbackServerContext* ctx,
                                                               WriteResponse* response) {
  if (!calls_->Begin()) {
    return new Refused<grpc::ServerReadReactor<WriteRequest>>(CallTracker::Refusal());
  }
  return new WriteReactor(this, ctx, response);
}

grpc::ServerUnaryReactor* BlockServiceImpl::Flush(grpc::CallbackServerContext* ctx,
                                                  const cowblk::v1::FlushRequest* request,
                                                  cowblk::v1::FlushResponse*) {
  grpc::ServerUnaryReactor* reactor = ctx->DefaultReactor();
  if (!calls_->Begin()) {
    reactor->Finish(CallTracker::Refusal());
    return reactor;
  }
  auto handle = OpenVolume(*ctx, request->volume(), Access::kWrite);
  if (!handle.ok()) {
    calls_->End();
    reactor->Finish(ToGrpc(handle.status()));
    return reactor;
  }
  struct FlushCall {
    std::shared_ptr<VolumeHandle> volume;
    engine::Request request;
  };
  auto* call = new FlushCall{*handle, {}};
  call->request.kind = engine::Flush{};
  CallTracker* calls = calls_;
  call->request.done = [reactor, call, calls](absl::Status s) {
    reactor->Finish(ToGrpc(s));
    delete call;  // the engine is done with the request
    calls->End();
  };
  if (!call->volume->Submit(&call->request)) {
    delete call;
    calls_->End();
    reactor->Finish(grpc::Status(grpc::StatusCode::UNAVAILABLE, "volume is closed"));
  }
  return reactor;
}

}  // namespace cowblk::service
