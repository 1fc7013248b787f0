// CowFile against real files: create, open-time validation, reads and writes
// of the merged view, refusals that change nothing, locks, and commit.

#include "server/cow/cow_file.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <functional>

#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "server/cow/cow_commit.h"
#include "tests/support/scratch.h"

namespace cowblk::cow {
namespace {

using ::cowblk::testing::RandomBytes;
using ::cowblk::testing::ReadFileBytes;
using ::cowblk::testing::SetMtime;
using ::cowblk::testing::TempDir;
using ::cowblk::testing::WriteFileBytes;
using ::testing::HasSubstr;

constexpr uint64_t kSize = 1 << 20;

class CowFileTest : public ::testing::Test {
 protected:
  void SetUp() override {
    backing_ = dir_.File("base.img");
    cow_path_ = dir_.File("vol.cow");
    base_bytes_ = RandomBytes(kSize, 1);
    WriteFileBytes(backing_, base_bytes_);
  }

  std::unique_ptr<CowFile> MustCreate() {
    auto cow = CowFile::Create(cow_path_, CreateOptions{backing_});
    EXPECT_TRUE(cow.ok()) << cow.status();
    return cow.ok() ? *std::move(cow) : nullptr;
  }

  absl::StatusOr<std::unique_ptr<CowFile>> OpenRw() {
    OpenOptions o;
    o.writable = true;
    return CowFile::Open(cow_path_, o);
  }

  TempDir dir_;
  std::string backing_;
  std::string cow_path_;
  std::string base_bytes_;
};

// Runs `hold` in a child process, which keeps its files open until the parent
// calls the returned release function. Synchronizes on pipes, not on time.
class ChildHolder {
 public:
  explicit ChildHolder(const std::function<bool()>& hold) {
    int ready[2], release[2];
    EXPECT_EQ(pipe(ready), 0);
    EXPECT_EQ(pipe(release), 0);
    pid_ = fork();
    if (pid_ == 0) {
      close(ready[0]);
      close(release[1]);
      const char ok = hold() ? 'y' : 'n';
      if (write(ready[1], &ok, 1) != 1) _exit(2);
      char c;
      while (read(release[0], &c, 1) > 0) {
      }
      _exit(0);
    }
    close(ready[1]);
    close(release[0]);
    release_fd_ = release[1];
    char ok = 0;
    EXPECT_EQ(read(ready[0], &ok, 1), 1);
    close(ready[0]);
    held_ = ok == 'y';
  }
  ~ChildHolder() {
    close(release_fd_);
    int status = 0;
    waitpid(pid_, &status, 0);
  }
  bool held() const { return held_; }
  pid_t pid() const { return pid_; }

