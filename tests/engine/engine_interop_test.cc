// The engine against User-Mode Linux's own tools (Debian uml-utilities): a
// COW file made by uml_mkcow and filled by the format library reads
// correctly through the engine, and what the engine writes and trims is
// merged by uml_moo into exactly the expected image, byte for byte the one
// `cowblk-img commit` makes.

#include <algorithm>
#include <cstdint>
#include <cstdio>
#include <filesystem>
#include <future>
#include <memory>
#include <ostream>
#include <random>
#include <string>
#include <utility>
#include <vector>

#include "gtest/gtest.h"
#include "server/cow/cow_file.h"
#include "server/engine/engine.h"
#include "tests/engine/backends.h"
#include "tests/support/command.h"
#include "tests/support/edge_ranges.h"
#include "tests/support/scratch.h"

namespace cowblk::engine {
namespace {

using ::cowblk::testing::EdgeRanges;
using ::cowblk::testing::RandomBytes;
using ::cowblk::testing::ReadFileBytes;
using ::cowblk::testing::RunQuietly;
using ::cowblk::testing::TempDir;
using ::cowblk::testing::WriteFileBytes;

// O_DIRECT needs a real filesystem (tmpfs refuses it), so not $TMPDIR.
constexpr char kDirBase[] = "/var/tmp";

// cowblk-img sits next to this binary (build/bin) or in ../bin of it.
std::string CowblkImg() {
  const std::filesystem::path dir = std::filesystem::read_symlink("/proc/self/exe").parent_path();
  for (const auto& p : {dir / "cowblk-img", dir.parent_path() / "bin" / "cowblk-img"}) {
    if (std::filesystem::exists(p)) return p.string();
  }
  return "";
}

struct Mode {
  std::string name;
  Durability durability;
  CacheMode cache;
  IoBackendKind backend = IoBackendKind::kUring;  // OnBothBackends sets it
};
// Names the mode in test listings (ctest shows GetParam() values).
void PrintTo(const Mode& mode, std::ostream* os) { *os << mode.name; }

class EngineInteropTest : public ::testing::TestWithParam<Mode> {
 protected:
  void SetUp() override {
    ASSERT_FALSE(dir_.path().empty()) << "cannot make a directory under " << kDirBase;
    ASSERT_EQ(RunQuietly({"sh", "-c", "command -v uml_mkcow && command -v uml_moo"}), 0)
        << "uml-utilities (uml_mkcow, uml_moo) are not installed";
    EngineOptions options;
    options.io_backend = GetParam().backend;
    auto engine = Engine::Start(options);
    ASSERT_TRUE(engine.ok()) << engine.status();
    engine_ = *std::move(engine);
    ASSERT_STREQ(engine_->io_backend(), BackendName(GetParam().backend));
  }
  void TearDown() override {
    if (volume_ != nullptr) engine_->CloseVolume(volume_);
  }

  std::string Path(const std::string& name) const { return dir_.File(name); }

  void OpenVolume(const std::string& cow_path) {
    cow::OpenOptions rw;
    rw.writable = true;
    auto file = cow::CowFile::Open(cow_path, rw);
    ASSERT_TRUE(file.ok()) << file.status();
    auto volume = engine_->OpenVolume(*std::move(file),
                                      VolumeOptions{GetParam().durability, GetParam().cache});
    ASSERT_TRUE(volume.ok()) << volume.status();
    volume_ = *volume;
  }
  void CloseVolume() {
    engine_->CloseVolume(volume_);
    volume_ = nullptr;
  }

