#include "client/src/session_call.h"

#include <grpcpp/generic/generic_stub.h>

#include <algorithm>

#include "absl/strings/str_cat.h"
#include "client/src/session_lanes.h"

namespace cowblk::internal {
namespace {
// While a thread hands one message's answers to the volume (OnReadDone),
// requests that their callbacks submit from this thread are only queued;
// they leave together, one message per stream, once every answer was
// handled. Without this the window refills in the "waves" the answers
// happened to come in (docs/design.md, "Waves").
thread_local bool t_corked = false;
thread_local std::vector<std::shared_ptr<SessionCall>>* t_corked_calls = nullptr;
}  // namespace

std::shared_ptr<SessionCall> SessionCall::Create(SessionLanes* lanes, int lane,
                                                 const ClientCore& client, int channel,
                                                 size_t max_batch) {
  auto call = std::make_shared<SessionCall>(lanes, lane, max_batch);
  client.PrepareStream(call->ctx_.get());
  // Answers may come several to a message (see OnReadDone).
  call->ctx_->AddMetadata("cowblk-batch", "1");
  // While the server is down the stream waits for the connection (the
  // requests' own deadlines bound the wait) instead of failing at once.
  call->ctx_->set_wait_for_ready(true);
  grpc::GenericStub stub(client.channel(channel));
  stub.PrepareBidiStreamingCall(call->ctx_.get(), "/cowblk.v1.BlockService/Session",
                                grpc::StubOptions(), call.get());
  // Held until the stream ended and no write is in progress, so OnDone()
  // cannot come while a Send() from another thread is starting a write.
  call->AddHold();
  call->self_ = call;
  return call;
}

SessionCall::~SessionCall() {
  ctx_.reset();
  lanes_->OnStreamGone();
}

void SessionCall::Start() {
  // This thread built the call, under the volume's lock, after the lanes.
  handoff_.Publish();
  StartRead(&in_);
  StartCall();
}

void SessionCall::Send(Outgoing out) {
  {
    std::lock_guard<std::mutex> lock(mu_);
    if (ended_) return;
    out_.push_back(std::move(out.message));
    if (writing_) return;
    if (t_corked) {
      if (!corked_) {
        corked_ = true;
        t_corked_calls->push_back(self_);
      }
      return;
    }
    writing_ = true;
    BuildMessageLocked();
  }
  lanes_->CountMessageSent();
  StartWrite(&message_);
}

std::string SessionCall::DebugState() {
  std::lock_guard<std::mutex> lock(mu_);
  return absl::StrCat("writing=", writing_, " ended=", ended_, " queued=", out_.size(),
                      " writes=", writes_started_, "/", writes_done_, " reads=", reads_done_.load(std::memory_order_relaxed),
                      " batch_max=", batch_max_, " hold_released=", hold_released_,
                      " peer=", ctx_->peer());
}

void SessionCall::Uncork() {
  {
    std::lock_guard<std::mutex> lock(mu_);
    corked_ = false;
    if (ended_ || writing_ || out_.empty()) return;
    writing_ = true;
    BuildMessageLocked();
  }
  lanes_->CountMessageSent();
  StartWrite(&message_);
}

void SessionCall::BuildMessageLocked() {
  // Requests that queued during the last write leave together: the first
  // one carries the others in its `batch`, as many as the server said it
  // takes in one message, up to kMaxBatchBytes.
  ++writes_started_;  // every message built is written at once
  std::vector<grpc::Slice> slices;
  slices.push_back(std::move(out_.front()));
  out_.pop_front();
  size_t bytes = slices.back().size();
  size_t taken = 1;
  while (!out_.empty() && taken < batch_max_ && bytes + out_.front().size() <= kMaxBatchBytes) {
    bytes += out_.front().size();
    slices.push_back(wire::RequestBatchEntryPrefix(out_.front().size()));
    slices.push_back(std::move(out_.front()));
    out_.pop_front();
    ++taken;
  }
  message_ = grpc::ByteBuffer(slices.data(), slices.size());
}

void SessionCall::OnWriteDone(bool ok) {
  handoff_.Receive();
  bool next = false;
  bool release = false;
  {
    std::lock_guard<std::mutex> lock(mu_);
    ++writes_done_;
    message_.Clear();
    if (!ok) ended_ = true;
    if (ended_) {
      out_.clear();
      writing_ = false;
      release = !hold_released_;
      hold_released_ = true;
    } else if (!out_.empty()) {
      BuildMessageLocked();
      next = true;
    } else {
      writing_ = false;
    }
  }
  if (next) {
    // No buffer hint, even when more follow: a hinted write may not
    // complete until a later write flushes it (grpc/grpc#12975, #34231),
    // and the later write starts only here, once this one completed. The
    // first message of a stream (which carries the initial metadata) hung
    // that way after reconnects: requests sat unsent until their deadline.
    lanes_->CountMessageSent();
    StartWrite(&message_);
  }
  if (release) RemoveHold();
}

void SessionCall::OnReadInitialMetadataDone(bool ok) {
  handoff_.Receive();
  if (ok) LearnInitialMetadata();
}

void SessionCall::LearnInitialMetadata() {
  // Both reactions may run at once on different threads, and the context
  // fills its metadata map on first use without a lock of its own: two
  // fillers at once corrupt it (keys go missing, nodes leak).
  // Every answer message asks; after the first, one load answers.
  if (metadata_learned_.load(std::memory_order_acquire)) return;
  std::lock_guard<std::mutex> learning(metadata_mu_);
  if (metadata_learned_.load(std::memory_order_relaxed)) return;
  const auto& md = ctx_->GetServerInitialMetadata();
  if (auto it = md.find("cowblk-batch-max"); it != md.end()) {
    size_t max = 0;
    bool number = !it->second.empty();
    for (char c : it->second) {
      if (c < '0' || c > '9') {
        number = false;  // not a number: no batches
        break;
      }
      max = std::min<size_t>(max * 10 + static_cast<size_t>(c - '0'), max_batch_);
    }
    if (number) {
      std::lock_guard<std::mutex> lock(mu_);
      batch_max_ = std::max<size_t>(1, max);
    }
  }
  if (auto it = md.find("cowblk-epoch"); it != md.end()) {
    epoch_.assign(it->second.data(), it->second.size());
  }
  // Still under metadata_mu_: an answer waits for the volume to know the
  // epoch that acknowledged it.
  lanes_->OnStreamEpoch(epoch_);
  metadata_learned_.store(true, std::memory_order_release);
}

void SessionCall::OnReadDone(bool ok) {
  handoff_.Receive();
  if (!ok) {
    EndWrites();
    return;
  }
  lanes_->CountMessageReceived();
  reads_done_.fetch_add(1, std::memory_order_relaxed);
  // Before the first answers: the volume must know which server epoch
  // acknowledged them (initial metadata arrives before any message).
  LearnInitialMetadata();
  // The message's slices (references, no copy) outlive the answers' data.
  std::vector<grpc::Slice> slices;
  const bool dumped = in_.Dump(&slices).ok();
  in_.Clear();
  std::vector<wire::Answer> answers;
  if (!dumped || !wire::ParseAnswers(slices, &answers)) {
    // Not a SessionResponse: this stream cannot be trusted. Ending it makes
    // the volume send its requests again on a new one. No read follows, so
    // release the hold here (as a failed read would).
    ctx_->TryCancel();
    EndWrites();
    return;
  }
  StartRead(&in_);
  // The message's own answer, then any in its batch, each on its own.
  if (answers.size() < 2 || t_corked) {
    for (const wire::Answer& a : answers) {
      lanes_->OnAnswer(this, a);
    }
    return;
  }
  std::vector<std::shared_ptr<SessionCall>> corked;
  t_corked = true;
  t_corked_calls = &corked;
  for (const wire::Answer& a : answers) {
    lanes_->OnAnswer(this, a);
  }
  t_corked = false;
  t_corked_calls = nullptr;
  for (auto& c : corked) c->Uncork();
}

void SessionCall::EndWrites() {
  bool release = false;
  {
    std::lock_guard<std::mutex> lock(mu_);
    ended_ = true;
    if (!writing_) {
      out_.clear();
      release = !hold_released_;
      hold_released_ = true;
    }
  }
  if (release) RemoveHold();
}

void SessionCall::OnDone(const grpc::Status& status) {
  handoff_.Receive();
  // `self` may be the last reference: the call is freed when it goes.
  std::shared_ptr<SessionCall> self = std::move(self_);
  lanes_->OnStreamDone(this, status);
}

}  // namespace cowblk::internal
