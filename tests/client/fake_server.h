// An in-process stand-in for cowblkd whose Session streams do what a test
// says: hold requests unanswered, answer them (OK or an error code), or end
// a stream with a status. It records what it received and answered, in
// order, so tests can pin the client's retry rules exactly (what is resent,
// and when a flush may go), which a real server cannot stage on demand.
// GetVolume answers every name with a 1 MiB volume.

#ifndef COWBLK_TESTS_CLIENT_FAKE_SERVER_H_
#define COWBLK_TESTS_CLIENT_FAKE_SERVER_H_

#include <grpcpp/grpcpp.h>

#include <chrono>
#include <condition_variable>
#include <deque>
#include <functional>
#include <memory>
#include <mutex>
#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "common/handoff.h"
#include "cowblk/v1/block.grpc.pb.h"
#include "cowblk/v1/volume.grpc.pb.h"

namespace cowblk::testing {

class FakeServer {
 public:
  // One line of the log: "recv 2 WRITE 4096" (stream 2 received a write at
  // 4096), "answer 2 WRITE 4096 0" (and answered it with code 0).
  using Log = std::vector<std::string>;
  // How stream `stream` treats a request: the code to answer with, or -1
  // to hold it unanswered.
  using Policy = std::function<int(int stream, const v1::SessionRequest& request)>;

  FakeServer() {
    grpc::ServerBuilder builder;
    builder.AddListeningPort("127.0.0.1:0", grpc::InsecureServerCredentials(), &port_);
    builder.RegisterService(&volumes_);
    builder.RegisterService(&blocks_);
    server_ = builder.BuildAndStart();
  }
  ~FakeServer() {
    server_->Shutdown(std::chrono::system_clock::now());
    server_.reset();  // waits for the reactors' OnDone()
    // gRPC ran their last reactions on its threads, ordered by its own
    // (uninstrumented) sync: taking each lock they released shows
    // ThreadSanitizer that order before the reactors are freed
    // (common/handoff.h).
    for (auto& r : state_.streams) r->Quiesce();
  }

  std::string address() const { return "127.0.0.1:" + std::to_string(port_); }

  void set_policy(Policy p) {
    std::lock_guard<std::mutex> lock(state_.mu);
    state_.policy = std::move(p);
  }
  // Ends stream `stream` with `status` (once its answers are written).
  void Break(int stream, const grpc::Status& status) {
    Reactor* r;
    {
      std::lock_guard<std::mutex> lock(state_.mu);
      r = state_.streams.at(static_cast<size_t>(stream - 1)).get();
    }
    r->Break(status);
  }
  // Waits until the log has `n` lines starting with `prefix`.
  bool WaitFor(const std::string& prefix, size_t n) {
    std::unique_lock<std::mutex> lock(state_.mu);
    return state_.cv.wait_for(lock, std::chrono::seconds(10), [&] {
      size_t count = 0;
      for (const auto& l : state_.log) count += l.rfind(prefix, 0) == 0;
      return count >= n;
    });
  }
  Log log() {
    std::lock_guard<std::mutex> lock(state_.mu);
    return state_.log;
  }
  int streams() {
    std::lock_guard<std::mutex> lock(state_.mu);
    return static_cast<int>(state_.streams.size());
  }

 private:
  class Reactor;
  struct State {
    std::mutex mu;
    std::condition_variable cv;
    Log log;
    Policy policy = [](int, const v1::SessionRequest&) { return 0; };
    std::vector<std::unique_ptr<Reactor>> streams;  // freed after the server stopped
  };

  static std::string OpName(v1::Op op) {
    switch (op) {
      case v1::OP_READ:
        return "READ";
      case v1::OP_WRITE:
        return "WRITE";
      case v1::OP_FLUSH:
        return "FLUSH";
      case v1::OP_TRIM:
        return "TRIM";
      case v1::OP_WRITE_ZEROES:
        return "WRITE_ZEROES";
      default:
        return "?";
    }
  }