 private:
  pid_t pid_ = -1;
  int release_fd_ = -1;
  bool held_ = false;
};

TEST_F(CowFileTest, CreateWritesASparseV3FileOfUmlLength) {
  auto cow = MustCreate();
  ASSERT_TRUE(cow);
  const Geometry& g = cow->geometry();
  EXPECT_EQ(g.data_offset, 8192u + 4096u);  // 256-byte bitmap padded to 4 KiB
  struct stat st;
  ASSERT_EQ(stat(cow_path_.c_str(), &st), 0);
  EXPECT_EQ(static_cast<uint64_t>(st.st_size), g.data_offset + kSize);
  EXPECT_LT(static_cast<uint64_t>(st.st_blocks) * 512, 64u * 1024);  // sparse
  EXPECT_EQ(cow->header().size, kSize);
  EXPECT_EQ(cow->bitmap().CountSet(), 0u);
}

TEST_F(CowFileTest, CreateStoresTheBackingPathAbsolute) {
  ASSERT_EQ(chdir(dir_.path().c_str()), 0);
  auto cow = CowFile::Create("rel.cow", CreateOptions{"base.img"});
  ASSERT_TRUE(cow.ok()) << cow.status();
  EXPECT_EQ((*cow)->header().backing_file, backing_);
  ASSERT_EQ(chdir("/"), 0);
}

TEST_F(CowFileTest, CreateRefusesAnExistingFileAndLeavesItAlone) {
  WriteFileBytes(cow_path_, "precious");
  auto cow = CowFile::Create(cow_path_, CreateOptions{backing_});
  ASSERT_FALSE(cow.ok());
  EXPECT_EQ(cow.status().code(), absl::StatusCode::kAlreadyExists);
  EXPECT_EQ(ReadFileBytes(cow_path_), "precious");
}

TEST_F(CowFileTest, CreateWithMissingBackingFailsAndLeavesNoFile) {
  auto cow = CowFile::Create(cow_path_, CreateOptions{dir_.File("nope.img")});
  ASSERT_FALSE(cow.ok());
  EXPECT_EQ(cow.status().code(), absl::StatusCode::kNotFound);
  EXPECT_THAT(cow.status().message(), HasSubstr("nope.img"));
  EXPECT_NE(access(cow_path_.c_str(), F_OK), 0);
}

TEST_F(CowFileTest, CreateOverAnEmptyBackingIsRefused) {
  WriteFileBytes(dir_.File("empty.img"), "");
  auto cow = CowFile::Create(cow_path_, CreateOptions{dir_.File("empty.img")});
  ASSERT_FALSE(cow.ok());
  EXPECT_THAT(cow.status().message(), HasSubstr("size is 0"));
  EXPECT_NE(access(cow_path_.c_str(), F_OK), 0);
}

TEST_F(CowFileTest, UnallocatedSectorsReadFromTheBacking) {
  auto cow = MustCreate();
  std::string buf(kSize, '\0');
  ASSERT_TRUE(cow->Read(0, buf.data(), kSize).ok());
  EXPECT_EQ(buf, base_bytes_);
}

TEST_F(CowFileTest, WrittenSectorsReadBackAndPersistInTheBitmap) {
  std::string expect = base_bytes_;
  const std::string data = RandomBytes(3 * 512, 2);
  {
    auto cow = MustCreate();
    ASSERT_TRUE(cow->Write(63 * 512, data.data(), data.size()).ok());
    expect.replace(63 * 512, data.size(), data);
    EXPECT_EQ(cow->bitmap().CountSet(), 3u);
  }
  auto cow = CowFile::Open(cow_path_, OpenOptions{});
  ASSERT_TRUE(cow.ok()) << cow.status();
  EXPECT_TRUE((*cow)->bitmap().AllSet(63, 3));
  EXPECT_EQ((*cow)->bitmap().CountSet(), 3u);
  std::string buf(kSize, '\0');
  ASSERT_TRUE((*cow)->Read(0, buf.data(), kSize).ok());
  EXPECT_EQ(buf, expect);
  // The bits are where the format puts them: byte 7 bit 7, byte 8 bits 0-1.
  const std::string raw = ReadFileBytes(cow_path_);
  EXPECT_EQ(static_cast<unsigned char>(raw[8192 + 7]), 0x80);
  EXPECT_EQ(static_cast<unsigned char>(raw[8192 + 8]), 0x03);
}

TEST_F(CowFileTest, BadRequestsAreRefusedAndChangeNothing) {
  auto cow = MustCreate();
  const std::string before = ReadFileBytes(cow_path_);
  std::string buf(4096, 'x');
  struct Case {
    uint64_t offset, len;
    absl::StatusCode code;
  } cases[] = {
      {1, 512, absl::StatusCode::kInvalidArgument},
      {0, 100, absl::StatusCode::kInvalidArgument},
      {0, 0, absl::StatusCode::kInvalidArgument},
      {kSize, 512, absl::StatusCode::kOutOfRange},
      {kSize - 512, 1024, absl::StatusCode::kOutOfRange},
      {~uint64_t{0} - 511, 1024, absl::StatusCode::kOutOfRange},  // wraps
      {uint64_t{1} << 63, 512, absl::StatusCode::kOutOfRange},
  };
  for (const Case& c : cases) {
    EXPECT_EQ(cow->Write(c.offset, buf.data(), c.len).code(), c.code)
        << c.offset << "+" << c.len;
    EXPECT_EQ(cow->Read(c.offset, buf.data(), c.len).code(), c.code);
  }
  EXPECT_EQ(ReadFileBytes(cow_path_), before);
  EXPECT_EQ(cow->bitmap().CountSet(), 0u);
}

TEST_F(CowFileTest, WriteToAReadOnlyOpenIsRefused) {
  MustCreate().reset();
  auto cow = CowFile::Open(cow_path_, OpenOptions{});
  ASSERT_TRUE(cow.ok());
  std::string buf(512, 'x');
  EXPECT_EQ((*cow)->Write(0, buf.data(), 512).code(),
            absl::StatusCode::kFailedPrecondition);
}

TEST_F(CowFileTest, OpenMissingCowFileIsNotFound) {
  auto cow = CowFile::Open(dir_.File("missing.cow"), OpenOptions{});
  ASSERT_FALSE(cow.ok());
  EXPECT_EQ(cow.status().code(), absl::StatusCode::kNotFound);
}

TEST_F(CowFileTest, OpenWithMissingBackingNamesIt) {
  MustCreate().reset();
  ASSERT_EQ(unlink(backing_.c_str()), 0);
  auto cow = CowFile::Open(cow_path_, OpenOptions{});
  ASSERT_FALSE(cow.ok());
  EXPECT_EQ(cow.status().code(), absl::StatusCode::kNotFound);
  EXPECT_THAT(cow.status().message(), HasSubstr("open backing file " + backing_));
  OpenOptions header_only;
  header_only.open_backing = false;
  auto inspected = CowFile::Open(cow_path_, header_only);
  ASSERT_TRUE(inspected.ok()) << inspected.status();
  std::string buf(512, '\0');
  EXPECT_EQ((*inspected)->Read(0, buf.data(), 512).code(),
            absl::StatusCode::kFailedPrecondition);
}

TEST_F(CowFileTest, BackingSizeMismatchPrintsBothValues) {
  MustCreate().reset();
  struct stat st;
  stat(backing_.c_str(), &st);
  ASSERT_EQ(truncate(backing_.c_str(), kSize + 4096), 0);
  SetMtime(backing_, st.st_mtime);  // only the size differs
  auto cow = CowFile::Open(cow_path_, OpenOptions{});
  ASSERT_FALSE(cow.ok());
  EXPECT_EQ(cow.status().code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_THAT(cow.status().message(), HasSubstr("Size mismatch (1048576 vs 1052672)"));
}

TEST_F(CowFileTest, BackingMtimeMismatchPrintsBothValues) {
  SetMtime(backing_, 1000000000);
  MustCreate().reset();
  SetMtime(backing_, 1000000007);
  auto cow = CowFile::Open(cow_path_, OpenOptions{});
  ASSERT_FALSE(cow.ok());
  EXPECT_EQ(cow.status().code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_THAT(cow.status().message(),
              HasSubstr("mtime mismatch (1000000000 vs 1000000007)"));
}

TEST_F(CowFileTest, CorruptHeaderIsInvalidArgumentNamingTheFile) {
  MustCreate().reset();
  std::string raw = ReadFileBytes(cow_path_);
  raw[27] = 3;  // alignment 4099
  WriteFileBytes(cow_path_, raw);
  auto cow = CowFile::Open(cow_path_, OpenOptions{});
  ASSERT_FALSE(cow.ok());
  EXPECT_EQ(cow.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(cow.status().message(), HasSubstr(cow_path_ + ": alignment 4099"));
}

TEST_F(CowFileTest, FileShorterThanItsBitmapIsRefusedWithoutAllocating) {
  MustCreate().reset();
  ASSERT_EQ(truncate(cow_path_.c_str(), 8192 + 100), 0);
  auto cow = CowFile::Open(cow_path_, OpenOptions{});
  ASSERT_FALSE(cow.ok());
  EXPECT_THAT(cow.status().message(), HasSubstr("truncated: 8292 bytes"));
}

TEST_F(CowFileTest, AWriterInAnotherProcessLocksUsOut) {
  MustCreate().reset();
  ChildHolder child([&] {
    auto rw = OpenRw();
    if (!rw.ok()) return false;
    rw->release();  // keep the descriptor, and its lock, until the child exits
    return true;
  });
  ASSERT_TRUE(child.held());
  auto rw = OpenRw();
  ASSERT_FALSE(rw.ok());
  EXPECT_EQ(rw.status().code(), absl::StatusCode::kUnavailable);
  EXPECT_THAT(rw.status().message(), HasSubstr("is in use"));
  EXPECT_FALSE(CowFile::Open(cow_path_, OpenOptions{}).ok());
  OpenOptions force_share;
  force_share.lock = false;
  EXPECT_TRUE(CowFile::Open(cow_path_, force_share).ok());
}

TEST_F(CowFileTest, AUmlStylePosixWriteLockExcludesUsAndViceVersa) {
  MustCreate().reset();
  {
    ChildHolder uml([&] {
      int fd = open(cow_path_.c_str(), O_RDWR);
      struct flock fl = {};
      fl.l_type = F_WRLCK;
      fl.l_whence = SEEK_SET;
      return fd >= 0 && fcntl(fd, F_SETLK, &fl) == 0;
    });
    ASSERT_TRUE(uml.held());
    auto rw = OpenRw();
    ASSERT_FALSE(rw.ok());
    EXPECT_THAT(rw.status().message(),
                HasSubstr("process " + std::to_string(uml.pid())));
  }
  auto ours = OpenRw();
  ASSERT_TRUE(ours.ok()) << ours.status();
  ChildHolder uml([&] {
    int fd = open(cow_path_.c_str(), O_RDWR);
    struct flock fl = {};
    fl.l_type = F_WRLCK;
    fl.l_whence = SEEK_SET;
    return fd >= 0 && fcntl(fd, F_SETLK, &fl) == 0;
  });
  EXPECT_FALSE(uml.held());
}

TEST_F(CowFileTest, TwoWritableOpensInOneProcessExcludeEachOther) {
  MustCreate().reset();
  auto first = OpenRw();
  ASSERT_TRUE(first.ok());
  auto second = OpenRw();
  ASSERT_FALSE(second.ok());
  EXPECT_EQ(second.status().code(), absl::StatusCode::kUnavailable);
  first->reset();
  EXPECT_TRUE(OpenRw().ok());
}

TEST_F(CowFileTest, CommitWritesTheMergedViewAsASparseImage) {
  WriteFileBytes(backing_, std::string(kSize, '\0'));  // zeros: holes expected
  auto cow = MustCreate();
  const std::string data = RandomBytes(8192, 3);
  ASSERT_TRUE(cow->Write(4096, data.data(), data.size()).ok());
  auto stats = CommitToImage(*cow, dir_.File("merged.img"));
  ASSERT_TRUE(stats.ok()) << stats.status();
  EXPECT_EQ(stats->bytes_from_cow, 8192u);
  std::string expect(kSize, '\0');
  expect.replace(4096, data.size(), data);
  EXPECT_EQ(ReadFileBytes(dir_.File("merged.img")), expect);
  struct stat st;
  stat(dir_.File("merged.img").c_str(), &st);
  EXPECT_LE(static_cast<uint64_t>(st.st_blocks) * 512, 64u * 1024);
}

TEST_F(CowFileTest, CommitRefusesAnExistingImage) {
  auto cow = MustCreate();
  WriteFileBytes(dir_.File("merged.img"), "keep");
  auto stats = CommitToImage(*cow, dir_.File("merged.img"));
  ASSERT_FALSE(stats.ok());
  EXPECT_EQ(stats.status().code(), absl::StatusCode::kAlreadyExists);
  EXPECT_EQ(ReadFileBytes(dir_.File("merged.img")), "keep");
}

TEST_F(CowFileTest, PartialLastSectorReadsBackingThenZerosAndCommitsExactSize) {
  const std::string odd = RandomBytes(kSize + 100, 4);
  WriteFileBytes(backing_, odd);
  auto cow = MustCreate();
  EXPECT_EQ(cow->geometry().device_size, kSize + 512);
  std::string last(512, 'x');
  ASSERT_TRUE(cow->Read(kSize, last.data(), 512).ok());
  EXPECT_EQ(last, odd.substr(kSize) + std::string(412, '\0'));
  auto stats = CommitToImage(*cow, dir_.File("merged.img"));
  ASSERT_TRUE(stats.ok()) << stats.status();
  EXPECT_EQ(ReadFileBytes(dir_.File("merged.img")), odd);
}

}  // namespace
}  // namespace cowblk::cow
