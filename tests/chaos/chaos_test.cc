// The chaos run: a verified mixed load (writes, write-zeroes, reads, a flush
// after every round) on a real cowblkd through libcowblk while the server is
// SIGKILLed, SIGSTOPped and restarted, in every durability and cache mode.
// Every written sector is self-describing (bench/loadgen/verify.h: its
// offset and generation, hashed), so each read tells which write it holds.
//
// Invariants checked on every read, and on the whole volume after every
// cycle:
// - no acknowledged-and-flushed sector is lost: a sector never reads older
//   than what the last successful flush covered;
// - no sector reads as neither its old nor its new content: every sector is
//   intact and one of the generations written to it since that flush;
// - a write that fails for want of space (the volumes' own small ext4 is
//   filled, FullDisk/...) fails alone, RESOURCE_EXHAUSTED, each of its
//   sectors old or new, and writes succeed once space is back;
// - where nothing may be lost (a SIGSTOP, a SIGTERM restart, and a SIGKILL
//   in ordered and unordered durability: cowblkd acknowledges a write only
//   once the kernel has it) every sector holds exactly its last write;
// - the volume reopens after every restart and `cowblk-img check` finds its
//   COW file clean while the server is down after a SIGKILL (once the dead
//   process's lock is gone) and at the end.
//
// `make test` runs 3 cycles per mode (one of each fault);
// `make chaos` runs COWBLK_CHAOS_CYCLES of them (docs/reliability.md).

#include <fcntl.h>
#include <signal.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <sys/statvfs.h>
#include <sys/types.h>
#include <unistd.h>

#include <algorithm>
#include <array>
#include <chrono>
#include <cstdlib>
#include <fstream>
#include <future>
#include <iostream>
#include <random>
#include <set>
#include <string>
#include <thread>
#include <vector>

#include "absl/strings/str_cat.h"
#include "bench/loadgen/verify.h"
#include "tests/client/client_fixture.h"
#include "tests/support/command.h"

