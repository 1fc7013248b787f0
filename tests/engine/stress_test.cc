// Randomized stress of the engine on real I/O, on both backends (io_uring
// and worker threads, backends.h). Four client threads issue
// overlapping requests to one volume: reads anywhere (several in flight),
// writes and trims in their own range (one at a time, so the versions of a
// sector are totally ordered) and flushes. Every read is checked sector by
// sector against the model; at the end the stats must balance and the
// reopened COW file must hold the last acknowledged version of every sector.

#include <algorithm>
#include <atomic>
#include <condition_variable>
#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <functional>
#include <future>
#include <iostream>
#include <memory>
#include <mutex>
#include <random>
#include <string>
#include <thread>
#include <vector>

#include "absl/strings/str_format.h"
#include "gtest/gtest.h"
#include "server/cow/cow_file.h"
#include "server/engine/engine.h"
#include "tests/engine/backends.h"
#include "tests/support/scratch.h"

namespace cowblk::engine {
namespace {

constexpr uint64_t kSectors = 98304;  // 48 MiB
constexpr int kClients = 4;
constexpr uint64_t kOwnSectors = kSectors / kClients;
constexpr int kRequestsPerClient = 5000;
constexpr int kReadsInFlight = 4;
constexpr int kWords = 512 / 8;
// O_DIRECT needs a real filesystem (tmpfs refuses it), so not $TMPDIR.
constexpr char kDirBase[] = "/var/tmp";

uint64_t Mix(uint64_t x) {  // splitmix64's finalizer
  x += 0x9e3779b97f4a7c15ull;
  x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9ull;
  x = (x ^ (x >> 27)) * 0x94d049bb133111ebull;
  return x ^ (x >> 31);
}

// Version v of sector s: 0 is the backing file, even versions are writes,
// odd ones trims (zeros). Every 8-byte word of a sector names (s, v) and
// carries a check value, so garbage is told apart from a read torn by a
// concurrent write of the same sector (the page cache copies bytes, not
// sectors, atomically: such reads mix versions, even within a word).
uint64_t PatternWord(uint64_t s, uint64_t v, int i) {
  return ((v + 1) << 40) | (s << 16) | (Mix((s << 32) ^ (v << 8) ^ i) & 0xffff);
}

void FillSector(uint64_t s, uint64_t v, char* out) {
  for (int i = 0; i < kWords; ++i) {
    const uint64_t w = PatternWord(s, v, i);
    memcpy(out + 8 * i, &w, 8);
  }
}

constexpr uint64_t kGarbage = ~0ull;
constexpr uint64_t kZeros = ~0ull - 1;

uint64_t DecodeWord(uint64_t s, int i, uint64_t w) {
  if (w == 0) return kZeros;
  const uint64_t v = (w >> 40) - 1;
  return w == PatternWord(s, v, i) ? v : kGarbage;
}

// What a read of sector s may see: the version acknowledged before the read
// was issued, and the newest version and trim issued by its completion.
struct Bounds {
  uint64_t acked = 0, issued = 0, last_trim = 0;
};

// Returns "" when `p` (512 bytes of sector s) is allowed: words of one
// version in [acked, issued] (zeros only if a trim was issued since the ack),
// or, only while something newer was issued, a byte-wise mix of those (a
// torn read: the page cache copies bytes, not sectors, atomically).
std::string CheckSector(uint64_t s, const char* p, const Bounds& b, bool* torn) {
  const bool zeros_ok = b.last_trim != 0 && b.last_trim >= b.acked;
  const auto allowed = [&](uint64_t v) {  // kGarbage is odd
    return v == kZeros ? zeros_ok : v % 2 == 0 && v >= b.acked && v <= b.issued;
  };
  const auto mixed = [&](int i, uint64_t w) {
    for (int shift = 0; shift < 64; shift += 8) {
      bool found = zeros_ok && ((w >> shift) & 0xff) == 0;
      for (uint64_t v = b.acked + b.acked % 2; v <= b.issued && !found; v += 2) {
        found = (((PatternWord(s, v, i) ^ w) >> shift) & 0xff) == 0;
      }
      if (!found) return false;
    }
    return true;
  };
  uint64_t first = 0;
  for (int i = 0; i < kWords; ++i) {
    uint64_t w;
    memcpy(&w, p + 8 * i, 8);
    const uint64_t v = DecodeWord(s, i, w);
    if (i == 0) first = v;
    if (allowed(v) && v == first) continue;
    if (b.issued == b.acked || (!allowed(v) && !mixed(i, w))) {
      return absl::StrFormat("sector %d word %d is %#x (%s): acked %d, issued %d, trim %d", s,
                             i, w,
                             v == kGarbage ? "garbage"
                             : v == kZeros ? "zeros"
                                           : absl::StrFormat("version %d", v),
                             b.acked, b.issued, b.last_trim);
    }
    *torn = true;
  }
  return "";
}

struct SectorModel {
  std::atomic<uint64_t> issued{0};     // newest version submitted
  std::atomic<uint64_t> acked{0};      // newest version acknowledged
  std::atomic<uint64_t> last_trim{0};  // newest trim submitted, 0 if none
};

// A request and its buffer: 4096-aligned, or 8 bytes off (the engine
// bounces those for O_DIRECT).
struct Call {
  Call(uint64_t len, bool misaligned)
      : mem(static_cast<char*>(std::aligned_alloc(4096, (len + 4096 + 8) / 4096 * 4096)),
            std::free),
        data(mem.get() + (misaligned ? 8 : 0)) {}
  std::unique_ptr<char, void (*)(void*)> mem;
  char* data;
  Request req;
  bool fua = false;
  uint64_t first = 0, count = 0;
  std::vector<Bounds> bounds;  // reads: per sector
  absl::Status status;
};

// One client's requests in flight; owned by the test so that engine
// callbacks never touch a finished thread's stack.
struct Client {
  std::mutex mu;
  std::condition_variable cv;
  int reads = 0;
  bool writing = false;
  bool flushing = false;
  std::atomic<uint64_t> hot{0};  // start of the last write: reads aim there
};

struct Mode {
  std::string name;
  Durability durability;
  CacheMode cache;
  uint32_t alignment;  // 512: 24 bitmap blocks; 4096: three
  uint32_t commit_interval_ms = 0;  // deferred: io_uring timeouts when > 0
  // EngineOptions::poll_us: the engine polls before it sleeps, and
  // submitters skip the wake-up while it does (a lost wake-up hangs a
  // client, and the test with it).
  unsigned poll_us = 0;
  IoBackendKind backend = IoBackendKind::kUring;  // OnBothBackends sets it
};
// Names the mode in test listings (ctest shows GetParam() values).
void PrintTo(const Mode& mode, std::ostream* os) { *os << mode.name; }

class EngineStressTest : public ::testing::TestWithParam<Mode> {
 protected:
  void TearDown() override {
    if (volume_ != nullptr) engine_->CloseVolume(volume_);
  }

