// A Volume over ManualIo on real files, with helpers to submit requests and
// to find and release the operations they queue.

#ifndef COWBLK_TESTS_ENGINE_VOLUME_FIXTURE_H_
#define COWBLK_TESTS_ENGINE_VOLUME_FIXTURE_H_

#include <fcntl.h>
#include <unistd.h>

#include <algorithm>
#include <deque>
#include <memory>
#include <set>
#include <string>

#include "gtest/gtest.h"
#include "server/cow/cow_file.h"
#include "server/engine/manual_io.h"
#include "server/engine/volume.h"
#include "tests/support/scratch.h"

namespace cowblk::engine {

inline constexpr uint64_t kOneMiB = 1 << 20;

class VolumeFixture : public ::testing::Test {
 protected:
  struct Call {
    Request req;
    std::string buf;
    std::vector<ReadExtent> extents;  // Locate()
    bool done = false;
    absl::Status status;
    int order = -1;  // completion order
    uint64_t issue_event = 0;  // event counter at submission and completion
    uint64_t ack_event = 0;
    size_t issue_log = 0;      // io_.log().size() at submission and completion
    size_t ack_log = 0;
  };

  void TearDown() override {
    io_.ReleaseAll();
    vol_.reset();
  }

  std::string CowPath() const { return dir_.File("vol.cow"); }

  void Open(uint64_t backing_size, Durability durability,
            CacheMode cache = CacheMode::kWriteback, uint32_t commit_interval_ms = 0) {
    backing_ = cowblk::testing::RandomBytes(backing_size, 42);
    cowblk::testing::WriteFileBytes(dir_.File("base.img"), backing_);
    auto file = cow::CowFile::Create(CowPath(), cow::CreateOptions{dir_.File("base.img")});
    ASSERT_TRUE(file.ok()) << file.status();
    data_offset_ = (*file)->geometry().data_offset;
    bitmap_offset_ = (*file)->geometry().bitmap_offset;
    initial_cow_ = cowblk::testing::ReadFileBytes(CowPath());
    VolumeOptions options{durability, cache};
    options.commit_interval_ms = commit_interval_ms;
    options.write_split_bytes = write_split_bytes_;
    auto v = Volume::Create(*std::move(file), &io_, options);
    ASSERT_TRUE(v.ok()) << v.status();
    vol_ = *std::move(v);
  }

  Call* SubmitRaw(OpType op, uint64_t offset, uint64_t length, char fill = 0,
                  bool fua = false) {
    Call* c = NewCall();
    c->buf.assign(std::min<uint64_t>(length, 64 * kOneMiB), fill);
    c->req = Request::Of(op, offset, length, c->buf.data(), fua);
    return Issue(c);
  }
  Call* Submit(OpType op, uint64_t sector, uint64_t count) {
    return SubmitRaw(op, sector * 512, count * 512);
  }
  Call* Write(uint64_t sector, uint64_t count, char fill, bool fua = false) {
    return SubmitRaw(OpType::kWrite, sector * 512, count * 512, fill, fua);
  }
  Call* Read(uint64_t sector, uint64_t count) { return Submit(OpType::kRead, sector, count); }
  // A read without a buffer: where the data lies (LocateRead).
  Call* Locate(uint64_t sector, uint64_t count) {
    Call* c = NewCall();
    c->req.kind = LocateRead{&c->extents};
    c->req.offset = sector * 512;
    c->req.length = count * 512;
    return Issue(c);
  }
  Call* Flush() { return SubmitRaw(OpType::kFlush, 0, 0); }
  // A write whose data the caller wrote into the COW file itself, as the
  // NBD export's inline writes do (WrittenWrite).
  // `data_errno`: its write failed so (nothing is written then).
  Call* Written(uint64_t sector, uint64_t count, char fill, int data_errno = 0) {
    if (data_errno == 0) {
      const std::string data(count * 512, fill);
      const int fd = open(CowPath().c_str(), O_WRONLY | O_CLOEXEC);
      EXPECT_EQ(pwrite(fd, data.data(), data.size(), static_cast<off_t>(data_offset_ + sector * 512)),
                static_cast<ssize_t>(data.size()));
      close(fd);
    }
    Call* c = NewCall();
    c->req.kind = WrittenWrite{data_errno};
    c->req.offset = sector * 512;
    c->req.length = count * 512;
    return Issue(c);
  }

