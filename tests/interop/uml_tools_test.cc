// Interop with User-Mode Linux's own tools (Debian uml-utilities): files made
// by uml_mkcow are read correctly by our library and cowblk-img, and what we
// write is merged by uml_moo into exactly the image `cowblk-img commit` makes.

#include <algorithm>
#include <cstdio>
#include <random>
#include <set>
#include <string>
#include <vector>

#include "gtest/gtest.h"
#include "nlohmann/json.hpp"
#include "server/cow/cow_file.h"
#include "tests/support/command.h"
#include "tests/support/edge_ranges.h"
#include "tests/support/scratch.h"

namespace cowblk::cow {
namespace {

using ::cowblk::testing::CommandResult;
using ::cowblk::testing::EdgeRanges;
using ::cowblk::testing::RandomBytes;
using ::cowblk::testing::ReadFileBytes;
using ::cowblk::testing::RunCommand;
using ::cowblk::testing::TempDir;
using ::cowblk::testing::WriteFileBytes;

nlohmann::json RunJson(const std::vector<std::string>& argv, int want_exit = 0) {
  CommandResult r = RunCommand(argv);
  EXPECT_EQ(r.exit_code, want_exit) << r.output;
  return nlohmann::json::parse(r.output, nullptr, false);
}

class UmlInteropTest : public ::testing::Test {
 protected:
  std::string Path(const std::string& name) { return dir_.File(name); }

  // Writes `ranges` of random data through the library, mirroring them in
  // `model` (the expected merged image).
  void WriteRanges(CowFile& cow, std::string& model,
                   const std::vector<std::pair<uint64_t, uint64_t>>& ranges,
                   uint32_t seed) {
    for (const auto& [first, count] : ranges) {
      const std::string data = RandomBytes(count * 512, seed++);
      ASSERT_TRUE(cow.Write(first * 512, data.data(), data.size()).ok());
      model.replace(first * 512, data.size(), data);
    }
  }

  // Writes the edge ranges (EdgeRanges) of random data into the COW file at
  // `path` through the library, mirrored in `model`.
  void WriteEdges(const std::string& path, std::string& model, uint32_t seed) {
    OpenOptions rw;
    rw.writable = true;
    auto cow = CowFile::Open(path, rw);
    ASSERT_TRUE(cow.ok()) << cow.status();
    WriteRanges(**cow, model, EdgeRanges(model.size() / 512), seed);
  }

