#include "client/src/session_call.h"

#include "client/src/volume_core.h"

namespace cowblk::internal {

std::shared_ptr<SessionCall> SessionCall::Create(VolumeCore* volume, int lane,
                                                 const ClientCore& client, int channel) {
  auto call = std::make_shared<SessionCall>(volume, lane);
  client.PrepareStream(call->ctx_.get());
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
    StartWrite(next, options);
  }
  if (release) RemoveHold();
}

void SessionCall::OnReadDone(bool ok) {
  if (!ok) {
    EndWrites();
    return;
  }
  const uint64_t id = in_.id();
  const int code = in_.code();
  std::string message = std::move(*in_.mutable_message());
  std::string data = std::move(*in_.mutable_data());
  in_.Clear();
  StartRead(&in_);
  volume_->OnResponse(this, id, code, std::move(message), std::move(data));
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