  // A call the fixture owns, for the request a method fills in.
  Call* NewCall() {
    calls_.push_back(std::make_unique<Call>());
    return calls_.back().get();
  }
  // Submits c->req, recording when it was issued and answered (events and
  // the I/O log's length).
  Call* Issue(Call* c) {
    c->req.done = [this, c](absl::Status s) {
      c->done = true;
      c->status = std::move(s);
      c->order = next_order_++;
      c->ack_event = event_++;
      c->ack_log = io_.log().size();
    };
    c->issue_event = event_++;
    c->issue_log = io_.log().size();
    vol_->Submit(&c->req);
    return c;
  }

  int DataWrite() const {
    return io_.Find([this](const IoOp& o) {
      return o.opcode == IoOpcode::kWrite && o.offset >= data_offset_;
    });
  }
  int BitmapWrite() const {
    return io_.Find([this](const IoOp& o) {
      return o.opcode == IoOpcode::kWrite && o.offset < data_offset_;
    });
  }
  int Sync() const { return io_.FindOpcode(IoOpcode::kFdatasync); }
  int Count(IoOpcode opcode, bool bitmap) const {
    int n = 0;
    for (const IoOp& o : io_.queued()) {
      if (o.opcode == opcode && (opcode != IoOpcode::kWrite || (o.offset < data_offset_) == bitmap)) ++n;
    }
    return n;
  }
  int CountBitmapWrites() const { return Count(IoOpcode::kWrite, true); }
  int CountReads() const { return Count(IoOpcode::kRead, false); }

  bool MemBit(uint64_t sector) const { return vol_->file().bitmap().Test(sector); }
  bool DiskBit(uint64_t sector) const {
    int fd = open(CowPath().c_str(), O_RDONLY);
    unsigned char byte = 0;
    EXPECT_EQ(pread(fd, &byte, 1, static_cast<off_t>(bitmap_offset_ + sector / 8)), 1);
    close(fd);
    return (byte >> (sector % 8)) & 1;
  }
  std::string Backing(uint64_t sector, uint64_t count) const {
    std::string s = backing_.size() > sector * 512 ? backing_.substr(sector * 512, count * 512)
                                                   : std::string();
    s.resize(count * 512, '\0');
    return s;
  }

  // Drives a new write until its bitmap block write is queued, unreleased.
  Call* WriteUntilBitmapPending(uint64_t sector, uint64_t count, char fill) {
    Call* w = Write(sector, count, fill);
    io_.Release(DataWrite());
    while (BitmapWrite() < 0 && Sync() >= 0) io_.Release(Sync());
    EXPECT_GE(BitmapWrite(), 0);
    return w;
  }
  // Drives a new write through its data and barrier; it then waits.
  Call* WriteUntilWaiting(uint64_t sector, uint64_t count, char fill) {
    const uint64_t waiting = vol_->stats().updates_waiting.value();
    Call* w = Write(sector, count, fill);
    io_.Release(DataWrite());
    while (Sync() >= 0) io_.Release(Sync());
    EXPECT_EQ(vol_->stats().updates_waiting.value(), waiting + 1);
    return w;
  }

  // Completes everything, closes the volume, and checks that the COW file
  // opens and validates with exactly `allocated` bits set.
  void ExpectReopensClean(const std::set<uint64_t>& allocated) {
    io_.ReleaseAll();
    vol_.reset();
    auto file = cow::CowFile::Open(CowPath(), cow::OpenOptions{});
    ASSERT_TRUE(file.ok()) << file.status();
    EXPECT_EQ((*file)->bitmap().CountSet(), allocated.size());
    for (uint64_t s : allocated) EXPECT_TRUE((*file)->bitmap().Test(s)) << s;
  }

  cowblk::testing::TempDir dir_;
  VolumeIoSink sink_;
  ManualIo io_{&sink_};
  std::unique_ptr<Volume> vol_;
  std::deque<std::unique_ptr<Call>> calls_;
  std::string backing_;
  std::string initial_cow_;
  uint64_t data_offset_ = 0;
  uint64_t bitmap_offset_ = 0;
  uint64_t write_split_bytes_ = 0;  // VolumeOptions::write_split_bytes for Open()
  int next_order_ = 0;
  uint64_t event_ = 0;
};

}  // namespace cowblk::engine

#endif  // COWBLK_TESTS_ENGINE_VOLUME_FIXTURE_H_
