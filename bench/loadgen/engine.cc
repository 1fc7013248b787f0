#include "bench/loadgen/engine.h"

#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <thread>

#include "bench/loadgen/verify.h"

namespace cowblk::bench {
namespace {

constexpr int kMaxPrinted = 10;  // error lines of each kind

inline uint64_t Rand(uint64_t& state) {  // splitmix64
  uint64_t z = (state += 0x9e3779b97f4a7c15ull);
  z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
  z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
  return z ^ (z >> 31);
}

uint64_t SeedOf(uint64_t seed, int stream, const std::string& phase) {
  uint64_t s = seed * 0x2545f4914f6cdd1dull + static_cast<uint64_t>(stream + 1);
  for (char c : phase) s = s * 131 + static_cast<unsigned char>(c);
  Rand(s);
  return s;
}

}  // namespace

Engine::Engine(const Workload& w, Target* target, GenerationTable* gens, std::string phase)
    : w_(w), target_(target), gens_(gens), phase_(std::move(phase)) {
  blocks_ = w_.size / w_.bs;
  const size_t stride = (w_.bs + 4095) / 4096 * 4096;
  const size_t slots = static_cast<size_t>(w_.streams) * w_.iodepth;
  buffers_ = static_cast<char*>(std::aligned_alloc(4096, stride * slots));
  if (!buffers_) {
    std::fprintf(stderr, "cowblk-bench: out of memory for %zu buffers\n", slots);
    std::abort();
  }
  // Without verify, writes carry random bytes (not zeros, which a target
  // might store cheaply).
  uint64_t r = w_.seed;
  for (size_t i = 0; i + 8 <= stride * slots; i += 8) {
    const uint64_t v = Rand(r);
    std::memcpy(buffers_ + i, &v, 8);
  }
  const uint64_t io_blocks = w_.io_size ? (w_.io_size + w_.bs - 1) / w_.bs : 0;
  const uint64_t n = static_cast<uint64_t>(w_.streams);
  for (int i = 0; i < w_.streams; i++) {
    auto st = std::make_unique<Stream>();
    st->id = i;
    st->rng = SeedOf(w_.seed, i, phase_);
    const uint64_t u = static_cast<uint64_t>(i);
    st->first = blocks_ * u / n;
    st->count = blocks_ * (u + 1) / n - st->first;
    st->budget = w_.io_size ? (io_blocks * (u + 1) / n - io_blocks * u / n) * w_.bs : UINT64_MAX;
    st->slots.resize(w_.iodepth);
    for (int j = 0; j < w_.iodepth; j++) {
      Slot& s = st->slots[j];
      s.engine = this;
      s.st = st.get();
      s.stream = i;
      s.buf = buffers_ + stride * (static_cast<size_t>(i) * w_.iodepth + j);
    }
    streams_.push_back(std::move(st));
  }
}

Engine::~Engine() { std::free(buffers_); }

Engine::Step Engine::Next(Slot& s) {
  if (stop_.load(std::memory_order_relaxed) ||
      (interrupted_ && interrupted_->load(std::memory_order_relaxed)))
    return Step::kRetire;
  Stream& st = *s.st;
  std::lock_guard<std::mutex> lock(st.mu);
  if (st.budget != UINT64_MAX && st.issued >= st.budget) return Step::kRetire;
  if (st.count == 0 && !w_.random) return Step::kRetire;
  if (t_end_ && NowNs() >= t_end_) return Step::kRetire;
  bool write;
  if (w_.read_pct >= 100) {
    write = false;
  } else if (w_.read_pct <= 0) {
    write = true;
  } else {
    write = static_cast<int>(Rand(st.rng) % 100) >= w_.read_pct;
  }
  uint64_t b;
  int64_t g = 0;
  if (w_.random) {
    b = Rand(st.rng) % blocks_;
    // Redraw a busy block; after a few tries take the next free one (there
    // are more blocks than slots, main.cc checks).
    for (int tries = 0; w_.verify && (g = gens_->TryClaim(b)) < 0; tries++) {
      b = tries < 64 ? Rand(st.rng) % blocks_ : (b + 1) % blocks_;
    }
  } else {
    b = st.first + st.cursor;
    // A busy block is this stream's own request of the previous lap, still
    // in flight (a slow answer while the other slots went round the slice).
    // Wait for it: skipping it would leave it a write short in this lap and
    // give the budget to an extra block, so `--io-size` = n x the slice
    // would no longer write every block n times. Its completion wakes us
    // (Wake; both under st.mu, so the wake-up cannot be missed).
    if (w_.verify && (g = gens_->TryClaim(b)) < 0) {
      st.waiting.push_back(&s);
      return Step::kWait;
    }
    st.cursor = (st.cursor + 1) % st.count;
  }
  if (st.budget != UINT64_MAX) st.issued += w_.bs;
  s.write = write;
  s.block = b;
  s.offset = w_.offset + b * w_.bs;
  if (w_.verify) {
    const uint32_t have = static_cast<uint32_t>(g);
    s.gen = !write ? have : have == GenerationTable::kUnknown ? 1 : have + 1;
  }
  return Step::kSubmit;
}

void Engine::Advance(Slot& s) {
  switch (Next(s)) {
    case Step::kSubmit:
      Submit(s);
      break;
    case Step::kRetire:
      Retire(s);
      break;
    case Step::kWait:  // still active; Wake() retries it
      break;
  }
}

void Engine::Wake(Stream& st) {
  std::vector<Slot*> waiting;
  {
    std::lock_guard<std::mutex> lock(st.mu);
    if (st.waiting.empty()) return;
    waiting.swap(st.waiting);
  }
  for (Slot* s : waiting) Advance(*s);
}

void Engine::Submit(Slot& s) {
  if (w_.verify && s.write) FillSectors(s.buf, w_.bs / kSector, s.offset, s.gen, w_.seed);
  s.t_submit = NowNs();
  if (s.write) {
    target_->Write(s.offset, s.buf, w_.bs, &s);
  } else {
    target_->Read(s.offset, s.buf, w_.bs, &s);
  }
}

void Engine::Retire(Slot& s) {
  s.st->active.fetch_sub(1);
  if (active_.fetch_sub(1) == 1) {
    std::lock_guard<std::mutex> lock(done_mu_);
    done_cv_.notify_all();
  }
}

void Engine::Slot::Done(int err, const char* message, int64_t t_done) {
  engine->Complete(*this, err, message, t_done);
}

void Engine::Check(Slot& s) {
  if (s.gen == 0 || s.gen == GenerationTable::kUnknown) return;  // nothing known
  const size_t sectors = w_.bs / kSector;
  verified_.fetch_add(sectors, std::memory_order_relaxed);
  for (size_t i = 0; i < sectors; i++) {
    const uint64_t off = s.offset + i * kSector;
    const SectorResult r = CheckSector(s.buf + i * kSector, off, s.gen, w_.seed);
    if (r.check == SectorCheck::kOk) continue;
    const uint64_t n = verify_errors_.fetch_add(1);
    if (n < kMaxPrinted) {
      const std::string what = Describe(r, off, s.gen, w_.seed);
      std::lock_guard<std::mutex> lock(print_mu_);
      std::fprintf(stderr, "verify: sector at offset %llu: %s\n",
                   static_cast<unsigned long long>(off), what.c_str());
    }
    if (w_.fail_fast) stop_.store(true);
  }
}

void Engine::Complete(Slot& s, int err, const char* message, int64_t t_done) {
  const bool ok = err == 0;
  if (ok && !s.write && w_.verify) Check(s);
  if (w_.verify) {
    gens_->Release(s.block, ok || !s.write ? s.gen : GenerationTable::kUnknown);
  }
  if (ok) bytes_all_.fetch_add(w_.bs, std::memory_order_relaxed);
  {
    Stream& st = *s.st;
    std::lock_guard<std::mutex> lock(st.mu);
    OpStats& o = s.write ? st.write : st.read;
    if (!ok) {
      o.errors++;
    } else if (t_done >= t_measure_) {
      o.latency.Record(static_cast<uint64_t>(t_done - s.t_submit));
      o.ops++;
      o.bytes += w_.bs;
      st.last_done = std::max(st.last_done, t_done);
    }
  }
  if (!ok) {
    const uint64_t n = io_errors_.fetch_add(1);
    if (n < kMaxPrinted) {
      std::lock_guard<std::mutex> lock(print_mu_);
      std::fprintf(stderr, "cowblk-bench: %s%s at offset %llu: %s\n",
                   phase_.empty() ? "" : (phase_ + ": ").c_str(), s.write ? "write" : "read",
                   static_cast<unsigned long long>(s.offset),
                   message ? message : std::strerror(err));
    }
    stop_.store(true);  // like fio without continue_on_error
  }
  // After the Release above: a slot may be waiting for s.block. Before s
  // goes on: while s is active the run cannot end (and the engine go away).
  if (w_.verify && !w_.random) Wake(*s.st);
  Advance(s);
}

void Engine::RunPolled(Stream& st) {
  for (Slot& s : st.slots) Advance(s);
  while (st.active.load() > 0) {
    absl::Status status = target_->Poll(st.id, 1000);
    if (!status.ok()) {
      io_errors_.fetch_add(1);
      stop_.store(true);
      std::lock_guard<std::mutex> lock(print_mu_);
      std::fprintf(stderr, "cowblk-bench: stream %d: %s\n", st.id, status.ToString().c_str());
      break;
    }
  }
}

Results Engine::Run(const std::atomic<bool>* interrupted) {
  interrupted_ = interrupted;
  t_start_ = NowNs();
  t_measure_ = t_start_ + static_cast<int64_t>(w_.ramp * 1e9);
  t_end_ = w_.runtime > 0 ? t_measure_ + static_cast<int64_t>(w_.runtime * 1e9) : 0;
  active_.store(w_.streams * w_.iodepth);
  for (auto& st : streams_) st->active.store(w_.iodepth);

  if (target_->polled()) {
    std::vector<std::thread> threads;
    for (auto& st : streams_) threads.emplace_back([this, s = st.get()] { RunPolled(*s); });
    for (std::thread& t : threads) t.join();
  } else {
    for (auto& st : streams_) {
      for (Slot& s : st->slots) Advance(s);
    }
    std::unique_lock<std::mutex> lock(done_mu_);
    done_cv_.wait(lock, [this] { return active_.load() == 0; });
  }

  Results r;
  int64_t last = t_measure_;
  for (auto& st : streams_) {
    std::lock_guard<std::mutex> lock(st->mu);
    r.read.latency.Merge(st->read.latency);
    r.read.ops += st->read.ops;
    r.read.bytes += st->read.bytes;
    r.read.errors += st->read.errors;
    r.write.latency.Merge(st->write.latency);
    r.write.ops += st->write.ops;
    r.write.bytes += st->write.bytes;
    r.write.errors += st->write.errors;
    last = std::max(last, st->last_done);
  }
  r.seconds = static_cast<double>(last - t_measure_) / 1e9;
  r.io_errors = io_errors_.load();
  r.verify_errors = verify_errors_.load();
  r.verified_sectors = verified_.load();
  r.bytes_all = bytes_all_.load();
  return r;
}

}  // namespace cowblk::bench
