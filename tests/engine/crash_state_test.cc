// Crash states in the spirit of dm-log-writes / CrashMonkey. A random
// workload runs on a Volume over ManualIo with completions released in random
// order; ManualIo logs every write, punch and fdatasync that completed. For
// every crash point we build the states the kernel may leave (everything a
// completed fdatasync covered, plus any subset of the writes issued but not
// yet covered), open each with the format library and check that
//  - no sector reads anything but its backing data or the data of some
//    request to it (never bytes that were never written), and
//  - every write acknowledged before a completed FLUSH is there (or newer).
// Both hold in `ordered` and `deferred` mode. In `unordered` mode such
// states exist, which shows the check can fail.

#include <fcntl.h>
#include <unistd.h>

#include <cstring>
#include <random>
#include <string>
#include <vector>

#include "gtest/gtest.h"
#include "tests/engine/volume_fixture.h"

namespace cowblk::engine {
namespace {

constexpr uint64_t kBackingSize = 128 * 1024;  // 256 sectors
constexpr int kOpsPerRun = 40;
constexpr int kMaxInFlight = 6;
constexpr size_t kSampledSubsets = 48;

struct Findings {
  uint64_t states = 0;
  uint64_t garbage = 0;  // a sector held bytes no request wrote
  uint64_t lost = 0;     // a write acknowledged before a completed flush was gone
  std::string first_problem;
};

class CrashStateTest : public VolumeFixture {
 protected:
  void Reset() {
    TearDown();
    calls_.clear();
    io_.ClearLog();
    unlink(CowPath().c_str());
  }

  bool Overlaps(const Call* a, uint64_t first, uint64_t count) const {
    const uint64_t af = a->req.offset / 512, an = a->req.length / 512;
    return af < first + count && first < af + an;
  }

  // Runs one random workload to completion.
  void RunWorkload(uint32_t seed) {
    std::mt19937 rng(seed);
    int to_issue = kOpsPerRun;
    while (to_issue > 0 || !io_.queued().empty()) {
      int in_flight = 0;
      for (const auto& c : calls_) in_flight += !c->done;
      const bool can_issue = to_issue > 0 && in_flight < kMaxInFlight;
      if (can_issue && (io_.queued().empty() || rng() % 3 == 0)) {
        --to_issue;
        const uint32_t kind = rng() % 20;
        if (kind < 3) {
          Flush();
          continue;
        }
        // Mostly a small hot region (shared bitmap bytes, overwrites), some
        // writes further out. Overlapping requests are never in flight
        // together, so each sector's writes are ordered.
        uint64_t first = rng() % 8 == 0 ? 128 + rng() % 120 : rng() % 64;
        const uint64_t count = 1 + rng() % 8;
        bool busy = false;
        for (const auto& c : calls_) busy |= !c->done && c->req.op() != OpType::kFlush && Overlaps(c.get(), first, count);
        if (busy) continue;
        if (kind < 5) {
          Submit(OpType::kTrim, first, count);
        } else {
          Call* w = Write(first, count, 0);
          // Still unreleased, so the data is filled in before it is written.
          const std::string data = cowblk::testing::RandomBytes(count * 512, rng());
          memcpy(w->buf.data(), data.data(), data.size());
        }
        continue;
      }
      io_.Release(rng() % io_.queued().size());
    }
  }

  // The sector contents a crash state may legally show for `sector`.
  bool Allowed(uint64_t sector, const std::string& got) const {
    if (got == Backing(sector, 1)) return true;
    for (const auto& c : calls_) {
      if (c->req.op() == OpType::kFlush || c->req.op() == OpType::kRead) continue;
      if (!Overlaps(c.get(), sector, 1)) continue;
      if (got == Content(c.get(), sector)) return true;
    }
    return false;
  }

  std::string Content(const Call* c, uint64_t sector) const {
    if (c->req.op() != OpType::kWrite) return std::string(512, '\0');
    return c->buf.substr((sector - c->req.offset / 512) * 512, 512);
  }

  // Checks one crash state (the COW file's bytes) at crash point `p`.
  void CheckState(const std::string& bytes, size_t p, Findings& f) {
    ++f.states;
    const std::string path = dir_.File("crash.cow");
    cowblk::testing::WriteFileBytes(path, bytes);
    auto file = cow::CowFile::Open(path, cow::OpenOptions{});
    ASSERT_TRUE(file.ok()) << file.status();
    std::string got(512, '\0');
    for (uint64_t s = 0; s < kBackingSize / 512; ++s) {
      ASSERT_TRUE((*file)->Read(s * 512, got.data(), 512).ok());
      if (!Allowed(s, got)) {
        if (f.garbage++ == 0) {
          f.first_problem = "garbage in sector " + std::to_string(s) + " at crash point " +
                            std::to_string(p);
        }
        continue;
      }
      // Durability: the newest write to s acknowledged before a flush that
      // completed before the crash must be there, or something newer.
      const Call* must = nullptr;
      for (const auto& fl : calls_) {
        if (fl->req.op() != OpType::kFlush || !fl->done || !fl->status.ok() || fl->ack_log > p) continue;
        for (const auto& c : calls_) {
          if (c->req.op() == OpType::kFlush || c->req.op() == OpType::kRead || !c->status.ok()) continue;
          if (!Overlaps(c.get(), s, 1) || c->ack_event > fl->issue_event) continue;
          if (must == nullptr || c->issue_event > must->issue_event) must = c.get();
        }
      }
      if (must == nullptr) continue;
      bool ok = got == Content(must, s);
      for (const auto& c : calls_) {
        if (c->req.op() == OpType::kFlush || c->req.op() == OpType::kRead) continue;
        if (c->issue_event > must->issue_event && Overlaps(c.get(), s, 1)) ok |= got == Content(c.get(), s);
      }
      if (!ok && f.lost++ == 0) {
        f.first_problem = "flushed write lost in sector " + std::to_string(s) +
                          " at crash point " + std::to_string(p);
      }
    }
  }

