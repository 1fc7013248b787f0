#include "bench/runner.h"

#include <algorithm>
#include <chrono>
#include <cstdlib>
#include <cstring>
#include <numeric>
#include <random>

#include "absl/strings/str_cat.h"

namespace cowblk::bench {
namespace {

using engine::Durability;
using engine::OpType;

uint64_t SplitMix64(uint64_t* state) {
  uint64_t z = (*state += 0x9e3779b97f4a7c15ULL);
  z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
  z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
  return z ^ (z >> 31);
}

}  // namespace

uint64_t NowNs() {
  return static_cast<uint64_t>(std::chrono::duration_cast<std::chrono::nanoseconds>(
                                   std::chrono::steady_clock::now().time_since_epoch())
                                   .count());
}

void FillRandom(char* buf, uint64_t len, uint64_t* state) {
  for (uint64_t i = 0; i + 8 <= len; i += 8) {
    const uint64_t v = SplitMix64(state);
    memcpy(buf + i, &v, 8);
  }
}

const char* TargetName(Target t) {
  static const char* kNames[] = {"cow", "backing", "first", "rewrite"};
  return kNames[static_cast<int>(t)];
}

std::vector<Workload> AllWorkloads() {
  struct Shape {
    const char* pattern;
    const char* size_name;
    uint64_t block_size;
    int depth;
  };
  const Shape kShapes[] = {
      {"rand", "4k", 4096, 1}, {"rand", "4k", 4096, 32}, {"seq", "1m", 1 << 20, 8}};
  std::vector<Workload> all;
  auto add = [&](OpType op, Target target, Durability d, const char* suffix) {
    for (const Shape& s : kShapes) {
      Workload w;
      w.op = op;
      w.random = s.pattern[0] == 'r';
      w.block_size = s.block_size;
      w.depth = s.depth;
      w.target = target;
      w.durability = d;
      w.name = absl::StrCat(s.pattern, op == OpType::kRead ? "read" : "write", "-",
                            s.size_name, "-qd", s.depth, "-", TargetName(target), suffix);
      all.push_back(w);
    }
  };
  add(OpType::kRead, Target::kCow, Durability::kOrdered, "");
  add(OpType::kRead, Target::kBacking, Durability::kOrdered, "");
  for (Target t : {Target::kFirst, Target::kRewrite}) {
    add(OpType::kWrite, t, Durability::kOrdered, "-ordered");
    add(OpType::kWrite, t, Durability::kDeferred, "-deferred");
    add(OpType::kWrite, t, Durability::kUnordered, "-unordered");
  }
  return all;
}

StatsDelta StatsDelta::Of(const engine::VolumeStats& s) {
  StatsDelta d;
  d.fsyncs = s.fsyncs.value();
  d.bitmap_writes = s.bitmap_writes.value();
  d.updates_coalesced = s.updates_coalesced.value();
  d.updates_waited = s.updates_waited.value();
  d.read_stalls = s.read_stalls.value();
  d.bytes_read_cow = s.bytes_read_cow.value();
  d.bytes_read_backing = s.bytes_read_backing.value();
  d.allocated_sectors = s.allocated_sectors.value();
  return d;
}
StatsDelta StatsDelta::Minus(const StatsDelta& b) const {
  StatsDelta d;
  d.fsyncs = fsyncs - b.fsyncs;
  d.bitmap_writes = bitmap_writes - b.bitmap_writes;
  d.updates_coalesced = updates_coalesced - b.updates_coalesced;
  d.updates_waited = updates_waited - b.updates_waited;
  d.read_stalls = read_stalls - b.read_stalls;
  d.bytes_read_cow = bytes_read_cow - b.bytes_read_cow;
  d.bytes_read_backing = bytes_read_backing - b.bytes_read_backing;
  d.allocated_sectors = allocated_sectors - b.allocated_sectors;
  return d;
}

Runner::Runner(engine::Engine* engine, engine::Volume* volume, const Workload& w,
               uint64_t seed, bool inline_submit)
    : engine_(engine), volume_(volume), w_(w), inline_submit_(inline_submit), rng_(seed) {
  blocks_ = volume->size() / w.block_size;
  if (w.random && w.target == Target::kFirst) {
    order_.resize(blocks_);
    std::iota(order_.begin(), order_.end(), 0);
    std::mt19937_64 g(seed);
    std::shuffle(order_.begin(), order_.end(), g);
  }
  slots_.resize(static_cast<size_t>(w.depth));
  for (Slot& s : slots_) {
    s.runner = this;
    // Page-aligned: O_DIRECT needs no bounce buffer, and page-cache copies
    // into 16-byte-aligned memory run several times slower on this CPU.
    s.buf = static_cast<char*>(aligned_alloc(4096, w.block_size));
    FillRandom(s.buf, w.block_size, &rng_);
    s.req = engine::Request::Of(w.op, 0, w.block_size, s.buf);
  }
  lat_ns_.reserve(1 << 20);
}

Runner::~Runner() {
  for (Slot& s : slots_) free(s.buf);
}

Result Runner::Run(double seconds) {
  std::vector<uint64_t> first;
  for (int i = 0; i < w_.depth; ++i) {
    uint64_t offset;
    if (!NextOffset(&offset)) break;
    first.push_back(offset);
  }
  // From the first Submit on, offsets are drawn on the engine thread only.
  active_ = static_cast<int>(first.size());
  start_ns_ = NowNs();
  last_done_ns_ = start_ns_;
  const auto deadline = std::chrono::steady_clock::now() +
                        std::chrono::duration_cast<std::chrono::steady_clock::duration>(
                            std::chrono::duration<double>(seconds));
  for (size_t i = 0; i < first.size(); ++i) Issue(&slots_[i], first[i], false);
  std::unique_lock<std::mutex> lock(mu_);
  cv_.wait_until(lock, deadline, [this] { return active_ == 0; });
  stop_.store(true, std::memory_order_relaxed);
  cv_.wait(lock, [this] { return active_ == 0; });

  Result r;
  r.ops = lat_ns_.size();
  r.errors = errors_;
  r.first_error = first_error_;
  r.exhausted = exhausted_;
  r.seconds = static_cast<double>(last_done_ns_ - start_ns_) / 1e9;
  r.lat_ns = std::move(lat_ns_);
  std::sort(r.lat_ns.begin(), r.lat_ns.end());
  return r;
}

bool Runner::NextOffset(uint64_t* offset) {
  uint64_t block;
  if (!order_.empty()) {
    if (next_ == order_.size()) {
      exhausted_ = true;
      return false;
    }
    block = order_[next_++];
  } else if (w_.random) {
    block = SplitMix64(&rng_) % blocks_;
  } else {
    if (next_ == blocks_) {
      if (w_.target == Target::kFirst) {
        exhausted_ = true;
        return false;
      }
      next_ = 0;
    }
    block = next_++;
  }
  *offset = block * w_.block_size;
  return true;
}

void Runner::Issue(Slot* s, uint64_t offset, bool from_callback) {
  s->req.offset = offset;
  // Complete() moved the previous `done` out before calling it: set it anew.
  s->req.done = [s](absl::Status status) { s->runner->OnDone(s, std::move(status)); };
  s->start_ns = NowNs();
  if (from_callback && inline_submit_) {
    volume_->Submit(&s->req);
  } else {
    engine_->Submit(volume_, &s->req);
  }
}

void Runner::OnDone(Slot* s, absl::Status status) {
  const uint64_t now = NowNs();
  last_done_ns_ = now;
  if (!status.ok()) {
    if (errors_++ == 0) first_error_ = status.ToString();
    stop_.store(true, std::memory_order_relaxed);
  } else {
    lat_ns_.push_back(now - s->start_ns);
  }
  uint64_t offset;
  if (!stop_.load(std::memory_order_relaxed) && NextOffset(&offset)) {
    Issue(s, offset, true);
    return;
  }
  std::lock_guard<std::mutex> lock(mu_);
  if (--active_ == 0) cv_.notify_all();
}

}  // namespace cowblk::bench
