#include "bench/session_load.h"

#include <sys/resource.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <condition_variable>
#include <deque>
#include <mutex>
#include <numeric>
#include <random>
#include <thread>

#include "absl/strings/str_cat.h"
#include "cowblk/v1/block.grpc.pb.h"

namespace cowblk::bench {
namespace {

using cowblk::v1::SessionRequest;
using cowblk::v1::SessionResponse;
using engine::OpType;

constexpr int kMaxMessage = 40 << 20;  // cowblkd's default; requests carry up to 32 MiB

// What one run's streams share: the offsets to visit, the stop flag, errors.
class Run {
 public:
  Run(const Workload& w, uint64_t volume_size, uint64_t seed) : w_(w) {
    blocks_ = volume_size / w.block_size;
    if (w.random && w.target == Target::kFirst) {
      order_.resize(blocks_);
      std::iota(order_.begin(), order_.end(), 0);
      std::mt19937_64 g(seed);
      std::shuffle(order_.begin(), order_.end(), g);
    }
  }
  const Workload& workload() const { return w_; }
  bool stopped() const { return stop_.load(std::memory_order_relaxed); }
  void Stop() { stop_.store(true, std::memory_order_relaxed); }
  bool exhausted() const { return exhausted_.load(); }

  // Thread-safe; `rng` is the caller's (one per stream).
  bool NextOffset(uint64_t* rng, uint64_t* offset) {
    uint64_t block;
    if (!order_.empty()) {
      const uint64_t i = next_.fetch_add(1, std::memory_order_relaxed);
      if (i >= order_.size()) return Exhaust();
      block = order_[i];
    } else if (w_.random) {
      block = SplitMix(rng) % blocks_;
    } else {
      const uint64_t i = next_.fetch_add(1, std::memory_order_relaxed);
      if (w_.target == Target::kFirst && i >= blocks_) return Exhaust();
      block = i % blocks_;
    }
    *offset = block * w_.block_size;
    return true;
  }

  void Fail(const std::string& error) {
    Stop();
    std::lock_guard<std::mutex> lock(mu_);
    if (errors_++ == 0) first_error_ = error;
  }
  uint64_t errors(std::string* first) {
    std::lock_guard<std::mutex> lock(mu_);
    *first = first_error_;
    return errors_;
  }

 private:
  static uint64_t SplitMix(uint64_t* s) {
    uint64_t z = (*s += 0x9e3779b97f4a7c15ULL);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
    return z ^ (z >> 31);
  }
  bool Exhaust() {
    exhausted_.store(true);
    return false;
  }

  const Workload w_;
  uint64_t blocks_ = 0;
  std::vector<uint32_t> order_;  // random first writes: each block once
  std::atomic<uint64_t> next_{0};
  std::atomic<bool> stop_{false}, exhausted_{false};
  std::mutex mu_;
  uint64_t errors_ = 0;  // guarded by mu_
  std::string first_error_;
};

// One Session stream with `slots` requests in flight. Reactions run on gRPC's
// threads; everything they share is guarded by mu_.
class Stream final : public grpc::ClientBidiReactor<SessionRequest, SessionResponse> {
 public:
  Stream(Run* run, std::shared_ptr<grpc::Channel> channel, const std::string& volume, int slots,
         uint64_t seed)
      : run_(run), channel_(std::move(channel)), stub_(cowblk::v1::BlockService::NewStub(channel_)),
        volume_(volume), slots_(static_cast<size_t>(slots)), rng_(seed) {
    const Workload& w = run->workload();
    for (size_t i = 0; i < slots_.size(); ++i) {
      SessionRequest& r = slots_[i].req;
      r.set_id(i);
      r.set_op(w.op == OpType::kRead ? cowblk::v1::OP_READ : cowblk::v1::OP_WRITE);
      if (w.op == OpType::kRead) {
        r.set_length(w.block_size);
      } else {
        r.mutable_data()->resize(w.block_size);
        FillRandom(r.mutable_data()->data(), w.block_size, &rng_);
      }
    }
    lat_ns_.reserve(1 << 18);
  }

  // Starts the call and the first request of every slot.
  void Start() {
    stub_->async()->Session(&ctx_, this);
    StartRead(&resp_);
    StartCall();
    std::lock_guard<std::mutex> lock(mu_);
    active_ = static_cast<int>(slots_.size());
    start_ns_ = last_done_ns_ = NowNs();
    for (Slot& s : slots_) IssueLocked(&s);
    MaybeWritesDoneLocked();
  }

  void OnReadDone(bool ok) override {
    if (!ok) return;  // the call ends; OnDone follows
    const uint64_t now = NowNs();
    std::lock_guard<std::mutex> lock(mu_);
    last_done_ns_ = now;
    if (resp_.id() >= slots_.size()) {
      run_->Fail(absl::StrCat("answer with unknown id ", resp_.id()));
    } else if (resp_.code() != 0) {
      run_->Fail(absl::StrCat("code ", resp_.code(), ": ", resp_.message()));
    } else {
      lat_ns_.push_back(now - slots_[resp_.id()].start_ns);
    }
    Slot* s = resp_.id() < slots_.size() ? &slots_[resp_.id()] : nullptr;
    StartRead(&resp_);
    if (s != nullptr) IssueLocked(s);
    MaybeWritesDoneLocked();
  }

  void OnWriteDone(bool ok) override {
    std::lock_guard<std::mutex> lock(mu_);
    queue_.pop_front();
    if (!ok) {  // the call is failing: OnDone reports why
      broken_ = true;
      queue_.clear();
    }
    if (!queue_.empty()) {
      WriteFront();
    } else {
      writing_ = false;
    }
    MaybeWritesDoneLocked();
  }

