// core::Pipeline in process, over a real Store and engine on real files:
// what every transport relies on without seeing it (validation before the
// engine, the window, answers handed over with their data, capabilities,
// one log line per failure).

#include <condition_variable>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "server/core/pipeline.h"
#include "server/engine/engine.h"
#include "server/store/store.h"
#include "tests/support/scratch.h"
#include "tests/support/store_fixture.h"

namespace cowblk::core {
namespace {

using ::cowblk::testing::RandomBytes;
using ::testing::HasSubstr;

constexpr uint64_t kSize = 4 << 20;

// Records what the pipeline hands over, and on which thread.
class RecordingSink : public Pipeline::Sink {
 public:
  void OnAnswered(absl::Span<Call* const> calls) override {
    std::lock_guard<std::mutex> lock(mu_);
    for (Call* c : calls) {
      answered_.push_back(c);
      threads_.push_back(std::this_thread::get_id());
    }
    ++handovers_;
    cv_.notify_all();
  }
  // Waits for `n` answers in all; returns them.
  std::vector<Call*> Wait(size_t n) {
    std::unique_lock<std::mutex> lock(mu_);
    cv_.wait(lock, [&] { return answered_.size() >= n; });
    return answered_;
  }
  std::vector<std::thread::id> threads() {
    std::lock_guard<std::mutex> lock(mu_);
    return threads_;
  }

 private:
  std::mutex mu_;
  std::condition_variable cv_;
  std::vector<Call*> answered_;
  std::vector<std::thread::id> threads_;
  int handovers_ = 0;
};

class PipelineTest : public ::cowblk::testing::StoreFixture {
 protected:
  void SetUp() override { ASSERT_NO_FATAL_FAILURE(StartWithVolume(kSize)); }

  std::unique_ptr<Pipeline> Make(PipelineOptions options = {}) {
    options.transport = "test";
    return std::make_unique<Pipeline>(&sink_, std::move(options));
  }
  Call* Add(Pipeline& p, engine::OpType op, uint64_t offset, uint64_t length) {
    Call* c = p.Begin(next_tag_++, op == engine::OpType::kRead ? length : 0);
    c->op = op;
    c->offset = offset;
    c->length = length;
    return c;
  }
  uint64_t EngineOps(engine::OpType op) const {
    return handle_->stats().ops[static_cast<int>(op)].value();
  }