  class Reactor : public grpc::ServerBidiReactor<v1::SessionRequest, v1::SessionResponse> {
   public:
    Reactor(State* state, int number) : state_(state), number_(number) {
      StartRead(&in_);
      handoff_.Publish();
    }

    void Break(const grpc::Status& status) {
      std::lock_guard<std::mutex> lock(mu_);
      if (breaking_) return;
      break_ = status;
      breaking_ = true;
      MaybeFinishLocked();
    }

    void OnReadDone(bool ok) override {
      handoff_.Receive();
      if (!ok) {
        Break(grpc::Status::OK);
        return;
      }
      int code;
      const std::string what = absl::StrCat(" ", number_, " ", OpName(in_.op()), " ", in_.offset());
      {
        std::lock_guard<std::mutex> lock(state_->mu);
        state_->log.push_back(absl::StrCat("recv", what));
        code = state_->policy(number_, in_);
        if (code >= 0) state_->log.push_back(absl::StrCat("answer", what, " ", code));
        state_->cv.notify_all();
      }
      if (code >= 0) {
        auto resp = std::make_unique<v1::SessionResponse>();
        resp->set_id(in_.id());
        resp->set_code(code);
        if (code == 0 && in_.op() == v1::OP_READ) resp->set_data(std::string(in_.length(), 'r'));
        if (code != 0) resp->set_message("fake says no");
        std::lock_guard<std::mutex> lock(mu_);
        if (finished_) return;
        out_.push_back(std::move(resp));
        if (out_.size() == 1) StartWrite(out_.front().get());
      }
      std::lock_guard<std::mutex> lock(mu_);
      if (!finished_) StartRead(&in_);
    }
    void OnWriteDone(bool ok) override {
      handoff_.Receive();
      std::lock_guard<std::mutex> lock(mu_);
      out_.pop_front();
      if (!ok) out_.clear();
      if (!out_.empty()) StartWrite(out_.front().get());
      MaybeFinishLocked();
    }
    void OnCancel() override {
      // Often the first reaction, on another thread than the constructor's.
      handoff_.Receive();
      Break(grpc::Status::CANCELLED);
    }
    // After the server stopped (see ~FakeServer).
    void Quiesce() { std::lock_guard<std::mutex> lock(mu_); }
    void OnDone() override {}

   private:
    void MaybeFinishLocked() {
      if (breaking_ && out_.empty() && !finished_) {
        finished_ = true;
        Finish(break_);
      }
    }

    State* const state_;
    const int number_;
    v1::SessionRequest in_;
    std::mutex mu_;
    std::deque<std::unique_ptr<v1::SessionResponse>> out_;
    grpc::Status break_;
    bool breaking_ = false;
    bool finished_ = false;
    HandOff handoff_;  // gRPC's hand-off, shown to TSan
  };

  class Blocks : public v1::BlockService::CallbackService {
   public:
    explicit Blocks(State* state) : state_(state) {}
    grpc::ServerBidiReactor<v1::SessionRequest, v1::SessionResponse>* Session(
        grpc::CallbackServerContext*) override {
      std::lock_guard<std::mutex> lock(state_->mu);
      state_->streams.push_back(
          std::make_unique<Reactor>(state_, static_cast<int>(state_->streams.size()) + 1));
      return state_->streams.back().get();
    }

   private:
    State* const state_;
  };

  class Volumes : public v1::VolumeService::Service {
    grpc::Status GetVolume(grpc::ServerContext*, const v1::GetVolumeRequest* req,
                           v1::Volume* resp) override {
      resp->set_name(req->name());
      resp->set_size_bytes(1 << 20);
      resp->set_sector_size(512);
      resp->set_state(v1::VOLUME_STATE_READY);
      return grpc::Status::OK;
    }
  };

  State state_;
  Volumes volumes_;
  Blocks blocks_{&state_};
  int port_ = 0;
  std::unique_ptr<grpc::Server> server_;
};

}  // namespace cowblk::testing

#endif  // COWBLK_TESTS_CLIENT_FAKE_SERVER_H_