  void Fail(const std::string& what) {
    std::lock_guard<std::mutex> lock(failures_mu_);
    if (++failure_count_ <= 20) failures_.push_back(what);
  }
  std::string Failures() {
    std::lock_guard<std::mutex> lock(failures_mu_);
    std::string all = absl::StrFormat("%d failed checks; the first ones:\n", failure_count_);
    for (const std::string& f : failures_) all += f + "\n";
    return all;
  }

  void Submit(Call* call, OpType op, uint64_t first, uint64_t count) {
    call->first = first;
    call->count = count;
    Request plain = Request::Of(op, first * 512, count * 512, call->data, call->fua);
    call->req.kind = plain.kind;
    call->req.offset = plain.offset;
    call->req.length = plain.length;
    sent_[static_cast<int>(op)].fetch_add(1);
    // The polling modes poll after every request.
    SubmitBatch batch(/*poll_after=*/GetParam().poll_us > 0);
    engine_->Submit(volume_, &call->req, &batch);
  }

  void CheckRead(const Call& call) {
    if (!call.status.ok()) return Fail("read failed: " + call.status.ToString());
    for (uint64_t k = 0; k < call.count; ++k) {
      bool torn = false;
      const std::string error =
          CheckSector(call.first + k, call.data + k * 512, call.bounds[k], &torn);
      if (!error.empty()) Fail(error);
      if (torn) torn_sectors_.fetch_add(1);
    }
  }

  void WaitUntil(Client& c, const std::function<bool()>& ready) {
    std::unique_lock<std::mutex> lock(c.mu);
    c.cv.wait(lock, ready);
  }

  // Changes client state under its lock and wakes the client.
  static void Update(Client& c, const std::function<void()>& fn) {
    std::lock_guard<std::mutex> lock(c.mu);
    fn();
    c.cv.notify_all();
  }

