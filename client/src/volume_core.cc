#include "client/src/volume_core.h"

#include <algorithm>
#include <cstring>

#include "absl/strings/str_cat.h"
#include "client/src/nbd_call.h"
#include "client/src/session_call.h"

namespace cowblk::internal {
namespace {

constexpr std::chrono::milliseconds kFirstBackoff{50};

v1::Op WireOp(OpKind kind) {
  switch (kind) {
    case OpKind::kRead:
      return v1::OP_READ;
    case OpKind::kWrite:
      return v1::OP_WRITE;
    case OpKind::kFlush:
      return v1::OP_FLUSH;
    case OpKind::kTrim:
      return v1::OP_TRIM;
    case OpKind::kWriteZeroes:
      return v1::OP_WRITE_ZEROES;
  }
  return v1::OP_UNSPECIFIED;
}

// Statuses of a whole stream that another stream may not see: the server
// restarted or is stopping, the connection dropped, we cancelled it.
bool Retryable(grpc::StatusCode code) {
  switch (code) {
    case grpc::StatusCode::OK:
    case grpc::StatusCode::CANCELLED:
    case grpc::StatusCode::UNKNOWN:
    case grpc::StatusCode::DEADLINE_EXCEEDED:
    case grpc::StatusCode::ABORTED:
    case grpc::StatusCode::INTERNAL:
    case grpc::StatusCode::UNAVAILABLE:
      return true;
    default:
      return false;
  }
}

bool BySeq(const Chunk* a, const Chunk* b) { return a->seq < b->seq; }

// Where the NBD export of a volume opened with `options` is dialled.
std::string NbdHost(const ClientOptions& client, const VolumeOptions& options) {
  // NBD carries neither TLS nor a token (cowblkd offers it to neither).
  if (!options.nbd || UsesTls(client) || !client.token.empty()) return "";
  return NbdHostOf(client.target);
}

}  // namespace

VolumeCore::VolumeCore(std::shared_ptr<ClientCore> client, std::string name, uint64_t size,
                       const VolumeOptions& options)
    : client_(std::move(client)),
      name_(std::move(name)),
      max_in_flight_(static_cast<size_t>(options.max_in_flight)),
      max_batch_(static_cast<size_t>(options.max_batch)),
      max_backoff_(std::max(kFirstBackoff, client_->options().max_backoff)),
      size_(size),
      nbd_host_(NbdHost(client_->options(), options)),
      nbd_min_read_bytes_(options.nbd_min_read_bytes),
      nbd_min_write_bytes_(options.nbd_min_write_bytes) {
  const int lanes = options.lanes > 0 ? options.lanes : client_->channel_count();
  const size_t first = client_->Next();
  lanes_.resize(static_cast<size_t>(lanes));
  for (size_t i = 0; i < lanes_.size(); ++i) lanes_[i].channel = static_cast<int>(first + i);
  tick_id_ = client_->ticker()->Add([this](Clock::time_point now) { return Tick(now); });
}

VolumeCore::~VolumeCore() { Close(); }

void VolumeCore::Submit(std::unique_ptr<IoCall> call) {
  Actions actions;
  bool kick = false;
  {
    std::lock_guard<std::mutex> lock(mu_);
    if (closing_) {
      call->status = absl::FailedPreconditionError(absl::StrCat("volume ", name_, " is closed"));
      ++completing_;
      actions.completed.push_back(std::move(call));
    } else {
      kick = active_.empty();
      IoCall* raw = call.get();
      raw->remaining = raw->chunks.size();
      active_.push_back(std::move(call));
      raw->self = std::prev(active_.end());
      for (auto& c : raw->chunks) {
        c->call = raw;
        c->seq = next_seq_++;
        queue_.push_back(c.get());
        // A volume that never moves such chunks never dials the export.
        nbd_wanted_ = nbd_wanted_ || ForNbd(*c);
      }
      DispatchLocked(Clock::now(), &actions);
    }
  }
  // The ticker sleeps while no call is active; it must watch this one's
  // deadline.
  if (kick) client_->ticker()->Kick();
  Run(&actions);
}

void VolumeCore::Close() {
  std::vector<std::shared_ptr<SessionCall>> streams;
  std::shared_ptr<NbdCall> nbd;
  {
    std::unique_lock<std::mutex> lock(mu_);
    if (closed_) return;
    closing_ = true;
    cv_.wait(lock, [this] { return active_.empty() && completing_ == 0; });
    for (Lane& lane : lanes_) {
      if (lane.stream) streams.push_back(lane.stream);
    }
    nbd = nbd_;
  }
  // Nothing is in flight: ending the streams loses nothing, and cancelling
  // (rather than half-closing) cannot hang on a server that is down.
  for (auto& s : streams) s->Cancel();
  streams.clear();
  if (nbd) nbd->Cancel();
  nbd.reset();
  {
    std::unique_lock<std::mutex> lock(mu_);
    cv_.wait(lock, [this] { return live_streams_ == 0 && live_nbd_ == 0; });
    closed_ = true;
  }
  client_->ticker()->Remove(tick_id_);
}

VolumeStats VolumeCore::stats() const {
  std::lock_guard<std::mutex> lock(mu_);
  VolumeStats s = stats_;
  s.in_flight = in_flight_;
  s.queued = queue_.size() + held_.size();
  s.messages_sent = messages_sent_.load(std::memory_order_relaxed);
  s.messages_received = messages_received_.load(std::memory_order_relaxed);
  return s;
}

void VolumeCore::OnResponse(SessionCall* stream, uint64_t id, int code, std::string message,
                            const wire::DataView& data) {
  Actions actions;
  Chunk* claimed = nullptr;
  {
    std::lock_guard<std::mutex> lock(mu_);
    Lane& lane = lanes_[static_cast<size_t>(stream->lane())];
    if (code == 0 && lane.stream.get() == stream) lane.stream_ok = true;
    auto it = sent_.find(id);
    if (it == sent_.end()) return;  // an answer to a chunk that expired
    Chunk* c = it->second;
    UnsendLocked(c);
    if (code == 0) {
      if (c->kind == OpKind::kRead) {
        c->state = Chunk::State::kClaimed;
        claimed = c;
      } else if (c->kind == OpKind::kFlush && !lost_.ok() && stream->epoch() == epoch_) {
        // Reported once, like a writeback error to fsync(2).
        writes_flushed_ = std::max(writes_flushed_, c->covers);
        FinishLocked(c, std::exchange(lost_, absl::OkStatus()), &actions);
      } else {
        if (c->kind == OpKind::kFlush) {
          // A flush the old server answered before it died (its answer
          // handled late) did make what it covered durable.
          writes_flushed_ = std::max(writes_flushed_, c->covers);
          if (!lost_.ok() && writes_flushed_ >= lost_upto_) lost_ = absl::OkStatus();
        } else if (!c->fua) {  // a FUA write is durable on its own
          ++writes_acked_;
        }
        FinishLocked(c, absl::OkStatus(), &actions);
      }
    } else if (code == static_cast<int>(absl::StatusCode::kUnavailable) && !closing_) {
      RequeueLocked({c}, absl::UnavailableError(message));
      if (lane.stream.get() == stream) actions.cancels.push_back(lane.stream);
    } else {
      FinishLocked(c, absl::Status(static_cast<absl::StatusCode>(code), message), &actions);
    }
    DispatchLocked(Clock::now(), &actions);
  }
  if (claimed != nullptr) {
    // The chunk is ours alone now (out of sent_): copy without the lock.
    absl::Status s;
    if (data.size() == claimed->length) {
      data.CopyTo(claimed->dest);
    } else {
      s = absl::InternalError(absl::StrCat("read of ", claimed->length, " bytes at ",
                                           claimed->offset, " answered with ", data.size()));
    }
    std::lock_guard<std::mutex> lock(mu_);
    FinishLocked(claimed, s, &actions);
  }
  Run(&actions);
}

void VolumeCore::OnStreamDone(SessionCall* stream, const grpc::Status& status) {
  Actions actions;
  std::shared_ptr<SessionCall> last;  // freed after the lock is released
  {
    std::lock_guard<std::mutex> lock(mu_);
    const Clock::time_point now = Clock::now();
    Lane& lane = lanes_[static_cast<size_t>(stream->lane())];
    const bool current = lane.stream.get() == stream;
    if (current) last = std::move(lane.stream);
    if (!current) {
      // Not the lane's stream: nothing to learn about the lane.
    } else if (lane.stream_ok) {
      lane.backoff = std::chrono::milliseconds(0);
      lane.retry_at = now;
    } else {
      lane.backoff = std::min(max_backoff_, std::max(kFirstBackoff, lane.backoff * 2));
      lane.retry_at = now + lane.backoff;
    }
    std::vector<Chunk*> orphans;
    for (const auto& [id, c] : sent_) {
      if (c->stream == stream) orphans.push_back(c);
    }
    for (Chunk* c : orphans) UnsendLocked(c);
    absl::Status why =
        status.ok() ? absl::UnavailableError("the server ended the session") : FromGrpc(status);
    why = absl::Status(why.code(), absl::StrCat("session stream: ", why.message()));
    if (Retryable(status.error_code()) && !closing_) {
      RequeueLocked(std::move(orphans), why);
    } else {
      for (Chunk* c : orphans) FinishLocked(c, why, &actions);
    }
    DispatchLocked(now, &actions);
  }
  Run(&actions);
}

void VolumeCore::OnStreamMetadata(const std::string& epoch, const std::string& nbd_port) {
  std::lock_guard<std::mutex> lock(mu_);
  nbd_port_ = nbd_port;
  if (epoch.empty() || epoch_ == epoch) return;
  if (!epoch_.empty() && writes_acked_ > writes_flushed_ && lost_.ok()) {
    lost_ = absl::DataLossError(absl::StrCat(
        "volume ", name_, ": the server restarted without keeping ",
        "writes acknowledged since the last flush (epoch ", epoch_, " -> ", epoch,
        "): some of them may be lost"));
    lost_upto_ = writes_acked_;
    ++stats_.epoch_losses;
  }
  epoch_ = epoch;
}

void VolumeCore::OnStreamGone() {
  std::lock_guard<std::mutex> lock(mu_);
  --live_streams_;
  cv_.notify_all();
}

bool VolumeCore::Tick(Clock::time_point now) {
  Actions actions;
  bool busy;
  {
    std::lock_guard<std::mutex> lock(mu_);
    std::vector<IoCall*> expired;
    for (const auto& call : active_) {
      if (call->deadline <= now) expired.push_back(call.get());
    }
    for (IoCall* call : expired) ExpireLocked(call, &actions);
    DispatchLocked(now, &actions);
    busy = !active_.empty();
  }
  Run(&actions);
  return busy;
}

void VolumeCore::Run(Actions* actions) {
  for (auto& s : actions->starts) s->Start();
  // A false Send(): the stream has ended, and its OnStreamDone() requeues
  // the chunk (it is in sent_ with that stream).
  for (auto& [stream, request] : actions->sends) stream->Send(std::move(request));
  for (auto& s : actions->cancels) s->Cancel();
  for (auto& n : actions->nbd_starts) n->Start();
  for (auto& [nbd, c] : actions->nbd_sends) nbd->Send(c);
  for (auto& n : actions->nbd_cancels) n->Cancel();
  actions->starts.clear();
  actions->sends.clear();
  actions->cancels.clear();
  actions->nbd_starts.clear();
  actions->nbd_sends.clear();
  actions->nbd_cancels.clear();
  if (actions->completed.empty()) return;
  for (auto& call : actions->completed) {
    if (call->done) call->done(call->status);
  }
  const int n = static_cast<int>(actions->completed.size());
  actions->completed.clear();
  std::lock_guard<std::mutex> lock(mu_);
  completing_ -= n;
  cv_.notify_all();  // Close() waits for the callbacks to have returned
}

void VolumeCore::DispatchLocked(Clock::time_point now, Actions* actions) {
  MaybeDialNbdLocked(now, actions);
  while (in_flight_ < max_in_flight_ && !queue_.empty()) {
    if (ForNbdLocked(*queue_.front())) {
      Chunk* c = queue_.front();
      queue_.pop_front();
      c->state = Chunk::State::kClaimed;
      c->nbd = nbd_.get();
      ++c->attempts;
      ++in_flight_;
      ++stats_.requests;
      ++stats_.nbd_requests;
      actions->nbd_sends.emplace_back(nbd_, c);
      continue;
    }
    Lane* lane = PickLaneLocked(now);
    if (lane == nullptr) return;  // every lane waits out a backoff: Tick() retries
    if (!lane->stream) {
      lane->stream = SessionCall::Create(this, static_cast<int>(lane - lanes_.data()), *client_,
                                         lane->channel, max_batch_);
      lane->stream_ok = false;
      ++live_streams_;
      ++stats_.streams;
      actions->starts.push_back(lane->stream);
    }
    Chunk* c = queue_.front();
    queue_.pop_front();
    const uint64_t id = next_id_++;
    c->state = Chunk::State::kSent;
    c->id = id;
    c->stream = lane->stream.get();
    c->lane = static_cast<int>(lane - lanes_.data());
    ++c->attempts;
    if (c->kind == OpKind::kFlush) c->covers = writes_acked_;
    sent_.emplace(id, c);
    ++in_flight_;
    ++lane->in_flight;
    ++stats_.requests;
    actions->sends.emplace_back(lane->stream, BuildRequestLocked(*c, id));
  }
}

void VolumeCore::MaybeDialNbdLocked(Clock::time_point now, Actions* actions) {
  if (nbd_ || !nbd_wanted_ || nbd_host_.empty() || nbd_port_.empty() || closing_ ||
      now < nbd_retry_at_) {
    return;
  }
  nbd_ = std::make_shared<NbdCall>(this, nbd_host_, nbd_port_, name_, size_);
  nbd_ready_ = false;
  ++live_nbd_;
  actions->nbd_starts.push_back(nbd_);
}

bool VolumeCore::ForNbd(const Chunk& c) const {
  return (c.kind == OpKind::kRead && c.length >= nbd_min_read_bytes_) ||
         (c.kind == OpKind::kWrite && c.length >= nbd_min_write_bytes_);
}

bool VolumeCore::ForNbdLocked(const Chunk& c) const {
  return nbd_ready_ && !c.nbd_refused && ForNbd(c) && (!c.fua || nbd_fua_);
}

void VolumeCore::OnNbdReady(NbdCall* nbd, bool fua) {
  Actions actions;
  {
    std::lock_guard<std::mutex> lock(mu_);
    if (nbd_.get() != nbd) return;
    nbd_ready_ = true;
    nbd_fua_ = fua;
    nbd_backoff_ = std::chrono::milliseconds(0);
    ++stats_.nbd_connections;
    DispatchLocked(Clock::now(), &actions);
  }
  Run(&actions);
}

void VolumeCore::OnNbdAnswer(NbdCall* nbd, Chunk* c, const absl::Status& answer) {
  Actions actions;
  {
    std::lock_guard<std::mutex> lock(mu_);
    c->nbd = nullptr;
    --in_flight_;
    if (answer.ok()) {
      if (c->kind == OpKind::kWrite && !c->fua) ++writes_acked_;
      FinishLocked(c, absl::OkStatus(), &actions);
    } else if (closing_) {
      FinishLocked(c, answer, &actions);
    } else {
      // Over a stream the server says what went wrong in its own words.
      c->nbd_refused = true;
      RequeueLocked({c}, answer);
      if (answer.code() == absl::StatusCode::kUnavailable && nbd_.get() == nbd) {
        actions.nbd_cancels.push_back(nbd_);
      }
    }
    DispatchLocked(Clock::now(), &actions);
  }
  Run(&actions);
}

void VolumeCore::OnNbdGone(NbdCall* nbd, std::vector<Chunk*> leftovers, const absl::Status& why) {
  Actions actions;
  {
    std::lock_guard<std::mutex> lock(mu_);
    const Clock::time_point now = Clock::now();
    if (nbd_.get() == nbd) {
      // Dialled again at once after a connection that served (the server
      // restarted, say); after one that never did, later and later.
      if (nbd_ready_) {
        nbd_backoff_ = std::chrono::milliseconds(0);
      } else {
        nbd_backoff_ = std::min(max_backoff_, std::max(kFirstBackoff, nbd_backoff_ * 2));
      }
      nbd_retry_at_ = now + nbd_backoff_;
      nbd_.reset();
      nbd_ready_ = false;
    }
    std::vector<Chunk*> retry;
    for (Chunk* c : leftovers) {
      c->nbd = nullptr;
      --in_flight_;
      if (c->call->deadline <= now) {
        FinishLocked(c,
                     absl::DeadlineExceededError(absl::StrCat(
                         "deadline exceeded; sent over the NBD export, which did not answer (",
                         why.message(), ")")),
                     &actions);
      } else if (closing_) {
        FinishLocked(c, why, &actions);
      } else {
        retry.push_back(c);
      }
    }
    if (!retry.empty()) RequeueLocked(std::move(retry), why);
    DispatchLocked(now, &actions);
  }
  Run(&actions);
  // Last: Close() may destroy this once the count drops.
  std::lock_guard<std::mutex> lock(mu_);
  --live_nbd_;
  cv_.notify_all();
}

VolumeCore::Lane* VolumeCore::PickLaneLocked(Clock::time_point now) {
  Lane* best = nullptr;
  for (Lane& lane : lanes_) {
    if (!lane.stream && now < lane.retry_at) continue;
    if (best == nullptr || lane.in_flight < best->in_flight) best = &lane;
  }
  return best;
}

grpc::Slice VolumeCore::BuildRequestLocked(const Chunk& c, uint64_t id) const {
  // Every request names the volume, so a retried one can open a stream.
  const bool write = c.kind == OpKind::kWrite;
  const uint64_t length = write || c.kind == OpKind::kFlush ? 0 : c.length;
  return wire::EncodeRequest({.id = id,
                              .volume = name_,
                              .op = WireOp(c.kind),
                              .offset = c.offset,
                              .length = length,
                              .data = write ? std::string_view(c.src, c.length) : std::string_view(),
                              .fua = c.fua});
}

void VolumeCore::UnsendLocked(Chunk* c) {
  sent_.erase(c->id);
  --in_flight_;
  --lanes_[static_cast<size_t>(c->lane)].in_flight;
  c->stream = nullptr;
  c->lane = -1;
}

void VolumeCore::RequeueLocked(std::vector<Chunk*> chunks, const absl::Status& why) {
  std::sort(chunks.begin(), chunks.end(), BySeq);
  // Pushed to the head in reverse, so they leave in submission order.
  for (auto it = chunks.rbegin(); it != chunks.rend(); ++it) {
    Chunk* c = *it;
    c->last_error = why;
    ++stats_.retries;
    if (c->kind == OpKind::kFlush) {
      c->state = Chunk::State::kHeld;
      held_.insert(held_.begin(), c);
      continue;
    }
    if (!c->retried) {
      c->retried = true;
      ++retried_;
    }
    c->state = Chunk::State::kQueued;
    queue_.push_front(c);
  }
  if (retried_ == 0) ReleaseHeldLocked();
}

void VolumeCore::ReleaseHeldLocked() {
  std::sort(held_.begin(), held_.end(), BySeq);
  for (auto it = held_.rbegin(); it != held_.rend(); ++it) {
    (*it)->state = Chunk::State::kQueued;
    queue_.push_front(*it);
  }
  held_.clear();
}

void VolumeCore::FinishLocked(Chunk* c, const absl::Status& status, Actions* actions) {
  c->state = Chunk::State::kDone;
  if (c->retried) {
    c->retried = false;
    if (--retried_ == 0) ReleaseHeldLocked();
  }
  IoCall* call = c->call;
  if (!status.ok() && call->status.ok()) call->status = status;
  if (--call->remaining == 0) {
    ++completing_;
    actions->completed.push_back(std::move(*call->self));
    active_.erase(call->self);
  }
}

void VolumeCore::ExpireLocked(IoCall* call, Actions* actions) {
  for (auto& owned : call->chunks) {
    Chunk* c = owned.get();
    std::string stuck;  // why a sent chunk never came back
    switch (c->state) {
      case Chunk::State::kQueued:
        queue_.erase(std::find(queue_.begin(), queue_.end(), c));
        break;
      case Chunk::State::kHeld:
        held_.erase(std::find(held_.begin(), held_.end(), c));
        break;
      case Chunk::State::kSent: {
        Lane& lane = lanes_[static_cast<size_t>(c->lane)];
        stuck = absl::StrCat("sent on a stream that neither answered nor ended (",
                             lane.stream.get() == c->stream ? "the lane's" : "a replaced",
                             " stream: ", c->stream->DebugState(), ")");
        if (lane.stream.get() == c->stream) actions->cancels.push_back(lane.stream);
        UnsendLocked(c);
        break;
      }
      case Chunk::State::kClaimed:
        // An NBD connection owns it: only ending the connection frees it
        // (OnNbdGone fails it then). Otherwise its answer is being copied:
        // it finishes itself.
        if (c->nbd != nullptr && c->nbd == nbd_.get()) actions->nbd_cancels.push_back(nbd_);
        continue;
      case Chunk::State::kDone:
        continue;
    }
    std::string msg = "deadline exceeded";
    if (c->attempts > 1 || !c->last_error.ok()) {
      absl::StrAppend(&msg, " after ", c->attempts,
                      " attempts; last error: ", c->last_error.ToString());
    }
    if (!stuck.empty()) absl::StrAppend(&msg, "; ", stuck);
    FinishLocked(c, absl::DeadlineExceededError(msg), actions);
    if (call->remaining == 0) return;  // `call` is gone
  }
}

}  // namespace cowblk::internal