  struct Op {
    Op(OpType type, uint64_t first = 0, uint64_t count = 0, std::string data = "",
       bool fua = false)
        : type(type), first(first), count(count), data(std::move(data)), fua(fua) {}
    OpType type;
    uint64_t first, count;
    std::string data;  // kRead: filled; kWrite: written
    bool fua;
  };
  // Submits `ops` together (callers keep them from overlapping) and waits
  // for all of them.
  void RunOps(std::vector<Op>& ops) {
    std::vector<Request> reqs(ops.size());
    std::vector<std::future<absl::Status>> done;
    for (size_t i = 0; i < ops.size(); ++i) {
      auto promise = std::make_shared<std::promise<absl::Status>>();
      done.push_back(promise->get_future());
      if (ops[i].type == OpType::kRead) ops[i].data.assign(ops[i].count * 512, '\x55');
      reqs[i] = Request::Of(ops[i].type, ops[i].first * 512, ops[i].count * 512,
                            ops[i].data.data(), ops[i].fua);
      reqs[i].done = [promise](absl::Status s) { promise->set_value(std::move(s)); };
      engine_->Submit(volume_, &reqs[i]);
    }
    for (size_t i = 0; i < ops.size(); ++i) {
      const absl::Status status = done[i].get();
      EXPECT_TRUE(status.ok()) << OpTypeName(ops[i].type) << " at sector " << ops[i].first
                               << ": " << status;
    }
  }

  // Reads [first, first + count) through the engine and compares with `model`.
  void ExpectReads(const std::string& model, uint64_t first, uint64_t count) {
    std::vector<Op> ops = {Op(OpType::kRead, first, count)};
    RunOps(ops);
    EXPECT_TRUE(ops[0].data == model.substr(first * 512, count * 512))
        << "sectors [" << first << ", +" << count << ")";
  }