  void RunClient(int id) {
    Client& c = clients_[id];
    std::mt19937_64 rng(7919 * (id + 1));
    const uint64_t own = id * kOwnSectors;
    uint64_t counter = 0;
    std::unique_ptr<Call> write, flush;
    for (int n = 0; n < kRequestsPerClient; ++n) {
      const unsigned dice = rng() % 100;
      const bool misaligned = rng() % 4 == 0;
      if (dice < 60) {  // a read, often near another client's latest write
        WaitUntil(c, [&] { return c.reads < kReadsInFlight; });
        const uint64_t count = 1 + rng() % (rng() % 4 == 0 ? 128 : 16);
        uint64_t first = rng() % kSectors;
        if (rng() % 2 == 0) first = clients_[rng() % kClients].hot.load() + rng() % 8;
        first = std::min(first, kSectors - count);
        auto* call = new Call(count * 512, misaligned);
        for (uint64_t s = first; s < first + count; ++s) {
          call->bounds.push_back({model_[s].acked.load()});
        }
        call->req.done = [this, &c, call](absl::Status status) {
          call->status = std::move(status);
          for (uint64_t k = 0; k < call->count; ++k) {
            call->bounds[k].issued = model_[call->first + k].issued.load();
            call->bounds[k].last_trim = model_[call->first + k].last_trim.load();
          }
          CheckRead(*call);
          delete call;
          Update(c, [&] { --c.reads; });
        };
        Update(c, [&] { ++c.reads; });
        Submit(call, OpType::kRead, first, count);
      } else if (dice < 97) {  // a write or trim in the own range
        WaitUntil(c, [&] { return !c.writing; });
        const bool trim = dice >= 88;
        const unsigned size = rng() % 20;
        uint64_t count = 1 + rng() % (size < 14 ? 8 : size < 19 ? 64 : 256);
        uint64_t first = own + rng() % kOwnSectors;
        if (rng() % 3 == 0) first = c.hot.load() + rng() % 16;  // a rewrite, mostly
        first = std::min(first, own + kOwnSectors - 1);
        count = std::min(count, own + kOwnSectors - first);
        const uint64_t version = 2 * ++counter + (trim ? 1 : 0);
        write = std::make_unique<Call>(trim ? 0 : count * 512, misaligned);
        for (uint64_t k = 0; k < count && !trim; ++k) {
          FillSector(first + k, version, write->data + k * 512);
        }
        for (uint64_t s = first; s < first + count; ++s) {
          model_[s].issued.store(version);
          if (trim) model_[s].last_trim.store(version);
        }
        c.hot.store(first);
        write->fua = rng() % 16 == 0;
        write->req.done = [this, &c, first, count, version](absl::Status status) {
          if (!status.ok()) Fail("write/trim failed: " + status.ToString());
          for (uint64_t s = first; s < first + count && status.ok(); ++s) {
            model_[s].acked.store(version);
          }
          Update(c, [&] { c.writing = false; });
        };
        Update(c, [&] { c.writing = true; });
        const OpType op = !trim ? OpType::kWrite
                          : rng() % 2 == 0 ? OpType::kTrim
                                            : OpType::kWriteZeroes;
        Submit(write.get(), op, first, count);
      } else {  // a flush
        WaitUntil(c, [&] { return !c.flushing; });
        flush = std::make_unique<Call>(0, false);
        flush->req.done = [this, &c](absl::Status status) {
          if (!status.ok()) Fail("flush failed: " + status.ToString());
          Update(c, [&] { c.flushing = false; });
        };
        Update(c, [&] { c.flushing = true; });
        Submit(flush.get(), OpType::kFlush, 0, 0);
      }
    }
    WaitUntil(c, [&] { return c.reads == 0 && !c.writing && !c.flushing; });
  }

