#include "client/src/volume_core.h"

#include <algorithm>
#include <utility>

#include "absl/strings/str_cat.h"
#include "client/src/nbd_lane.h"
#include "client/src/session_lanes.h"

namespace cowblk::internal {
namespace {

bool BySeq(const Chunk* a, const Chunk* b) { return a->seq < b->seq; }

}  // namespace

VolumeCore::VolumeCore(std::shared_ptr<ClientCore> client, std::string name, uint64_t size,
                       const ServedVolume& served, const VolumeOptions& options)
    : client_(std::move(client)),
      name_(std::move(name)),
      max_in_flight_(static_cast<size_t>(options.max_in_flight)),
      epoch_(served.epoch) {
  // The NBD lane first: what it carries, it carries better (nbd_lane.h).
  transports_.push_back(
      std::make_unique<NbdLane>(this, client_.get(), name_, size, served.nbd_port, options));
  transports_.push_back(std::make_unique<SessionLanes>(this, client_.get(), name_, options));
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
        for (auto& t : transports_) t->QueuedLocked(*c);
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
  Actions actions;
  {
    std::unique_lock<std::mutex> lock(mu_);
    if (closed_) return;
    closing_ = true;
    cv_.wait(lock, [this] { return active_.empty() && completing_ == 0; });
    // Nothing is in flight: ending the links loses nothing, and cancelling
    // (rather than half-closing) cannot hang on a server that is down.
    for (auto& t : transports_) t->CloseLocked(&actions);
  }
  Run(&actions);
  {
    std::unique_lock<std::mutex> lock(mu_);
    cv_.wait(lock, [this] {
      return std::all_of(transports_.begin(), transports_.end(),
                         [](const auto& t) { return t->GoneLocked(); });
    });
    closed_ = true;
  }
  client_->ticker()->Remove(tick_id_);
}

VolumeStats VolumeCore::stats() const {
  std::lock_guard<std::mutex> lock(mu_);
  VolumeStats s = stats_;
  s.in_flight = InFlightLocked();
  s.queued = queue_.size() + held_.size();
  for (const auto& t : transports_) t->AddStatsLocked(&s);
  return s;
}

void VolumeCore::CompleteLocked(Chunk* c, const absl::Status& status, Actions* actions,
                                std::string_view epoch) {
  if (!status.ok()) {
    FinishLocked(c, status, actions);
    return;
  }
  if (c->kind == OpKind::kFlush) {
    writes_flushed_ = std::max(writes_flushed_, c->covers);
    if (!lost_.ok() && epoch == epoch_) {
      // Reported once, like a writeback error to fsync(2).
      FinishLocked(c, std::exchange(lost_, absl::OkStatus()), actions);
      return;
    }
    // A flush the old server answered before it died (its answer handled
    // late) did make what it covered durable.
    if (!lost_.ok() && writes_flushed_ >= lost_upto_) lost_ = absl::OkStatus();
  } else if (Modifies(c->kind) && !c->fua) {  // a FUA write is durable on its own
    ++writes_acked_;
  }
  FinishLocked(c, absl::OkStatus(), actions);
}

void VolumeCore::LearnEpochLocked(const std::string& epoch) {
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
  for (auto& link : actions->starts) link->Start();
  // A carrier that has ended drops what it is given; its transport hands
  // the chunk back when it learns of the end.
  for (auto& [carrier, out] : actions->sends) carrier->Send(std::move(out));
  for (auto& link : actions->cancels) link->Cancel();
  actions->starts.clear();
  actions->sends.clear();
  actions->cancels.clear();
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
  for (auto& t : transports_) t->PrepareLocked(now, actions);
  while (!queue_.empty() && InFlightLocked() < max_in_flight_) {
    Chunk* c = queue_.front();
    if (c->kind == OpKind::kFlush) c->covers = writes_acked_;
    Transport* taker = nullptr;
    for (auto& t : transports_) {
      if (t->TakeLocked(c, now, actions)) {
        taker = t.get();
        break;
      }
    }
    if (taker == nullptr) return;  // every lane waits out a backoff: Tick() retries
    queue_.pop_front();
    c->transport = taker;
    ++c->attempts;
    ++stats_.requests;
  }
}

size_t VolumeCore::InFlightLocked() const {
  size_t n = 0;
  for (const auto& t : transports_) n += t->InFlightLocked();
  return n;
}

void VolumeCore::RequeueLocked(std::vector<Chunk*> chunks, const absl::Status& why) {
  std::sort(chunks.begin(), chunks.end(), BySeq);
  // Pushed to the head in reverse, so they leave in submission order.
  for (auto it = chunks.rbegin(); it != chunks.rend(); ++it) {
    Chunk* c = *it;
    c->transport = nullptr;
    c->link = nullptr;
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
  c->transport = nullptr;
  c->link = nullptr;
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
    std::string stuck;  // what became of a chunk that was sent
    switch (c->state) {
      case Chunk::State::kQueued:
        queue_.erase(std::find(queue_.begin(), queue_.end(), c));
        break;
      case Chunk::State::kHeld:
        held_.erase(std::find(held_.begin(), held_.end(), c));
        break;
      case Chunk::State::kSent:
      case Chunk::State::kClaimed:
        // Only its holder may hand a claimed chunk back (transport.h).
        if (!c->transport->ReleaseExpiredLocked(c, actions, &stuck)) continue;
        break;
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