  TempDir dir_{kDirBase};
  std::unique_ptr<Engine> engine_;
  Volume* volume_ = nullptr;
};

TEST_P(EngineInteropTest, UmlMkcowFileFilledByTheLibraryReadsCorrectlyThroughTheEngine) {
  const uint64_t size = (4 << 20) + 3 * 4096;
  const uint64_t sectors = size / 512;
  std::string model = RandomBytes(size, 11);
  WriteFileBytes(Path("base.img"), model);
  ASSERT_EQ(RunQuietly({"uml_mkcow", Path("vol.cow"), Path("base.img")}), 0);
  {
    cow::OpenOptions rw;
    rw.writable = true;
    auto cow = cow::CowFile::Open(Path("vol.cow"), rw);
    ASSERT_TRUE(cow.ok()) << cow.status();
    std::vector<std::pair<uint64_t, uint64_t>> ranges = EdgeRanges(sectors);
    std::mt19937_64 rng(12);
    for (int i = 0; i < 40; ++i) {
      const uint64_t first = rng() % sectors;
      ranges.push_back({first, 1 + rng() % std::min<uint64_t>(200, sectors - first)});
    }
    uint32_t seed = 100;
    for (const auto& [first, count] : ranges) {
      const std::string data = RandomBytes(count * 512, seed++);
      ASSERT_TRUE((*cow)->Write(first * 512, data.data(), data.size()).ok());
      model.replace(first * 512, data.size(), data);
    }
  }
  OpenVolume(Path("vol.cow"));
  ASSERT_NE(volume_, nullptr);

  for (uint64_t first = 0; first < sectors; first += 128) {
    ExpectReads(model, first, std::min<uint64_t>(128, sectors - first));
  }
  for (const auto& [first, count] : EdgeRanges(sectors)) {
    ExpectReads(model, first, count);
    if (first > 0) ExpectReads(model, first - 1, count + 1);  // straddles the edge
  }
  std::mt19937_64 rng(13);
  for (int i = 0; i < 100; ++i) {
    const uint64_t first = rng() % sectors;
    ExpectReads(model, first, 1 + rng() % std::min<uint64_t>(300, sectors - first));
  }
  EXPECT_GT(volume_->stats().bytes_read_cow.value(), 0u);
  EXPECT_GT(volume_->stats().bytes_read_backing.value(), 0u);
}

TEST_P(EngineInteropTest, EngineWritesAndTrimsAreMergedByUmlMooIntoTheExpectedImage) {
  const std::string cowblk_img = CowblkImg();
  ASSERT_FALSE(cowblk_img.empty()) << "build cowblk-img (it goes next to engine_tests)";
  // A 1 MiB file made by uml_mkcow, then one of two bitmap blocks by ours.
  const uint64_t sizes[] = {1 << 20, (17 << 20) + 4096};
  for (int round = 0; round < 2; ++round) {
    SCOPED_TRACE("round " + std::to_string(round));
    const std::string tag = std::to_string(round);
    const uint64_t size = sizes[round];
    const uint64_t sectors = size / 512;
    std::string model = RandomBytes(size, 20 + round);
    WriteFileBytes(Path("base" + tag + ".img"), model);
    const std::string cow_path = Path("vol" + tag + ".cow");
    if (round == 0) {
      ASSERT_EQ(RunQuietly({"uml_mkcow", cow_path, Path("base" + tag + ".img")}), 0);
    } else {
      ASSERT_TRUE(cow::CowFile::Create(cow_path, {Path("base" + tag + ".img")}).ok());
    }
    OpenVolume(cow_path);
    ASSERT_NE(volume_, nullptr);

    // Writes over the edges and at random, then trims (some over written
    // sectors, some over untouched ones), then rewrites of some trims.
    std::vector<Op> ops;
    std::mt19937_64 rng(30 + round);
    uint32_t seed = 1000;
    for (const auto& [first, count] : EdgeRanges(sectors)) {
      ops.push_back({OpType::kWrite, first, count, RandomBytes(count * 512, seed++)});
    }
    for (int i = 0; i < 80; ++i) {
      const uint64_t first = rng() % sectors;
      const uint64_t count = 1 + rng() % std::min<uint64_t>(200, sectors - first);
      const int kind = static_cast<int>(rng() % 8);
      if (kind < 5) {
        ops.push_back({OpType::kWrite, first, count, RandomBytes(count * 512, seed++),
                       kind == 0});
      } else {
        ops.push_back({kind == 5 ? OpType::kWriteZeroes : OpType::kTrim, first, count});
      }
    }
    ops.push_back({OpType::kTrim, 0, 1});
    ops.push_back({OpType::kTrim, sectors - 1, 1});
    ops.push_back({OpType::kTrim, 60, 10});
    ops.push_back({OpType::kWrite, 64, 1, RandomBytes(512, seed++)});

    // Runs them in batches of non-overlapping requests (so the order within
    // a batch does not matter), updating the model.
    for (size_t i = 0; i < ops.size();) {
      std::vector<Op> batch;
      const auto overlaps = [&](const Op& o) {
        return std::any_of(batch.begin(), batch.end(), [&](const Op& b) {
          return o.first < b.first + b.count && b.first < o.first + o.count;
        });
      };
      while (i < ops.size() && batch.size() < 8 && !overlaps(ops[i])) batch.push_back(ops[i++]);
      for (const Op& o : batch) {
        model.replace(o.first * 512, o.count * 512,
                      o.type == OpType::kWrite ? o.data : std::string(o.count * 512, '\0'));
      }
      RunOps(batch);
    }
    std::vector<Op> flush = {Op(OpType::kFlush)};
    RunOps(flush);
    for (uint64_t first = 0; first < sectors; first += 2048) {
      ExpectReads(model, first, std::min<uint64_t>(2048, sectors - first));
    }
    EXPECT_EQ(volume_->stats().io_errors.value(), 0u);
    CloseVolume();

    const std::string moo = Path("moo" + tag + ".img");
    const std::string ours = Path("ours" + tag + ".img");
    ASSERT_EQ(RunQuietly({"uml_moo", cow_path, moo}), 0);
    ASSERT_EQ(RunQuietly({cowblk_img, "commit", cow_path, ours}), 0);
    EXPECT_EQ(RunQuietly({"cmp", moo, ours}), 0);
    const std::string merged = ReadFileBytes(moo);
    ASSERT_EQ(merged.size(), model.size());
    for (uint64_t s = 0; s < sectors; ++s) {
      ASSERT_EQ(merged.compare(s * 512, 512, model, s * 512, 512), 0) << "sector " << s;
    }
  }
}

INSTANTIATE_TEST_SUITE_P(
    Modes, EngineInteropTest,
    ::testing::ValuesIn(OnBothBackends<Mode>(
        {Mode{"OrderedWriteback", Durability::kOrdered, CacheMode::kWriteback},
         Mode{"UnorderedWriteback", Durability::kUnordered, CacheMode::kWriteback},
         Mode{"OrderedDirect", Durability::kOrdered, CacheMode::kNone},
         Mode{"DeferredWriteback", Durability::kDeferred, CacheMode::kWriteback}})),
    [](const ::testing::TestParamInfo<Mode>& info) { return info.param.name; });

}  // namespace
}  // namespace cowblk::engine