  std::unique_ptr<Engine> engine_;
  Volume* volume_ = nullptr;
  std::unique_ptr<SectorModel[]> model_{new SectorModel[kSectors]};
  Client clients_[kClients];
  std::atomic<uint64_t> sent_[kOpTypeCount] = {};
  std::atomic<uint64_t> torn_sectors_{0};
  std::mutex failures_mu_;
  std::vector<std::string> failures_;
  int failure_count_ = 0;
};

TEST_P(EngineStressTest, ConcurrentReadsSeeOnlyAllowedVersionsAndReopenAsAcked) {
  const Mode& mode = GetParam();
  cowblk::testing::TempDir dir(kDirBase);
  ASSERT_FALSE(dir.path().empty()) << "cannot make a directory under " << kDirBase;
  {
    std::string backing(kSectors * 512, '\0');
    for (uint64_t s = 0; s < kSectors; ++s) FillSector(s, 0, &backing[s * 512]);
    cowblk::testing::WriteFileBytes(dir.File("base.img"), backing);
  }
  auto file = cow::CowFile::Create(dir.File("vol.cow"),
                                   cow::CreateOptions{dir.File("base.img"), mode.alignment});
  ASSERT_TRUE(file.ok()) << file.status();
  EngineOptions engine_options;
  engine_options.poll_us = mode.poll_us;
  engine_options.io_backend = mode.backend;
  auto engine = Engine::Start(engine_options);
  ASSERT_TRUE(engine.ok()) << engine.status();
  engine_ = *std::move(engine);
  ASSERT_STREQ(engine_->io_backend(), BackendName(mode.backend));
  VolumeOptions options{mode.durability, mode.cache};
  options.commit_interval_ms = mode.commit_interval_ms;
  auto volume = engine_->OpenVolume(*std::move(file), options);
  ASSERT_TRUE(volume.ok()) << volume.status();
  volume_ = *volume;

  std::vector<std::thread> threads;
  for (int id = 0; id < kClients; ++id) threads.emplace_back([this, id] { RunClient(id); });
  for (std::thread& t : threads) t.join();
  EXPECT_EQ(failure_count_, 0) << Failures();
  auto flushed = std::make_shared<std::promise<absl::Status>>();
  Call flush(0, false);
  flush.req.done = [flushed](absl::Status s) { flushed->set_value(std::move(s)); };
  Submit(&flush, OpType::kFlush, 0, 0);
  ASSERT_TRUE(flushed->get_future().get().ok());

  const VolumeStats& st = volume_->stats();
  for (int op = 0; op < kOpTypeCount; ++op) {
    SCOPED_TRACE(OpTypeName(static_cast<OpType>(op)));
    EXPECT_EQ(st.in_flight[op].value(), 0u);
    EXPECT_EQ(st.ops[op].value(), sent_[op].load());
    EXPECT_EQ(st.ops_failed[op].value(), 0u);
  }
  EXPECT_EQ(st.reads_stalled.value(), 0u);
  EXPECT_EQ(st.bitmap_writes_pending.value(), 0u);
  EXPECT_EQ(st.updates_waiting.value(), 0u);
  EXPECT_EQ(st.io_errors.value(), 0u);
  uint64_t touched = 0;  // sectors ever written or trimmed: their bits are set
  for (uint64_t s = 0; s < kSectors; ++s) touched += model_[s].acked.load() != 0;
  EXPECT_EQ(st.allocated_sectors.value(), touched);
  std::cout << absl::StrFormat(
      "[ stats    ] %s: reads %d, writes %d, trims %d, flushes %d; read stalls %d, "
      "updates waited %d, coalesced %d, bitmap writes %d, fsyncs %d, torn sectors %d\n",
      mode.name, sent_[0].load(), sent_[1].load(), sent_[3].load() + sent_[4].load(),
      sent_[2].load(), st.read_stalls.value(), st.updates_waited.value(),
      st.updates_coalesced.value(), st.bitmap_writes.value(), st.fsyncs.value(),
      torn_sectors_.load());
  engine_->CloseVolume(volume_);
  volume_ = nullptr;

  // The file on disk holds the last acknowledged version of every sector.
  auto reopened = cow::CowFile::Open(dir.File("vol.cow"), cow::OpenOptions{});
  ASSERT_TRUE(reopened.ok()) << reopened.status();
  std::string image(kSectors * 512, '\0');
  ASSERT_TRUE((*reopened)->Read(0, image.data(), image.size()).ok());
  for (uint64_t s = 0; s < kSectors; ++s) {
    const uint64_t v = model_[s].acked.load();
    std::string want(512, '\0');
    if (v % 2 == 0) FillSector(s, v, want.data());
    ASSERT_TRUE(image.compare(s * 512, 512, want) == 0 &&
                (*reopened)->bitmap().Test(s) == (v != 0))
        << "sector " << s << " does not hold version " << v << " (bit "
        << (*reopened)->bitmap().Test(s) << ")";
  }
}

INSTANTIATE_TEST_SUITE_P(
    Modes, EngineStressTest,
    ::testing::ValuesIn(OnBothBackends<Mode>({
        Mode{"OrderedWriteback", Durability::kOrdered, CacheMode::kWriteback, 512},
        Mode{"UnorderedWriteback", Durability::kUnordered, CacheMode::kWriteback, 4096},
        Mode{"OrderedDirect", Durability::kOrdered, CacheMode::kNone, 4096},
        Mode{"DeferredWriteback", Durability::kDeferred, CacheMode::kWriteback, 512},
        Mode{"DeferredDirect", Durability::kDeferred, CacheMode::kNone, 4096},
        Mode{"DeferredTimedWriteback", Durability::kDeferred, CacheMode::kWriteback, 4096, 2},
        Mode{"OrderedWritebackPolling", Durability::kOrdered, CacheMode::kWriteback, 512, 0, 200},
        Mode{"DeferredTimedPolling", Durability::kDeferred, CacheMode::kWriteback, 4096, 2, 200},
    })),
    [](const ::testing::TestParamInfo<Mode>& info) { return info.param.name; });

}  // namespace
}  // namespace cowblk::engine