  RecordingSink sink_;
  uint64_t next_tag_ = 1;
};

TEST_F(PipelineTest, InvalidRequestsAreAnsweredAtOnceOnTheCallingThreadAndNeverReachTheEngine) {
  auto p = Make();
  p->Bind(handle_, /*writable=*/true);
  Call* beyond = Add(*p, engine::OpType::kRead, kSize, 512);
  Call* unaligned = Add(*p, engine::OpType::kWrite, 100, 512);
  Call* empty = Add(*p, engine::OpType::kTrim, 0, 0);
  Call* huge = Add(*p, engine::OpType::kRead, 0, kMaxTransferBytes + 512);
  for (Call* c : {beyond, unaligned, empty, huge}) p->Submit(c);
  // Answered inside Submit: before any flush woke the engine.
  const std::vector<Call*> got = sink_.Wait(4);
  ASSERT_EQ(got.size(), 4u);
  for (std::thread::id t : sink_.threads()) EXPECT_EQ(t, std::this_thread::get_id());
  EXPECT_EQ(beyond->status().code(), absl::StatusCode::kOutOfRange) << beyond->status();
  EXPECT_EQ(unaligned->status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(unaligned->status().message(), HasSubstr("offset: 100"));
  EXPECT_EQ(empty->status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(empty->status().message(), HasSubstr("length: 0"));
  EXPECT_EQ(huge->status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(huge->status().message(), HasSubstr("limit"));
  p->FlushSubmissions();
  EXPECT_EQ(EngineOps(engine::OpType::kRead) + EngineOps(engine::OpType::kWrite) +
                EngineOps(engine::OpType::kTrim),
            0u);
  for (Call* c : got) p->Finish(c);
  EXPECT_TRUE(p->idle());
}

TEST_F(PipelineTest, AReadOnlyBindingRefusesEveryChangeWithPermissionDenied) {
  auto p = Make();
  p->Bind(handle_, /*writable=*/false);
  std::vector<Call*> calls;
  for (engine::OpType op : {engine::OpType::kWrite, engine::OpType::kTrim,
                            engine::OpType::kWriteZeroes, engine::OpType::kFlush}) {
    Call* c = Add(*p, op, 0, 4096);
    if (op == engine::OpType::kWrite) c->UseString(std::string(4096, 'w'));
    calls.push_back(c);
    p->Submit(c);
  }
  Call* read = Add(*p, engine::OpType::kRead, 0, 4096);
  p->Submit(read);
  p->FlushSubmissions();
  sink_.Wait(5);
  for (Call* c : calls) {
    EXPECT_EQ(c->status().code(), absl::StatusCode::kPermissionDenied) << c->status();
  }
  EXPECT_TRUE(read->status().ok()) << read->status();
  EXPECT_EQ(EngineOps(engine::OpType::kWrite) + EngineOps(engine::OpType::kFlush), 0u);
  for (Call* c : calls) p->Finish(c);
  p->Finish(read);
}

TEST_F(PipelineTest, TheWindowCountsCallsAndTheirBufferBytesUntilFinished) {
  PipelineOptions options;
  options.max_in_flight = 2;
  options.max_bytes = 1 << 20;
  auto p = Make(options);
  EXPECT_TRUE(p->HasRoom());
  Call* a = p->Begin(1, 0);
  EXPECT_TRUE(p->HasRoom());
  Call* b = p->Begin(2, 0);
  EXPECT_FALSE(p->HasRoom());  // two calls
  p->Finish(a);
  EXPECT_TRUE(p->HasRoom());
  Call* big = p->Begin(3, 1 << 20);
  EXPECT_FALSE(p->HasRoom());  // the bytes
  EXPECT_EQ(p->bytes_in_flight(), uint64_t{1} << 20);
  p->Finish(big);
  // A request that asks for more than a request may hold counts only the
  // limit (it is refused before anything is allocated).
  Call* absurd = p->Begin(4, uint64_t{1} << 40);
  EXPECT_EQ(p->bytes_in_flight(), kMaxTransferBytes);
  EXPECT_FALSE(p->idle());
  p->Finish(absurd);
  p->Finish(b);
  EXPECT_TRUE(p->HasRoom());
  EXPECT_EQ(p->in_flight(), 0u);
  EXPECT_TRUE(p->idle());
}

TEST_F(PipelineTest, ABurstIsAnsweredOnceEachWithItsDataAndThePipelineIdlesAfterFinish) {
  const std::string data = RandomBytes(64 << 10, 7);
  std::string copy = data;
  ASSERT_TRUE(handle_->SubmitAndWait(engine::OpType::kWrite, 0, copy.size(), copy.data()).ok());
  auto p = Make();
  p->Bind(handle_, /*writable=*/true);
  std::vector<Call*> reads;
  for (int i = 0; i < 16; ++i) {
    reads.push_back(Add(*p, engine::OpType::kRead, uint64_t(i) * 4096, 4096));
    p->Submit(reads.back());
  }
  p->FlushSubmissions();
  const std::vector<Call*> got = sink_.Wait(16);
  ASSERT_EQ(got.size(), 16u);
  std::sort(reads.begin(), reads.end());
  std::vector<Call*> sorted = got;
  std::sort(sorted.begin(), sorted.end());
  EXPECT_EQ(sorted, reads);  // each once
  for (Call* c : got) {
    ASSERT_TRUE(c->status().ok()) << c->status();
    EXPECT_FALSE(c->located());
    EXPECT_EQ(std::string(c->data(), c->length), data.substr(c->offset, c->length));
  }
  EXPECT_FALSE(p->idle());
  for (Call* c : got) p->Finish(c);
  EXPECT_TRUE(p->idle());
}

TEST_F(PipelineTest, ZeroCopyReadsAreLocatedAndInlineWritesAreWrittenByTheSubmitter) {
  PipelineOptions options;
  options.zero_copy_min_bytes = 64 << 10;
  options.inline_writes = true;
  auto p = Make(options);
  p->Bind(handle_, /*writable=*/true);
  ASSERT_TRUE(p->zero_copy());
  ASSERT_TRUE(p->inline_writes());
  const std::string data = RandomBytes(8192, 3);
  Call* write = Add(*p, engine::OpType::kWrite, 8192, data.size());
  write->UseString(data);
  p->Submit(write);
  p->FlushSubmissions();
  sink_.Wait(1);
  ASSERT_TRUE(write->status().ok()) << write->status();
  EXPECT_EQ(p->counters().inline_writes, 1u);
  EXPECT_EQ(EngineOps(engine::OpType::kWrite), 1u);
  Call* large = Add(*p, engine::OpType::kRead, 0, 128 << 10);
  Call* small = Add(*p, engine::OpType::kRead, 8192, data.size());
  p->Submit(large);
  p->Submit(small);
  p->FlushSubmissions();
  sink_.Wait(3);
  ASSERT_TRUE(large->status().ok()) << large->status();
  EXPECT_TRUE(large->located());
  uint64_t covered = 0;
  for (const engine::ReadExtent& e : large->extents()) covered += e.length;
  EXPECT_EQ(covered, uint64_t{128} << 10);
  // The written sectors lie in the COW file, the rest in the backing file.
  ASSERT_EQ(large->extents().size(), 3u);
  EXPECT_EQ(large->extents()[1].source, engine::ReadExtent::Source::kCow);
  EXPECT_EQ(p->counters().located_reads, 1u);
  ASSERT_TRUE(small->status().ok());
  EXPECT_FALSE(small->located());
  EXPECT_EQ(std::string(small->data(), small->length), data);
  for (Call* c : {write, large, small}) p->Finish(c);
}

TEST_F(PipelineTest, EachFailureIsLoggedOnceWithTheTransportAndTheRequest) {
  auto p = Make();
  p->Bind(handle_, /*writable=*/true);
  ::testing::internal::CaptureStderr();
  Call* c = Add(*p, engine::OpType::kRead, kSize, 512);
  c->tag = 77;
  p->Submit(c);
  p->FlushSubmissions();
  sink_.Wait(1);
  const std::string log = ::testing::internal::GetCapturedStderr();
  size_t lines = 0;
  for (size_t at = log.find("event=request_failed"); at != std::string::npos;
       at = log.find("event=request_failed", at + 1)) {
    ++lines;
  }
  EXPECT_EQ(lines, 1u) << log;
  EXPECT_THAT(log, HasSubstr("transport=test"));
  EXPECT_THAT(log, HasSubstr("volume=v"));
  EXPECT_THAT(log, HasSubstr("id=77"));
  EXPECT_THAT(log, HasSubstr("op=read"));
  EXPECT_THAT(log, HasSubstr("code=OUT_OF_RANGE"));
  p->Finish(c);
}

TEST_F(PipelineTest, AClosedVolumeAnswersUnavailable) {
  auto p = Make();
  p->Bind(handle_, /*writable=*/true);
  ASSERT_TRUE(handle_->Close().ok());
  Call* c = Add(*p, engine::OpType::kRead, 0, 4096);
  p->Submit(c);
  sink_.Wait(1);
  EXPECT_EQ(c->status().code(), absl::StatusCode::kUnavailable) << c->status();
  EXPECT_THAT(c->status().message(), HasSubstr("closed"));
  p->Finish(c);
}

}  // namespace
}  // namespace cowblk::core
