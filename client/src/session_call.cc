#include "client/src/session_call.h"

#include "client/src/volume_core.h"

#include <algorithm>

namespace cowblk::internal {

std::shared_ptr<SessionCall> SessionCall::Create(VolumeCore* volume, int lane,
                                                 const ClientCore& client, int channel,
                                                 size_t max_batch) {
  auto call = std::make_shared<SessionCall>(volume, lane, max_batch);
  client.PrepareStream(call->ctx_.get());
  // Answers may come several to a message (see OnReadDone).
  call->ctx_->AddMetadata("cowblk-batch", "1");
  // While the server is down the stream waits for the connection (the
  // requests' own deadlines bound the wait) instead of failing at once.
  call->ctx_->set_wait_for_ready(true);
  client.blocks(channel)->async()->Session(call->ctx_.get(), call.get());
  // Held until the stream ended and no write is in progress, so OnDone()
  // cannot come while a Send() from another thread is starting a write.
  call->AddHold();
  call->self_ = call;
  return call;
}

SessionCall::~SessionCall() {
  ctx_.reset();
  volume_->OnStreamGone();
}

void SessionCall::Start() {
  StartRead(&in_);
  StartCall();
}

bool SessionCall::Send(std::unique_ptr<v1::SessionRequest> request) {
  v1::SessionRequest* first;
  {
    std::lock_guard<std::mutex> lock(mu_);
    if (ended_) return false;
    out_.push_back(std::move(request));
    if (writing_) return true;
    writing_ = true;
    first = out_.front().get();
  }
  volume_->CountMessageSent();
  StartWrite(first);
  return true;
}

void SessionCall::OnWriteDone(bool ok) {
  v1::SessionRequest* next = nullptr;
  bool more = false;
  bool release = false;
  {
    std::lock_guard<std::mutex> lock(mu_);
    out_.pop_front();
    if (!ok) ended_ = true;
    if (ended_) {
      out_.clear();
      writing_ = false;
      release = !hold_released_;
      hold_released_ = true;
    } else if (!out_.empty()) {
      next = out_.front().get();
      // Requests that queued during the last write leave together: the
      // first one carries the others in its `batch`, as many as the server
      // said it takes in one message, up to kMaxBatchBytes of data.
      size_t bytes = next->data().size();
      size_t taken = 1;
      while (taken < out_.size() && taken < batch_max_) {
        const size_t more_bytes = out_[taken]->data().size();
        if (bytes + more_bytes > kMaxBatchBytes) break;
        bytes += more_bytes;
        ++taken;
      }
      for (size_t i = 1; i < taken; ++i) {
        next->mutable_batch()->Add(std::move(*out_[i]));
      }
      out_.erase(out_.begin() + 1, out_.begin() + static_cast<std::ptrdiff_t>(taken));
      more = out_.size() > 1;
    } else {
      writing_ = false;
    }
  }
  if (next != nullptr) {
    grpc::WriteOptions options;
    // More requests follow at once: let gRPC coalesce them. The last one of
    // a burst goes without the hint and flushes them all.
    if (more) options.set_buffer_hint();
    volume_->CountMessageSent();
    StartWrite(next, options);
  }
  if (release) RemoveHold();
}

void SessionCall::OnReadInitialMetadataDone(bool ok) {
  if (!ok) return;
  const auto& md = ctx_->GetServerInitialMetadata();
  auto it = md.find("cowblk-batch-max");
  if (it == md.end()) return;  // a server that does not take batches
  size_t max = 0;
  for (char c : it->second) {
    if (c < '0' || c > '9') return;  // not a number: no batches
    max = std::min<size_t>(max * 10 + static_cast<size_t>(c - '0'), max_batch_);
  }
  std::lock_guard<std::mutex> lock(mu_);
  batch_max_ = std::max<size_t>(1, max);
}

void SessionCall::OnReadDone(bool ok) {
  if (!ok) {
    EndWrites();
    return;
  }
  // The message's own answer, then any in its batch, each on its own.
  volume_->CountMessageReceived();
  v1::SessionResponse message;
  message.Swap(&in_);
  StartRead(&in_);
  volume_->OnResponse(this, message.id(), message.code(), std::move(*message.mutable_message()),
                      std::move(*message.mutable_data()));
  for (v1::SessionResponse& r : *message.mutable_batch()) {
    volume_->OnResponse(this, r.id(), r.code(), std::move(*r.mutable_message()),
                        std::move(*r.mutable_data()));
  }
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
  // `self` may be the last reference: the call is freed when it goes.
  std::shared_ptr<SessionCall> self = std::move(self_);
  volume_->OnStreamDone(this, status);
}

}  // namespace cowblk::internal
