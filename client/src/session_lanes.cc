#include "client/src/session_lanes.h"

#include <string_view>
#include <utility>

#include "absl/strings/str_cat.h"
#include "client/src/session_call.h"
#include "client/src/volume_core.h"

namespace cowblk::internal {
namespace {

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

}  // namespace

SessionLanes::SessionLanes(VolumeCore* core, ClientCore* client, std::string volume,
                           const VolumeOptions& options)
    : core_(core),
      client_(client),
      volume_(std::move(volume)),
      max_batch_(static_cast<size_t>(options.max_batch)),
      max_backoff_(client->options().max_backoff) {
  const int lanes = options.lanes > 0 ? options.lanes : client_->channel_count();
  const size_t first = client_->Next();
  lanes_.resize(static_cast<size_t>(lanes));
  for (size_t i = 0; i < lanes_.size(); ++i) lanes_[i].channel = static_cast<int>(first + i);
}

bool SessionLanes::TakeLocked(Chunk* c, Clock::time_point now, Actions* actions) {
  Lane* lane = PickLaneLocked(now);
  if (lane == nullptr) return false;
  if (!lane->stream) {
    lane->stream = SessionCall::Create(this, static_cast<int>(lane - lanes_.data()), *client_,
                                       lane->channel, max_batch_);
    lane->stream_ok = false;
    ++live_streams_;
    ++streams_started_;
    actions->starts.push_back(lane->stream);
  }
  const uint64_t id = next_id_++;
  c->state = Chunk::State::kSent;
  c->link = lane->stream.get();
  c->wire_id = id;
  sent_.emplace(id, c);
  ++lane->in_flight;
  actions->sends.emplace_back(lane->stream, Outgoing{c, EncodeLocked(*c, id)});
  return true;
}

bool SessionLanes::ReleaseExpiredLocked(Chunk* c, Actions* actions, std::string* why) {
  // A read whose answer is being copied completes itself.
  if (c->state != Chunk::State::kSent) return false;
  auto* stream = static_cast<SessionCall*>(c->link);
  Lane& lane = LaneOf(*c);
  const bool current = lane.stream.get() == stream;
  *why = absl::StrCat("sent on a stream that neither answered nor ended (",
                      current ? "the lane's" : "a replaced", " stream: ", stream->DebugState(), ")");
  if (current) actions->cancels.push_back(lane.stream);
  UnsendLocked(c);
  return true;
}

void SessionLanes::CloseLocked(Actions* actions) {
  for (Lane& lane : lanes_) {
    if (lane.stream) actions->cancels.push_back(lane.stream);
  }
}

void SessionLanes::AddStatsLocked(VolumeStats* stats) const {
  stats->streams = streams_started_;
  stats->messages_sent = messages_sent_.load(std::memory_order_relaxed);
  stats->messages_received = messages_received_.load(std::memory_order_relaxed);
}

void SessionLanes::OnAnswer(SessionCall* stream, const wire::Answer& answer) {
  Actions actions;
  Chunk* claimed = nullptr;
  {
    std::lock_guard<std::mutex> lock(core_->mu());
    Lane& lane = lanes_[static_cast<size_t>(stream->lane())];
    if (answer.code == 0 && lane.stream.get() == stream) lane.stream_ok = true;
    auto it = sent_.find(answer.id);
    if (it == sent_.end()) return;  // an answer to a chunk that expired
    Chunk* c = it->second;
    UnsendLocked(c);
    const auto code = static_cast<absl::StatusCode>(answer.code);
    if (code == absl::StatusCode::kOk && c->kind == OpKind::kRead) {
      c->state = Chunk::State::kClaimed;
      claimed = c;
    } else if (code == absl::StatusCode::kUnavailable && !core_->closing_locked()) {
      core_->RequeueLocked({c}, absl::UnavailableError(answer.message));
      if (lane.stream.get() == stream) actions.cancels.push_back(lane.stream);
    } else {
      core_->CompleteLocked(c, absl::Status(code, answer.message), &actions, stream->epoch());
    }
    core_->DispatchLocked(Clock::now(), &actions);
  }
  if (claimed != nullptr) {
    // The chunk is ours alone now (out of sent_): copy without the lock.
    absl::Status s;
    if (answer.data.size() == claimed->length) {
      answer.data.CopyTo(claimed->dest);
    } else {
      s = absl::InternalError(absl::StrCat("read of ", claimed->length, " bytes at ",
                                           claimed->offset, " answered with ", answer.data.size()));
    }
    std::lock_guard<std::mutex> lock(core_->mu());
    core_->CompleteLocked(claimed, s, &actions);
  }
  core_->Run(&actions);
}

void SessionLanes::OnStreamDone(SessionCall* stream, const grpc::Status& status) {
  Actions actions;
  std::shared_ptr<SessionCall> last;  // freed after the lock is released
  {
    std::lock_guard<std::mutex> lock(core_->mu());
    const Clock::time_point now = Clock::now();
    Lane& lane = lanes_[static_cast<size_t>(stream->lane())];
    if (lane.stream.get() == stream) {  // else a replaced stream: nothing to learn about the lane
      last = std::move(lane.stream);
      lane.backoff = lane.stream_ok ? std::chrono::milliseconds(0)
                                    : NextBackoff(lane.backoff, max_backoff_);
      lane.retry_at = now + lane.backoff;
    }
    std::vector<Chunk*> orphans;
    for (const auto& [id, c] : sent_) {
      if (c->link == stream) orphans.push_back(c);
    }
    for (Chunk* c : orphans) UnsendLocked(c);
    absl::Status why =
        status.ok() ? absl::UnavailableError("the server ended the session") : FromGrpc(status);
    why = absl::Status(why.code(), absl::StrCat("session stream: ", why.message()));
    if (Retryable(status.error_code()) && !core_->closing_locked()) {
      core_->RequeueLocked(std::move(orphans), why);
    } else {
      for (Chunk* c : orphans) core_->CompleteLocked(c, why, &actions);
    }
    core_->DispatchLocked(now, &actions);
  }
  core_->Run(&actions);
}

void SessionLanes::OnStreamEpoch(const std::string& epoch) {
  std::lock_guard<std::mutex> lock(core_->mu());
  core_->LearnEpochLocked(epoch);
}

void SessionLanes::OnStreamGone() {
  std::lock_guard<std::mutex> lock(core_->mu());
  --live_streams_;
  core_->LinkGoneLocked();
}

SessionLanes::Lane* SessionLanes::PickLaneLocked(Clock::time_point now) {
  Lane* best = nullptr;
  for (Lane& lane : lanes_) {
    if (!lane.stream && now < lane.retry_at) continue;
    if (best == nullptr || lane.in_flight < best->in_flight) best = &lane;
  }
  return best;
}

SessionLanes::Lane& SessionLanes::LaneOf(const Chunk& c) {
  return lanes_[static_cast<size_t>(static_cast<SessionCall*>(c.link)->lane())];
}

void SessionLanes::UnsendLocked(Chunk* c) {
  sent_.erase(c->wire_id);
  --LaneOf(*c).in_flight;
}

grpc::Slice SessionLanes::EncodeLocked(const Chunk& c, uint64_t id) const {
  // Every request names the volume, so a retried one can open a stream.
  const bool write = c.kind == OpKind::kWrite;
  return wire::EncodeRequest({.id = id,
                              .volume = volume_,
                              .op = WireOp(c.kind),
                              .offset = c.offset,
                              .length = write || c.kind == OpKind::kFlush ? 0 : c.length,
                              .data = write ? std::string_view(c.src, c.length) : std::string_view(),
                              .fua = c.fua});
}

}  // namespace cowblk::internal
