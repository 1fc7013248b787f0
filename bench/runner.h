// The load generator under engine_bench: workloads (what to read or write,
// how, at which depth) and a Runner that keeps one workload's requests in
// flight on one volume of an Engine.
//
// The queue is kept full the way a transport would keep it: the calling
// thread submits the first `depth` requests through Engine::Submit; every
// completion (on the engine thread) records its latency and submits the next
// request of its slot through Engine::Submit again. With `inline_submit` the
// completion resubmits with Volume::Submit instead: legal there (the callback
// runs on the volume's engine thread) but outside Engine's documented
// contract, a diagnostic of what Engine::Submit's wake-up costs.
//
// Thread-safety: a Runner is driven by one thread (Run); its callbacks run
// on the engine thread.

#ifndef COWBLK_BENCH_RUNNER_H_
#define COWBLK_BENCH_RUNNER_H_

#include <atomic>
#include <condition_variable>
#include <cstdint>
#include <mutex>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "server/engine/engine.h"

namespace cowblk::bench {

uint64_t NowNs();
// Fills `len` bytes (a multiple of 8) with pseudo-random data from `state`.
void FillRandom(char* buf, uint64_t len, uint64_t* state);

// What a workload's requests touch.
enum class Target {
  kCow,      // reads of allocated sectors
  kBacking,  // reads of unallocated sectors (served from the backing file)
  kFirst,    // writes to sectors never written
  kRewrite,  // writes to allocated sectors
};
const char* TargetName(Target t);  // "cow", "backing", "first", "rewrite"

struct Workload {
  std::string name;
  engine::OpType op = engine::OpType::kRead;  // kRead or kWrite
  bool random = true;                         // else sequential, from offset 0
  uint64_t block_size = 4096;
  int depth = 1;
  Target target = Target::kCow;
  engine::Durability durability = engine::Durability::kOrdered;  // writes only
};

// Every workload engine_bench knows, in the order it runs them: 4 KiB random
// at depth 1 and 32 and 1 MiB sequential at depth 8, for COW and backing
// reads, then first writes and rewrites in both durability modes. Names look
// like "randread-4k-qd32-cow" and "seqwrite-1m-qd8-first-ordered".
std::vector<Workload> AllWorkloads();

// The VolumeStats counters a run reports.
struct StatsDelta {
  uint64_t fsyncs = 0, bitmap_writes = 0, updates_coalesced = 0, updates_waited = 0;
  uint64_t read_stalls = 0, bytes_read_cow = 0, bytes_read_backing = 0;
  uint64_t allocated_sectors = 0;

  static StatsDelta Of(const engine::VolumeStats& s);
  StatsDelta Minus(const StatsDelta& earlier) const;
};

struct Result {
  uint64_t ops = 0;  // completed successfully
  uint64_t errors = 0;
  std::string first_error;
  double seconds = 0;            // first submit to last completion
  bool exhausted = false;        // first writes: every block was written once
  std::vector<uint64_t> lat_ns;  // per request, sorted
  StatsDelta stats;              // filled in by the caller
};

class Runner {
 public:
  // REQUIRES: `volume` belongs to `engine`; its size is a multiple of
  // w.block_size. Random first writes visit every block at most once (a
  // shuffled order, as fio's random map does); sequential ones stop at the
  // end of the volume; everything else wraps around.
  Runner(engine::Engine* engine, engine::Volume* volume, const Workload& w, uint64_t seed,
         bool inline_submit);
  ~Runner();
  Runner(const Runner&) = delete;
  Runner& operator=(const Runner&) = delete;

  // Runs until `seconds` passed, a request failed, or the blocks to write
  // first ran out; then waits for the requests in flight. Call once.
  Result Run(double seconds);

 private:
  struct Slot {
    Runner* runner = nullptr;
    engine::Request req;
    char* buf = nullptr;
    uint64_t start_ns = 0;
  };

  bool NextOffset(uint64_t* offset);
  // `from_callback`: on the engine thread, in a completion.
  void Issue(Slot* s, uint64_t offset, bool from_callback);
  void OnDone(Slot* s, absl::Status status);

  engine::Engine* engine_;
  engine::Volume* volume_;
  const Workload w_;
  const bool inline_submit_;
  uint64_t blocks_ = 0;
  std::vector<Slot> slots_;
  std::atomic<bool> stop_{false};
  // Touched by the Run thread until the first Submit, then by the engine
  // thread only, and read by Run after active_ dropped to 0.
  uint64_t rng_;
  std::vector<uint32_t> order_;  // random first writes: blocks in order of use
  uint64_t next_ = 0;            // sequential cursor, or index into order_
  bool exhausted_ = false;
  std::vector<uint64_t> lat_ns_;
  uint64_t start_ns_ = 0, last_done_ns_ = 0;
  uint64_t errors_ = 0;
  std::string first_error_;
  std::mutex mu_;
  std::condition_variable cv_;
  int active_ = 0;  // slots still submitting; guarded by mu_
};

}  // namespace cowblk::bench

#endif  // COWBLK_BENCH_RUNNER_H_
