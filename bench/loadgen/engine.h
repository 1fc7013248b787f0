// The load model of cowblk-bench, the same for every target: `streams`
// streams of `iodepth` slots each; a slot submits its next request as soon
// as its previous one completed. Sequential streams each walk their own
// contiguous slice of the working set and wrap; random requests are uniform
// over the working set, aligned to the block size.
//
// With verify, every block of the working set has a generation in a table;
// a block is claimed by one request at a time (random: busy blocks are
// redrawn; sequential: the slot waits for its block, so that every lap
// covers the whole slice), a write carries generation+1 (verify.h), a read
// checks every sector against the table.

#ifndef COWBLK_BENCH_LOADGEN_ENGINE_H_
#define COWBLK_BENCH_LOADGEN_ENGINE_H_

#include <atomic>
#include <condition_variable>
#include <cstdint>
#include <memory>
#include <mutex>
#include <string>
#include <vector>

#include "bench/loadgen/histogram.h"
#include "bench/loadgen/target.h"

namespace cowblk::bench {

struct Workload {
  std::string rw = "randread";  // fio's names
  bool random = true;
  int read_pct = 100;  // share of reads, 0-100
  uint32_t bs = 4096;
  int iodepth = 1;
  int streams = 1;
  double runtime = 0;    // seconds; 0: none
  double ramp = 0;       // seconds, excluded from the figures
  uint64_t io_size = 0;  // bytes, all streams together; 0: none
  uint64_t offset = 0;   // the working set: [offset, offset+size)
  uint64_t size = 0;
  uint64_t seed = 1;
  bool verify = false;
  bool fail_fast = false;
};

// The generation of every block of the working set, shared by the phases of
// a run (prefill, then the measured job).
class GenerationTable {
 public:
  static constexpr uint32_t kBusy = 1u << 31;
  static constexpr uint32_t kUnknown = kBusy - 1;  // a write failed: not checked
  GenerationTable(uint64_t blocks, uint32_t initial)
      : gens_(new std::atomic<uint32_t>[blocks]), blocks_(blocks) {
    for (uint64_t i = 0; i < blocks; i++) gens_[i].store(initial, std::memory_order_relaxed);
  }
  uint64_t blocks() const { return blocks_; }
  // Claims block b if it is free: its generation, or -1.
  int64_t TryClaim(uint64_t b) {
    uint32_t g = gens_[b].load(std::memory_order_relaxed);
    if (g & kBusy) return -1;
    if (!gens_[b].compare_exchange_strong(g, g | kBusy, std::memory_order_acquire)) return -1;
    return g;
  }
  void Release(uint64_t b, uint32_t generation) {
    gens_[b].store(generation, std::memory_order_release);
  }

 private:
  std::unique_ptr<std::atomic<uint32_t>[]> gens_;
  const uint64_t blocks_;
};

struct OpStats {
  Histogram latency;  // ns, submit to completion
  uint64_t ops = 0;
  uint64_t bytes = 0;
  uint64_t errors = 0;
};

struct Results {
  OpStats read, write;
  double seconds = 0;  // the measured window
  uint64_t io_errors = 0;
  uint64_t verify_errors = 0;     // bad sectors
  uint64_t verified_sectors = 0;  // sectors checked
  uint64_t bytes_all = 0;         // ramp included
};

class Engine {
 public:
  // `gens` is required with w.verify. `phase` names the run in messages.
  Engine(const Workload& w, Target* target, GenerationTable* gens, std::string phase);
  ~Engine();

  // Runs to the end (runtime, io-size, an error, or *interrupted).
  Results Run(const std::atomic<bool>* interrupted);

 private:
  struct Stream;
  struct Slot final : Completion {
    Engine* engine = nullptr;
    Stream* st = nullptr;
    char* buf = nullptr;
    bool write = false;
    uint64_t offset = 0;
    uint64_t block = 0;
    uint32_t gen = 0;  // a read: expected; a write: written
    int64_t t_submit = 0;
    void Done(int err, const char* message, int64_t t_done) override;
  };
  struct Stream {
    int id = 0;
    std::mutex mu;
    uint64_t rng = 0;
    uint64_t first = 0, count = 0, cursor = 0;  // blocks of the sequential slice
    uint64_t budget = 0, issued = 0;            // bytes; budget 0: none
    OpStats read, write;
    int64_t last_done = 0;
    std::atomic<int> active{0};  // slots still running
    std::vector<Slot> slots;
    // Sequential with verify: slots whose next block is still in flight
    // from the previous lap; Wake() retries them after every completion.
    std::vector<Slot*> waiting;
  };

  enum class Step { kSubmit, kWait, kRetire };
  Step Next(Slot& s);
  void Advance(Slot& s);  // Next, then Submit or Retire (or wait)
  void Wake(Stream& st);
  void Submit(Slot& s);
  void Retire(Slot& s);
  void Complete(Slot& s, int err, const char* message, int64_t t_done);
  void Check(Slot& s);
  void RunPolled(Stream& st);

  const Workload w_;
  Target* const target_;
  GenerationTable* const gens_;
  const std::string phase_;
  uint64_t blocks_ = 0;
  char* buffers_ = nullptr;
  std::vector<std::unique_ptr<Stream>> streams_;

  const std::atomic<bool>* interrupted_ = nullptr;
  std::atomic<bool> stop_{false};
  int64_t t_start_ = 0, t_measure_ = 0, t_end_ = 0;  // t_end_ 0: no runtime
  std::atomic<uint64_t> io_errors_{0}, verify_errors_{0}, verified_{0}, bytes_all_{0};
  std::atomic<int> active_{0};
  std::mutex done_mu_;
  std::condition_variable done_cv_;
  std::mutex print_mu_;
};

}  // namespace cowblk::bench

#endif  // COWBLK_BENCH_LOADGEN_ENGINE_H_