  static void Apply(std::string& bytes, const ManualIo::LoggedOp& op) {
    if (op.opcode == IoOpcode::kWrite) {
      bytes.replace(op.offset, op.data.size(), op.data);
    } else if (op.opcode == IoOpcode::kPunchHole || op.opcode == IoOpcode::kZeroRange) {
      const uint64_t end = std::min<uint64_t>(op.offset + op.len, bytes.size());
      std::fill(bytes.begin() + static_cast<std::ptrdiff_t>(op.offset),
                bytes.begin() + static_cast<std::ptrdiff_t>(end), '\0');
    }
  }

  // Enumerates crash states over the log of the finished workload.
  Findings CheckAllCrashStates(uint32_t seed) {
    Findings f;
    const auto& log = io_.log();
    std::mt19937 rng(seed);
    for (size_t p = 0; p <= log.size(); ++p) {
      // Writes that completed before some fdatasync that itself completed
      // before the crash was issued are durable.
      size_t durable_end = 0;
      for (size_t i = 0; i < p; ++i) {
        if (log[i].opcode == IoOpcode::kFdatasync) durable_end = std::max(durable_end, log[i].issued_at);
      }
      std::string base = initial_cow_;
      std::vector<size_t> maybe;  // issued before the crash, not yet durable
      for (size_t i = 0; i < log.size(); ++i) {
        if (log[i].opcode == IoOpcode::kFdatasync) continue;
        if (i < durable_end) {
          Apply(base, log[i]);
        } else if (log[i].issued_at <= p) {
          maybe.push_back(i);
        }
      }
      std::vector<uint64_t> masks;
      if (maybe.size() <= 6) {
        for (uint64_t m = 0; m < (uint64_t{1} << maybe.size()); ++m) masks.push_back(m);
      } else {
        masks = {0, ~uint64_t{0}};
        for (size_t k = 0; k < kSampledSubsets; ++k) masks.push_back(rng() | uint64_t{rng()} << 32);
      }
      for (uint64_t mask : masks) {
        std::string state = base;
        for (size_t j = 0; j < maybe.size(); ++j) {
          if ((mask >> (j % 64)) & 1) Apply(state, log[maybe[j]]);
        }
        CheckState(state, p, f);
        if (::testing::Test::HasFatalFailure()) return f;
      }
    }
    return f;
  }
  // Runs seeds 1-6 in `mode`; the findings of all, and each seed's first
  // problem when it had one.
  Findings RunSeeds(Durability mode, std::vector<std::string>* problems) {
    Findings total;
    for (uint32_t seed = 1; seed <= 6; ++seed) {
      Reset();
      Open(kBackingSize, mode);
      RunWorkload(seed);
      Findings f = CheckAllCrashStates(seed);
      total.states += f.states;
      total.garbage += f.garbage;
      total.lost += f.lost;
      if (f.garbage + f.lost != 0) {
        problems->push_back("seed " + std::to_string(seed) + ": " + f.first_problem);
      }
    }
    return total;
  }
};

TEST_F(CrashStateTest, OrderedModeLeavesNoGarbageAndLosesNoFlushedWrite) {
  std::vector<std::string> problems;
  Findings total = RunSeeds(Durability::kOrdered, &problems);
  EXPECT_TRUE(problems.empty()) << ::testing::PrintToString(problems);
  EXPECT_GT(total.states, 1000u);  // the enumeration really explored states
}

TEST_F(CrashStateTest, DeferredModeLeavesNoGarbageAndLosesNoFlushedWrite) {
  std::vector<std::string> problems;
  Findings total = RunSeeds(Durability::kDeferred, &problems);
  EXPECT_TRUE(problems.empty()) << ::testing::PrintToString(problems);
  EXPECT_GT(total.states, 1000u);
}

TEST_F(CrashStateTest, UnorderedModeCanExposeNeverWrittenSectors) {
  std::vector<std::string> problems;
  Findings total = RunSeeds(Durability::kUnordered, &problems);
  EXPECT_GT(total.garbage, 0u) << "the checker must catch a bitmap bit set before its data";
}

}  // namespace
}  // namespace cowblk::engine