  void OnDone(const grpc::Status& status) override {
    if (!status.ok()) {
      run_->Fail(absl::StrCat("stream: ", status.error_code(), " ", status.error_message()));
    }
    std::lock_guard<std::mutex> lock(mu_);
    done_ = true;
    cv_.notify_all();
  }

  void Wait() {
    std::unique_lock<std::mutex> lock(mu_);
    cv_.wait(lock, [this] { return done_; });
  }
  // After Wait().
  std::vector<uint64_t>& latencies() { return lat_ns_; }
  uint64_t start_ns() const { return start_ns_; }
  uint64_t last_done_ns() const { return last_done_ns_; }

 private:
  struct Slot {
    SessionRequest req;
    uint64_t start_ns = 0;
  };

  // Sends the slot's next request, or retires the slot.
  void IssueLocked(Slot* s) {
    uint64_t offset;
    if (broken_ || run_->stopped() || !run_->NextOffset(&rng_, &offset)) {
      --active_;
      return;
    }
    // The previous write of this request was serialized when it started
    // (StartWrite after StartCall), and its answer came: it may change.
    if (sent_first_) {
      s->req.clear_volume();
    } else {
      s->req.set_volume(volume_);  // the first request of a stream names the volume
      sent_first_ = true;
    }
    s->req.set_offset(offset);
    s->start_ns = NowNs();
    queue_.push_back(s);
    if (!writing_) {
      writing_ = true;
      WriteFront();
    }
  }

  void WriteFront() { StartWrite(&queue_.front()->req); }

  void MaybeWritesDoneLocked() {
    if (active_ == 0 && !writing_ && !writes_done_) {
      writes_done_ = true;
      StartWritesDone();
    }
  }

  Run* const run_;
  std::shared_ptr<grpc::Channel> channel_;
  std::unique_ptr<cowblk::v1::BlockService::Stub> stub_;
  const std::string volume_;
  grpc::ClientContext ctx_;
  SessionResponse resp_;  // the read buffer
  std::vector<Slot> slots_;
  uint64_t rng_;

  std::mutex mu_;  // guards everything below and the slots' requests
  std::condition_variable cv_;
  std::deque<Slot*> queue_;  // requests to send; the front is being written
  std::vector<uint64_t> lat_ns_;
  uint64_t start_ns_ = 0, last_done_ns_ = 0;
  int active_ = 0;  // slots that have not retired
  bool writing_ = false, writes_done_ = false, broken_ = false, done_ = false;
  bool sent_first_ = false;
};

double CpuSeconds() {
  struct rusage ru;
  getrusage(RUSAGE_SELF, &ru);
  auto secs = [](const timeval& t) { return static_cast<double>(t.tv_sec) + t.tv_usec / 1e6; };
  return secs(ru.ru_utime) + secs(ru.ru_stime);
}

}  // namespace

LoadResult RunSessionLoad(const std::vector<std::shared_ptr<grpc::Channel>>& channels,
                          const std::string& volume, uint64_t volume_size, const Workload& w,
                          int depth, double seconds, uint64_t seed) {
  Run run(w, volume_size, seed);
  const double cpu_before = CpuSeconds();
  const int n = std::min<int>(static_cast<int>(channels.size()), depth);
  std::vector<std::unique_ptr<Stream>> streams;
  for (int i = 0; i < n; ++i) {
    const int slots = depth / n + (i < depth % n ? 1 : 0);
    streams.push_back(std::make_unique<Stream>(&run, channels[static_cast<size_t>(i)], volume,
                                               slots, seed * 1000 + static_cast<uint64_t>(i)));
  }
  for (auto& s : streams) s->Start();
  const auto deadline = std::chrono::steady_clock::now() +
                        std::chrono::duration_cast<std::chrono::steady_clock::duration>(
                            std::chrono::duration<double>(seconds));
  // Poll for an early end (device full, an error) every 10 ms.
  while (std::chrono::steady_clock::now() < deadline && !run.stopped() && !run.exhausted()) {
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
  }
  run.Stop();
  LoadResult r;
  uint64_t start = UINT64_MAX, end = 0;
  for (auto& s : streams) {
    s->Wait();
    start = std::min(start, s->start_ns());
    end = std::max(end, s->last_done_ns());
    auto& l = s->latencies();
    r.lat_ns.insert(r.lat_ns.end(), l.begin(), l.end());
  }
  std::sort(r.lat_ns.begin(), r.lat_ns.end());
  r.ops = r.lat_ns.size();
  r.errors = run.errors(&r.first_error);
  r.exhausted = run.exhausted();
  r.seconds = static_cast<double>(end - start) / 1e9;
  r.cpu_seconds = CpuSeconds() - cpu_before;
  return r;
}

std::shared_ptr<grpc::Channel> MakeChannel(const std::string& server, int id) {
  grpc::ChannelArguments args;
  args.SetMaxReceiveMessageSize(kMaxMessage);
  args.SetMaxSendMessageSize(kMaxMessage);
  // Channels with different arguments never share a subchannel (connection).
  args.SetInt(GRPC_ARG_USE_LOCAL_SUBCHANNEL_POOL, 1);
  args.SetInt("cowblk.bench.channel", id);
  return grpc::CreateCustomChannel(server, grpc::InsecureChannelCredentials(), args);
}

}  // namespace cowblk::bench