  TempDir dir_;
};

TEST_F(UmlInteropTest, UmlMkcowFileIsDescribedByCowblkImg) {
  const uint64_t size = 4 << 20;
  WriteFileBytes(Path("base.img"), RandomBytes(size, 1));
  ASSERT_EQ(RunCommand({"uml_mkcow", Path("vol.cow"), Path("base.img")}).exit_code, 0);

  nlohmann::json info = RunJson({COWBLK_IMG_BIN, "info", "--json", Path("vol.cow")});
  EXPECT_EQ(info["version"], 3);
  EXPECT_EQ(info["layout"], "v3");
  EXPECT_EQ(info["size"], size);
  EXPECT_EQ(info["sectorsize"], 512);
  EXPECT_EQ(info["alignment"], 4096);
  EXPECT_EQ(info["bitmap_offset"], 8192);
  EXPECT_EQ(info["bitmap_len"], 1024);
  EXPECT_EQ(info["data_offset"], 12288);
  EXPECT_EQ(info["file_size"], 12288 + size);
  EXPECT_EQ(info["backing_file"], Path("base.img"));
  EXPECT_EQ(info["backing_ok"], true);
  EXPECT_EQ(info["allocated_bytes"], 0);

  nlohmann::json check = RunJson({COWBLK_IMG_BIN, "check", "--json", Path("vol.cow")});
  EXPECT_EQ(check["valid"], true);
  nlohmann::json map = RunJson({COWBLK_IMG_BIN, "map", "--json", Path("vol.cow")});
  ASSERT_EQ(map.size(), 1u);
  EXPECT_EQ(map[0]["start"], 0);
  EXPECT_EQ(map[0]["length"], size);
  EXPECT_EQ(map[0]["allocated"], false);
}

TEST_F(UmlInteropTest, CreateMakesTheSameHeaderAsUmlMkcow) {
  WriteFileBytes(Path("base.img"), RandomBytes(1 << 20, 2));
  ASSERT_EQ(RunCommand({"uml_mkcow", Path("uml.cow"), Path("base.img")}).exit_code, 0);
  ASSERT_EQ(RunCommand({COWBLK_IMG_BIN, "create", "-b", Path("base.img"), Path("ours.cow")})
                .exit_code,
            0);
  const std::string uml = ReadFileBytes(Path("uml.cow"));
  const std::string ours = ReadFileBytes(Path("ours.cow"));
  EXPECT_EQ(uml.size(), ours.size());
  EXPECT_EQ(uml.substr(0, kV3HeaderSize), ours.substr(0, kV3HeaderSize));
}

TEST_F(UmlInteropTest, UmlMkcowFileWrittenByTheLibraryIsMergedByUmlMoo) {
  const uint64_t size = 2 << 20;
  std::string model = RandomBytes(size, 3);
  WriteFileBytes(Path("base.img"), model);
  ASSERT_EQ(RunCommand({"uml_mkcow", Path("vol.cow"), Path("base.img")}).exit_code, 0);
  {
    auto cow = CowFile::Open(Path("vol.cow"), OpenOptions{});
    ASSERT_TRUE(cow.ok()) << cow.status();
    std::string buf(size, '\0');
    ASSERT_TRUE((*cow)->Read(0, buf.data(), size).ok());
    ASSERT_EQ(buf, model);
  }
  WriteEdges(Path("vol.cow"), model, 100);
  ASSERT_EQ(RunCommand({"uml_moo", Path("vol.cow"), Path("merged.img")}).exit_code, 0);
  EXPECT_TRUE(ReadFileBytes(Path("merged.img")) == model);
}

// uml_moo refuses a COW file whose backing file was touched or moved (it
// checks the recorded mtime and opens the recorded path, as UML does);
// after `cowblk-img rebase -u -b NEW` it reads the header we rewrote and
// merges exactly the volume's content.
TEST_F(UmlInteropTest, UmlMooMergesAFileRebasedOntoItsMovedTouchedBacking) {
  const uint64_t size = 2 << 20;
  std::string model = RandomBytes(size, 5);
  WriteFileBytes(Path("base.img"), model);
  ASSERT_EQ(RunCommand({"uml_mkcow", Path("vol.cow"), Path("base.img")}).exit_code, 0);
  WriteEdges(Path("vol.cow"), model, 200);
  ASSERT_EQ(std::rename(Path("base.img").c_str(), Path("moved.img").c_str()), 0);
  ::cowblk::testing::SetMtime(Path("moved.img"), 978307200);
  ASSERT_NE(RunCommand({"uml_moo", Path("vol.cow"), Path("refused.img")}).exit_code, 0);

  nlohmann::json rebased = RunJson(
      {COWBLK_IMG_BIN, "rebase", "-u", "-b", Path("moved.img"), "--json", Path("vol.cow")});
  EXPECT_EQ(rebased["backing_file"], Path("moved.img"));
  EXPECT_EQ(rebased["mtime"], 978307200);
  ASSERT_EQ(RunCommand({"uml_moo", Path("vol.cow"), Path("merged.img")}).exit_code, 0);
  EXPECT_TRUE(ReadFileBytes(Path("merged.img")) == model);
}

// The acceptance test of the format work: random patterns, each merged by
// uml_moo and by cowblk-img commit, byte for byte equal to each other and to
// the model.
TEST_F(UmlInteropTest, CommitMatchesUmlMooOnRandomizedPatterns) {
  const uint64_t sizes[] = {1 << 20, 4 << 20, (4 << 20) + 3 * 4096, 17 << 20};
  uint32_t seed = 1000;
  for (int round = 0; round < 8; ++round) {
    SCOPED_TRACE("round " + std::to_string(round));
    const uint64_t size = sizes[round % 4];
    const uint64_t sectors = size / 512;
    const std::string tag = std::to_string(round);
    std::string model = RandomBytes(size, seed++);
    if (round % 2 == 1) model.assign(size, '\0');  // holes in the backing too
    WriteFileBytes(Path("base" + tag + ".img"), model);
    ASSERT_EQ(RunCommand({COWBLK_IMG_BIN, "create", "-b", Path("base" + tag + ".img"),
                   Path("vol" + tag + ".cow")})
                  .exit_code,
              0);
    std::mt19937_64 rng(seed++);
    std::vector<std::pair<uint64_t, uint64_t>> ranges = EdgeRanges(sectors);
    for (int i = 0; i < 40; ++i) {
      const uint64_t first = rng() % sectors;
      const uint64_t count = 1 + rng() % std::min<uint64_t>(200, sectors - first);
      ranges.push_back({first, count});
    }
    {
      OpenOptions rw;
      rw.writable = true;
      auto cow = CowFile::Open(Path("vol" + tag + ".cow"), rw);
      ASSERT_TRUE(cow.ok()) << cow.status();
      WriteRanges(**cow, model, ranges, seed);
      seed += 100;
    }
    ASSERT_EQ(RunCommand({"uml_moo", Path("vol" + tag + ".cow"), Path("moo" + tag + ".img")})
                  .exit_code,
              0);
    ASSERT_EQ(RunCommand({COWBLK_IMG_BIN, "commit", Path("vol" + tag + ".cow"),
                   Path("ours" + tag + ".img")})
                  .exit_code,
              0);
    EXPECT_EQ(RunCommand({"cmp", Path("moo" + tag + ".img"), Path("ours" + tag + ".img")})
                  .exit_code,
              0);
    EXPECT_TRUE(ReadFileBytes(Path("ours" + tag + ".img")) == model);

    // And the allocation map lists exactly the sectors written.
    std::set<uint64_t> written;
    for (const auto& [first, count] : ranges) {
      for (uint64_t s = first; s < first + count; ++s) written.insert(s);
    }
    nlohmann::json map =
        RunJson({COWBLK_IMG_BIN, "map", "--json", Path("vol" + tag + ".cow")});
    uint64_t allocated = 0;
    uint64_t next = 0;
    for (const auto& run : map) {
      ASSERT_EQ(run["start"].get<uint64_t>(), next);
      next += run["length"].get<uint64_t>();
      if (!run["allocated"].get<bool>()) continue;
      for (uint64_t s = run["start"].get<uint64_t>() / 512; s < next / 512; ++s) {
        ASSERT_TRUE(written.count(s)) << s;
        ++allocated;
      }
    }
    EXPECT_EQ(next, size);
    EXPECT_EQ(allocated, written.size());
  }
}

}  // namespace
}  // namespace cowblk::cow