namespace cowblk::testing {
namespace {

constexpr uint64_t kBlock = 4096;
constexpr int kSectors = kBlock / bench::kSector;
constexpr int kBlocks = 256;           // a 1 MiB volume
constexpr int kOpsPerRound = 48;       // each on its own block
constexpr int kRoundsPerCycle = 6;     // the fault comes in the middle one
constexpr uint64_t kSeed = 0x6368616f73;  // "chaos"

enum class Fault { kKill, kStop, kTerm };
const char* FaultName(Fault f) {
  return f == Fault::kKill ? "SIGKILL" : f == Fault::kStop ? "SIGSTOP" : "SIGTERM";
}

int Cycles() {
  const char* env = std::getenv("COWBLK_CHAOS_CYCLES");
  const int n = env != nullptr ? std::atoi(env) : 0;
  return n > 0 ? n : 3;
}

// 'T' once the process is stopped (/proc/PID/stat's state field).
char ProcState(pid_t pid) {
  std::ifstream in(absl::StrCat("/proc/", pid, "/stat"));
  std::string stat((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  const size_t paren = stat.rfind(')');
  return paren != std::string::npos && paren + 2 < stat.size() ? stat[paren + 2] : '?';
}

// What each block may hold. Generations count a block's writes (shared by
// its sectors); generation 0 and those of write-zeroes read as zeros.
struct BlockModel {
  uint64_t issued = 0;                   // the last generation sent
  std::array<uint64_t, kSectors> durable{};  // per sector: covered by a flush
  std::set<uint64_t> zero_gens{0};
  bool failed = false;  // a write failed (ENOSPC): each sector old or new
};

struct ChaosParam {
  const char* durability;
  const char* cache;
  bool full_disk = false;  // volumes on a 16 MiB ext4 that fills up
};

// The free space the full-disk cycles leave: 16 new 4 KiB blocks.
constexpr uint64_t kFreeBytes = 64 << 10;

class ChaosTest : public ClientFixture, public ::testing::WithParamInterface<ChaosParam> {
 protected:
  void SetUp() override {
    fixed_port_ = true;
    if (GetParam().full_disk) {
      // The volumes directory is a small ext4 of its own (CI has root and
      // loop devices, as FullDiskTest in server_limits_test.cc needs).
      volumes_ = dir_.File("volumes");
      const std::string fs = dir_.File("fs.img");
      ASSERT_EQ(RunShell("truncate -s 16M " + fs + " && mkfs.ext4 -q -F -m 0 " + fs +
                         " && mkdir " + volumes_ + " && mount -o loop " + fs + " " + volumes_),
                0)
          << "needs root and loop devices";
      mounted_ = true;
    }
    ClientFixture::StartServer(
        {.args = {"--durability", GetParam().durability, "--cache", GetParam().cache}});
  }

  void TearDown() override {
    if (server_.running()) server_.Stop(SIGKILL);
    if (mounted_) umount2(volumes_.c_str(), MNT_DETACH);
    std::cout << "chaos: durability=" << GetParam().durability << " cache=" << GetParam().cache
              << " full_disk=" << GetParam().full_disk << " cycles=" << cycles_
              << " rounds=" << rounds_ << " bytes_verified=" << bytes_verified_
              << " blocks_rewritten=" << rewritten_ << " enospc=" << enospc_ << "\n";
    RecordProperty("cycles", std::to_string(cycles_));
    RecordProperty("bytes_verified", std::to_string(bytes_verified_));
  }

  // Whether a lost acknowledged write is within the promise right now.
  bool MayLose() const { return may_lose_; }

  // Checks one sector read from block `b`; returns its generation.
  uint64_t CheckSector(int b, int s, const char* data) {
    BlockModel& m = model_[b];
    const uint64_t offset = uint64_t(b) * kBlock + uint64_t(s) * bench::kSector;
    const bench::SectorResult r = bench::CheckSector(data, offset, m.issued, kSeed);
    bytes_verified_ += bench::kSector;
    uint64_t gen = 0;
    if (r.check == bench::SectorCheck::kOk) {
      gen = m.issued;
    } else if (r.check == bench::SectorCheck::kWrongGeneration) {
      gen = r.found;
    } else if (r.check == bench::SectorCheck::kZeros) {
      // The newest zero generation the sector may hold.
      gen = *std::prev(m.zero_gens.upper_bound(m.issued));
    } else {
      ADD_FAILURE() << "sector " << offset << ": "
                    << bench::Describe(r, offset, m.issued, kSeed) << " (" << Where() << ")";
      return m.durable[s];
    }
    const bool zeros = r.check == bench::SectorCheck::kZeros;
    if (!zeros && m.zero_gens.count(gen) != 0) {
      ADD_FAILURE() << "sector " << offset << " holds data of generation " << gen
                    << ", a write-zeroes (" << Where() << ")";
    }
    if (!MayLose() && !m.failed) {
      EXPECT_TRUE(zeros ? m.zero_gens.count(m.issued) != 0 : gen == m.issued)
          << "sector " << offset << " holds generation " << gen << (zeros ? " (zeros)" : "")
          << ", its last write is " << m.issued << " (" << Where() << ")";
    }
    EXPECT_GE(gen, m.durable[s]) << "sector " << offset << " lost flushed generation "
                                 << m.durable[s] << " (" << Where() << ")";
    EXPECT_LE(gen, m.issued) << "sector " << offset << " (" << Where() << ")";
    return gen;
  }

  // A SIGKILLed cowblkd's lock on the COW file can outlive the process by
  // a moment (the kernel tears its io_uring down, and with it the file's
  // last reference, after the exit): `cowblk-img check` then says the file
  // is in use (8 of 100 kills here). Waits until /proc/locks has no lock on
  // its inode any more.
  void WaitForLockRelease() {
    struct stat st;
    ASSERT_EQ(stat(CowFile().c_str(), &st), 0);
    const std::string inode = absl::StrCat(":", st.st_ino, " ");
    const auto give_up = std::chrono::steady_clock::now() + std::chrono::seconds(10);
    while (true) {
      std::ifstream in("/proc/locks");
      const std::string locks((std::istreambuf_iterator<char>(in)),
                              std::istreambuf_iterator<char>());
      if (locks.find(inode) == std::string::npos) return;
      ASSERT_LT(std::chrono::steady_clock::now(), give_up) << "the dead server's lock stays";
      std::this_thread::yield();
    }
  }

  std::string CowFile() const { return dir_.path() + "/volumes/" + name_ + ".cow"; }

  // `cowblk-img check` of the volume's COW file, with the server down.
  void CheckCowFile(const std::string& when) {
    const std::string cow = CowFile();
    const CommandResult r = RunCommand({COWBLK_IMG_BIN, "check", cow}, Stderr::kInOutput);
    EXPECT_EQ(r.exit_code, 0) << cow << " " << when << ": " << r.output;
  }

  std::string Where() const {
    return absl::StrCat("cycle ", cycles_, " round ", rounds_, " after ", FaultName(fault_));
  }

  void Inject(Fault fault) {
    fault_ = fault;
    switch (fault) {
      case Fault::kKill:
        // cowblkd may lose writes no flush covered only in deferred mode.
        may_lose_ = may_lose_ || std::string(GetParam().durability) == "deferred";
        Restart(SIGKILL, [&] {
          WaitForLockRelease();
          CheckCowFile("after SIGKILL");
        });
        break;
      case Fault::kStop:
        ASSERT_EQ(kill(server_.pid(), SIGSTOP), 0);
        while (ProcState(server_.pid()) != 'T') {
          ASSERT_TRUE(server_.running());
          std::this_thread::yield();
        }
        ASSERT_EQ(kill(server_.pid(), SIGCONT), 0);
        break;
      case Fault::kTerm:
        Restart(SIGTERM);
        break;
    }
  }

  // One round: an operation on each of kOpsPerRound distinct blocks, the
  // fault (if any) while half of them are in flight, then a flush.
  void Round(const Fault* fault) {
    std::vector<int> blocks(kBlocks);
    for (int i = 0; i < kBlocks; ++i) blocks[i] = i;
    std::shuffle(blocks.begin(), blocks.end(), rng_);
    blocks.resize(kOpsPerRound);
    struct Op {
      int block;
      int kind;  // 0 write, 1 write-zeroes, 2 read
      std::string buf;
      std::future<absl::Status> done;
    };
    std::vector<Op> ops(kOpsPerRound);
    for (int i = 0; i < kOpsPerRound; ++i) {
      Op& op = ops[i];
      op.block = blocks[i];
      const unsigned dice = rng_() % 100;
      op.kind = dice < 60 ? 0 : dice < 70 ? 1 : 2;
      BlockModel& m = model_[op.block];
      const uint64_t offset = uint64_t(op.block) * kBlock;
      op.buf.assign(kBlock, '\0');
      if (op.kind == 0) {
        bench::FillSectors(op.buf.data(), kSectors, offset, ++m.issued, kSeed);
        op.done = volume_->WriteAsync(offset, op.buf.data(), kBlock);
      } else if (op.kind == 1) {
        m.zero_gens.insert(++m.issued);
        op.done = volume_->WriteZeroesAsync(offset, kBlock);
      } else {
        op.done = volume_->ReadAsync(offset, op.buf.data(), kBlock);
      }
    }
    // The fault comes with half the round acknowledged (and not flushed)
    // and the rest in flight.
    for (int i = 0; i < kOpsPerRound; ++i) {
      if (i == kOpsPerRound / 2 && fault != nullptr) Inject(*fault);
      Op& op = ops[i];
      const absl::Status s = op.done.get();
      if (op.kind != 2 && GetParam().full_disk &&
          s.code() == absl::StatusCode::kResourceExhausted) {
        // No space: the write fails alone, and may have written some of
        // its sectors.
        model_[op.block].failed = true;
        ++enospc_;
        continue;
      }
      ASSERT_TRUE(s.ok()) << "op " << op.kind << " on block " << op.block << ": " << s << " ("
                          << Where() << ")";
      if (op.kind == 2) {
        for (int j = 0; j < kSectors; ++j) {
          CheckSector(op.block, j, op.buf.data() + j * bench::kSector);
        }
      }
    }
    Flush();
    ++rounds_;
  }

  // A flush; when it succeeds, every sector holds its last write durably
  // (unless writes may have been lost: then Verify() learns what survived).
  void Flush() {
    const absl::Status s = volume_->Flush();
    if (DataLossAllowed(s)) {
      lost_reported_ = may_lose_ = true;
      return;
    }
    if (GetParam().full_disk && s.code() == absl::StatusCode::kResourceExhausted) {
      // Deferred mode: the background commit could not write a bitmap
      // block. Nothing is promised durable; a later flush must be.
      ++enospc_;
      return;
    }
    ASSERT_TRUE(s.ok()) << s << " (" << Where() << ")";
    if (lost_reported_) return;
    for (BlockModel& m : model_) {
      if (!m.failed) m.durable.fill(m.issued);
    }
  }

  // A flush may fail DATA_LOSS after a SIGKILL in deferred mode, and on a
  // full disk (the volume's epoch record may not be written: it fails safe).
  bool DataLossAllowed(const absl::Status& s) const {
    return s.code() == absl::StatusCode::kDataLoss && (MayLose() || GetParam().full_disk);
  }

  // Reads the whole volume, checks every sector, and makes what it holds
  // the flushed baseline.
  void Verify() {
    std::string all(kBlocks * kBlock, '\0');
    ASSERT_TRUE(volume_->Read(0, all.data(), all.size()).ok());
    std::vector<bool> exact(kBlocks, true);
    for (int b = 0; b < kBlocks; ++b) {
      for (int s = 0; s < kSectors; ++s) {
        const uint64_t gen =
            CheckSector(b, s, all.data() + (uint64_t(b) * kBlock + s * bench::kSector));
        if (gen != model_[b].issued) exact[b] = false;
      }
    }
    absl::Status s = volume_->Flush();
    if (DataLossAllowed(s)) s = volume_->Flush();
    ASSERT_TRUE(s.ok()) << s << " (" << Where() << ")";
    // A block that lost its last writes (allowed in deferred mode) or holds
    // a failed one is written afresh, so that every block's model is exact
    // again.
    for (int b = 0; b < kBlocks; ++b) {
      model_[b].failed = false;
      if (exact[b]) continue;
      std::string buf(kBlock, '\0');
      bench::FillSectors(buf.data(), kSectors, uint64_t(b) * kBlock, ++model_[b].issued, kSeed);
      ASSERT_TRUE(volume_->Write(uint64_t(b) * kBlock, buf.data(), kBlock).ok());
      ++rewritten_;
    }
    ASSERT_TRUE(volume_->Flush().ok()) << Where();
    for (BlockModel& m : model_) m.durable.fill(m.issued);
    may_lose_ = false;
    lost_reported_ = false;
  }

  // Fills the volumes' file system up to kFreeBytes with a file of the
  // test's own (cowblkd ignores what is not a .cow or .state file).
  void FillDisk() {
    const std::string filler = volumes_ + "/filler";
    const int fd = open(filler.c_str(), O_CREAT | O_WRONLY | O_CLOEXEC, 0600);
    ASSERT_GE(fd, 0);
    // The file system needs blocks of its own for the filler's extents: grow
    // it in pieces, smaller as it gets tight.
    off_t size = 0;
    uint64_t piece = 1 << 20;
    while (true) {
      struct statvfs fs;
      ASSERT_EQ(fstatvfs(fd, &fs), 0);
      const uint64_t free_bytes = uint64_t(fs.f_bfree) * fs.f_frsize;
      if (free_bytes <= kFreeBytes) break;
      const uint64_t want = std::min(piece, free_bytes - kFreeBytes);
      if (fallocate(fd, 0, size, static_cast<off_t>(want)) == 0) {
        size += static_cast<off_t>(want);
      } else if (want <= 4096) {
        break;
      } else {
        piece = want / 2;
      }
    }
    close(fd);
  }

  void Run() {
    const int cycles = Cycles();
    for (int c = 0; c < cycles; ++c) {
      // A fresh volume each cycle: its first writes allocate (what a
      // SIGKILL in deferred mode may lose, and what a full disk refuses).
      name_ = absl::StrCat("chaos", c);
      model_.assign(kBlocks, BlockModel{});
      volume_ = NewVolume(name_, kBlocks * kBlock);
      ASSERT_NE(volume_, nullptr);
      if (GetParam().full_disk) {
        ASSERT_NO_FATAL_FAILURE(FillDisk());
      }
      const Fault fault = static_cast<Fault>(c % 3);
      for (int r = 0; r < kRoundsPerCycle; ++r) {
        ASSERT_NO_FATAL_FAILURE(Round(r == kRoundsPerCycle / 2 ? &fault : nullptr));
        // Space comes back after the fault.
        if (GetParam().full_disk && r == kRoundsPerCycle / 2) {
          ASSERT_EQ(unlink((volumes_ + "/filler").c_str()), 0);
        }
      }
      ASSERT_NO_FATAL_FAILURE(Verify());
      ++cycles_;
      // The volume reopens as well as reconnects.
      volume_->Close();
      auto reopened = client_->OpenVolume(name_);
      ASSERT_TRUE(reopened.ok()) << reopened.status() << " (" << Where() << ")";
      (*reopened)->Close();
      volume_ = nullptr;
      if (c + 1 < cycles) {
        ASSERT_TRUE(client_->DeleteVolume(name_).ok()) << Where();
      }
    }
    ASSERT_EQ(server_.Stop(SIGTERM), 0);
    CheckCowFile("at the end");
  }

  std::string volumes_;  // the mount point, with full_disk
  bool mounted_ = false;
  std::string name_;  // this cycle's volume
  std::unique_ptr<Volume> volume_;
  std::vector<BlockModel> model_;
  std::mt19937 rng_{20};
  Fault fault_ = Fault::kTerm;
  bool may_lose_ = false;       // a SIGKILL in deferred mode since the last Verify()
  bool lost_reported_ = false;  // a flush failed DATA_LOSS since then
  int cycles_ = 0, rounds_ = 0;
  uint64_t bytes_verified_ = 0;
  int rewritten_ = 0;  // blocks that had lost or failed writes
  int enospc_ = 0;     // writes and flushes that failed for want of space
};

TEST_P(ChaosTest, KillStopAndRestartUnderVerifiedLoadLoseNothingFlushedAndTearNoSector) {
  Run();
}

INSTANTIATE_TEST_SUITE_P(
    Modes, ChaosTest,
    ::testing::Values(ChaosParam{"ordered", "writeback"}, ChaosParam{"ordered", "none"},
                      ChaosParam{"deferred", "writeback"}, ChaosParam{"deferred", "none"},
                      ChaosParam{"unordered", "writeback"}, ChaosParam{"unordered", "none"}),
    [](const ::testing::TestParamInfo<ChaosParam>& info) {
      return std::string(info.param.durability) + "_" + info.param.cache;
    });

// The same faults while the volumes' file system is full (writes fail
// RESOURCE_EXHAUSTED, alone) and after space comes back.
INSTANTIATE_TEST_SUITE_P(
    FullDisk, ChaosTest,
    ::testing::Values(ChaosParam{"ordered", "writeback", true}, ChaosParam{"ordered", "none", true},
                      ChaosParam{"deferred", "writeback", true},
                      ChaosParam{"deferred", "none", true},
                      ChaosParam{"unordered", "writeback", true},
                      ChaosParam{"unordered", "none", true}),
    [](const ::testing::TestParamInfo<ChaosParam>& info) {
      return std::string(info.param.durability) + "_" + info.param.cache;
    });

}  // namespace
}  // namespace cowblk::testing
