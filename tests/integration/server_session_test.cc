// The Session stream against a real cowblkd: pipelining, several streams,
// per-request failures, back-pressure, and persistence across a clean
// restart and a kill -9.

#include <atomic>
#include <condition_variable>
#include <map>
#include <mutex>
#include <random>
#include <set>
#include <thread>

#include <grpcpp/generic/generic_stub.h>

#include "gmock/gmock.h"
#include "tests/support/server_fixture.h"

namespace cowblk::testing {
namespace {

constexpr uint64_t kMiB = 1 << 20;

v1::SessionRequest Req(uint64_t id, v1::Op op, uint64_t offset, uint64_t length,
                       const std::string& data = "", const std::string& volume = "") {
  v1::SessionRequest r;
  r.set_id(id);
  r.set_op(op);
  r.set_offset(offset);
  r.set_length(length);
  r.set_data(data);
  r.set_volume(volume);
  return r;
}

// Sends every request without waiting for answers (they are read on another
// thread), then returns the answers by id and the order they came in.
struct SessionResult {
  grpc::Status status;
  std::map<uint64_t, v1::SessionResponse> by_id;
  std::vector<uint64_t> order;
};

SessionResult RunSession(v1::BlockService::Stub* stub, const std::vector<v1::SessionRequest>& reqs) {
  SessionResult result;
  grpc::ClientContext ctx;
  auto stream = stub->Session(&ctx);
  std::thread reader([&] {
    v1::SessionResponse resp;
    while (stream->Read(&resp)) {
      result.order.push_back(resp.id());
      result.by_id[resp.id()] = resp;
    }
  });
  for (const auto& r : reqs) {
    if (!stream->Write(r)) break;
  }
  stream->WritesDone();
  reader.join();
  result.status = stream->Finish();
  return result;
}

// Like RunSession, but sends `messages` (each may carry a batch), with the
// `cowblk-batch: 1` metadata when `ask_batches`, and takes answers apart.
struct BatchResult {
  grpc::Status status;
  std::map<uint64_t, v1::SessionResponse> by_id;
  size_t answers = 0;         // answers received, batched ones included
  size_t messages = 0;        // messages they came in
  size_t batched_messages = 0;  // messages with a non-empty batch
  std::string batch_max;      // the server's `cowblk-batch-max` metadata
};

BatchResult RunBatchSession(v1::BlockService::Stub* stub,
                            const std::vector<v1::SessionRequest>& messages, bool ask_batches) {
  BatchResult result;
  grpc::ClientContext ctx;
  if (ask_batches) ctx.AddMetadata("cowblk-batch", "1");
  auto stream = stub->Session(&ctx);
  std::thread reader([&] {
    v1::SessionResponse resp;
    bool first = true;
    while (stream->Read(&resp)) {
      if (first) {
        auto md = ctx.GetServerInitialMetadata();
        auto it = md.find("cowblk-batch-max");
        if (it != md.end()) result.batch_max = std::string(it->second.data(), it->second.size());
        first = false;
      }
      ++result.messages;
      if (resp.batch_size() > 0) ++result.batched_messages;
      for (const auto& b : resp.batch()) {
        ++result.answers;
        result.by_id[b.id()] = b;
      }
      resp.clear_batch();
      ++result.answers;
      result.by_id[resp.id()] = resp;
    }
  });
  for (const auto& m : messages) {
    if (!stream->Write(m)) break;
  }
  stream->WritesDone();
  reader.join();
  result.status = stream->Finish();
  return result;
}

class ServerSessionTest : public ServerFixture {
 protected:
  // A writer keeps 32 writes and a flush every 40 requests in flight on
  // the server (restarted with `args`); after a SIGKILL and a restart every
  // sector holds its pattern from some write (or zeros), and at least the
  // version the last good flush covered.
  void KillDashNineKeepsFlushedWritesAndShowsNoGarbage(const std::vector<std::string>& args);
};

TEST_F(ServerSessionTest, ABatchIsHandledLikeOneRequestPerMessage) {
  ASSERT_TRUE(Create("vm1", kMiB).ok());
  // One message: an empty carrier naming the volume, with 16 writes; then a
  // message that is itself a read and carries 15 more reads.
  v1::SessionRequest writes;
  writes.set_volume("vm1");
  std::vector<std::string> blocks;
  for (uint64_t i = 0; i < 16; ++i) {
    blocks.push_back(RandomBytes(4096, 200 + i));
    *writes.add_batch() = Req(100 + i, v1::OP_WRITE, i * 4096, 0, blocks.back());
  }
  BatchResult w = RunBatchSession(blocks_.get(), {writes}, false);
  ASSERT_TRUE(w.status.ok()) << w.status.error_message();
  ASSERT_EQ(w.answers, 16u);  // no answer for the carrier
  for (uint64_t i = 0; i < 16; ++i) EXPECT_EQ(w.by_id[100 + i].code(), 0) << w.by_id[100 + i].message();
  // Without `cowblk-batch: 1` every answer comes in a message of its own.
  EXPECT_EQ(w.messages, 16u);
  EXPECT_EQ(w.batched_messages, 0u);
  EXPECT_EQ(w.batch_max, "256");  // cowblkd's default --max-in-flight

  v1::SessionRequest reads = Req(200, v1::OP_READ, 0, 4096, "", "vm1");
  for (uint64_t i = 1; i < 16; ++i) *reads.add_batch() = Req(200 + i, v1::OP_READ, i * 4096, 4096);
  BatchResult r = RunBatchSession(blocks_.get(), {reads}, true);
  ASSERT_TRUE(r.status.ok()) << r.status.error_message();
  ASSERT_EQ(r.answers, 16u);
  ASSERT_EQ(r.by_id.size(), 16u);
  for (uint64_t i = 0; i < 16; ++i) {
    EXPECT_EQ(r.by_id[200 + i].code(), 0) << r.by_id[200 + i].message();
    EXPECT_TRUE(r.by_id[200 + i].data() == blocks[i]) << i;
  }
  EXPECT_LE(r.messages, 16u);
}

TEST_F(ServerSessionTest, ARequestInABatchFailsAloneAndNestedBatchesAreRefused) {
  ASSERT_TRUE(Create("vm1", kMiB).ok());
  v1::SessionRequest m;
  m.set_volume("vm1");
  *m.add_batch() = Req(1, v1::OP_WRITE, 0, 0, std::string(4096, 'a'));
  *m.add_batch() = Req(2, v1::OP_READ, 100, 512);  // unaligned
  v1::SessionRequest nested = Req(3, v1::OP_READ, 0, 512);
  *nested.add_batch() = Req(4, v1::OP_READ, 0, 512);
  *m.add_batch() = nested;
  *m.add_batch() = Req(5, v1::OP_READ, 8192, 4096);  // not the write's range: unordered
  BatchResult r = RunBatchSession(blocks_.get(), {m}, true);
  ASSERT_TRUE(r.status.ok());
  ASSERT_EQ(r.answers, 4u);
  EXPECT_EQ(r.by_id[1].code(), 0);
  EXPECT_EQ(r.by_id[2].code(), grpc::StatusCode::INVALID_ARGUMENT);
  EXPECT_THAT(r.by_id[2].message(), ::testing::HasSubstr("offset"));
  EXPECT_EQ(r.by_id[3].code(), grpc::StatusCode::INVALID_ARGUMENT);
  EXPECT_THAT(r.by_id[3].message(), ::testing::HasSubstr("carries no batch"));
  EXPECT_EQ(r.by_id.count(4), 0u);  // the nested request was not handled
  EXPECT_EQ(r.by_id[5].code(), 0);
  EXPECT_TRUE(r.by_id[5].data() == std::string(4096, '\0'));
}

// Bytes that are not a SessionRequest (a length running past the end)
// end the stream INVALID_ARGUMENT; the server goes on serving.
TEST_F(ServerSessionTest, AMalformedMessageEndsTheStreamInvalidArgument) {
  grpc::GenericStub stub(server_.Channel());
  grpc::CompletionQueue cq;
  grpc::ClientContext ctx;
  auto call = stub.PrepareCall(&ctx, "/cowblk.v1.BlockService/Session", &cq);
  auto wait = [&cq](intptr_t want) {
    void* tag = nullptr;
    bool ok = false;
    EXPECT_TRUE(cq.Next(&tag, &ok));
    EXPECT_EQ(reinterpret_cast<intptr_t>(tag), want);
    return ok;
  };
  call->StartCall(reinterpret_cast<void*>(1));
  ASSERT_TRUE(wait(1));
  const std::string bad = "\x32\x10" "abc";  // field 6: 16 bytes announced, 3 there
  grpc::Slice slice(bad);
  grpc::ByteBuffer message(&slice, 1);
  call->Write(message, reinterpret_cast<void*>(2));
  wait(2);
  grpc::Status status;
  call->Finish(&status, reinterpret_cast<void*>(3));
  ASSERT_TRUE(wait(3));
  EXPECT_EQ(status.error_code(), grpc::StatusCode::INVALID_ARGUMENT);
  EXPECT_THAT(status.error_message(), ::testing::HasSubstr("not a cowblk.v1.SessionRequest"));
  cq.Shutdown();
  void* tag;
  bool ok;
  while (cq.Next(&tag, &ok)) {
  }
  // The server still serves sessions.
  ASSERT_TRUE(Create("vm1", kMiB).ok());
  SessionResult r = RunSession(blocks_.get(), {Req(1, v1::OP_READ, 0, 4096, "", "vm1")});
  ASSERT_TRUE(r.status.ok());
  EXPECT_EQ(r.by_id[1].code(), 0);
}

// A client that keeps its Session open and idle does not hold a SIGTERM
// drain open: the stream ends UNAVAILABLE, and the server exits without
// waiting out --drain-seconds (no drain_timeout in its log).
TEST_F(ServerSessionTest, AnIdleSessionEndsWhenTheDrainStarts) {
  ASSERT_EQ(StopServer(), 0);
  StartServer({"--drain-seconds", "600"});
  ASSERT_TRUE(Create("vm1", kMiB).ok());
  grpc::ClientContext ctx;
  auto stream = blocks_->Session(&ctx);
  ASSERT_TRUE(stream->Write(Req(1, v1::OP_READ, 0, 4096, "", "vm1")));
  v1::SessionResponse resp;
  ASSERT_TRUE(stream->Read(&resp));
  EXPECT_EQ(resp.code(), 0);
  // Idle now: no request in flight, the stream open (no WritesDone).
  std::thread stopper([this] { EXPECT_EQ(StopServer(), 0); });
  EXPECT_FALSE(stream->Read(&resp));  // ends without a message
  grpc::Status status = stream->Finish();
  stopper.join();
  EXPECT_EQ(status.error_code(), grpc::StatusCode::UNAVAILABLE) << status.error_message();
  EXPECT_THAT(status.error_message(), ::testing::HasSubstr("shutting down"));
  EXPECT_THAT(server_.log(), ::testing::Not(::testing::HasSubstr("drain_timeout")));
}

// A message whose batch holds more requests than the window ends the
// stream RESOURCE_EXHAUSTED and none of them is handled (the cap keeps a
// small message from asking for gigabytes of buffers or state).
TEST_F(ServerSessionTest, ABatchLargerThanTheWindowEndsTheStreamAndChangesNothing) {
  ASSERT_EQ(StopServer(), 0);
  StartServer({"--max-in-flight", "4"});
  ASSERT_TRUE(Create("vm1", kMiB).ok());
  v1::SessionRequest fits;
  fits.set_volume("vm1");
  for (uint64_t i = 0; i < 4; ++i) *fits.add_batch() = Req(i + 1, v1::OP_WRITE, i * 4096, 0, std::string(4096, 'a'));
  v1::SessionRequest m;
  for (uint64_t i = 0; i < 5; ++i) *m.add_batch() = Req(10 + i, v1::OP_WRITE, i * 4096, 0, std::string(4096, 'b'));
  BatchResult r = RunBatchSession(blocks_.get(), {fits, m}, true);
  EXPECT_EQ(r.status.error_code(), grpc::StatusCode::RESOURCE_EXHAUSTED) << r.status.error_message();
  EXPECT_THAT(r.status.error_message(), ::testing::HasSubstr("window of 4 requests"));
  EXPECT_EQ(r.batch_max, "4");
  // The batch that fits was answered, the other not even begun.
  EXPECT_EQ(r.answers, 4u);
  for (uint64_t i = 1; i <= 4; ++i) EXPECT_EQ(r.by_id[i].code(), 0) << i;
  std::string back;
  ASSERT_TRUE(ReadData("vm1", 0, 5 * 4096, &back).ok());
  EXPECT_TRUE(back == std::string(4 * 4096, 'a') + std::string(4096, '\0'));
}

TEST_F(ServerSessionTest, SixtyFourRequestsInFlightOnOneStreamAreEachAnsweredOnce) {
  ASSERT_TRUE(Create("vm1", 8 * kMiB).ok());
  const std::string other = RandomBytes(64 * 4096, 1);
  ASSERT_TRUE(WriteData("vm1", 4 * kMiB, other).ok());
  std::vector<v1::SessionRequest> reqs;
  std::vector<std::string> chunks;
  for (uint64_t i = 0; i < 64; ++i) {
    chunks.push_back(RandomBytes(4096, 100 + i));
    reqs.push_back(Req(2 * i, v1::OP_WRITE, i * 4096, 0, chunks.back(), i == 0 ? "vm1" : ""));
    reqs.push_back(Req(2 * i + 1, v1::OP_READ, 4 * kMiB + i * 4096, 4096));
  }
  SessionResult r = RunSession(blocks_.get(), reqs);
  ASSERT_TRUE(r.status.ok()) << r.status.error_message();
  ASSERT_EQ(r.order.size(), 128u);
  for (uint64_t i = 0; i < 64; ++i) {
    EXPECT_EQ(r.by_id[2 * i].code(), 0) << r.by_id[2 * i].message();
    EXPECT_EQ(r.by_id[2 * i + 1].code(), 0);
    EXPECT_TRUE(r.by_id[2 * i + 1].data() == other.substr(i * 4096, 4096)) << i;
  }
  std::string got;
  ASSERT_TRUE(ReadData("vm1", 0, 64 * 4096, &got).ok());
  for (uint64_t i = 0; i < 64; ++i) EXPECT_TRUE(got.substr(i * 4096, 4096) == chunks[i]) << i;
  std::vector<uint64_t> sorted = r.order;
  std::sort(sorted.begin(), sorted.end());
  RecordProperty("answered_out_of_order", sorted != r.order ? "yes" : "no");
}

TEST_F(ServerSessionTest, SeveralStreamsAtOnceEachSeeTheirOwnBytes) {
  ASSERT_TRUE(Create("vm1", 16 * kMiB).ok());
  constexpr int kStreams = 4;
  std::vector<std::thread> threads;
  std::atomic<int> failures{0};
  for (int t = 0; t < kStreams; ++t) {
    threads.emplace_back([&, t] {
      auto stub = v1::BlockService::NewStub(server_.Channel());
      const uint64_t base = t * 4 * kMiB;
      const std::string data = RandomBytes(64 * 8192, 10 + t);
      std::vector<v1::SessionRequest> writes;
      for (uint64_t i = 0; i < 64; ++i) {
        writes.push_back(Req(i, v1::OP_WRITE, base + i * 8192, 0, data.substr(i * 8192, 8192), "vm1"));
      }
      writes.push_back(Req(64, v1::OP_FLUSH, 0, 0));
      SessionResult w = RunSession(stub.get(), writes);
      std::vector<v1::SessionRequest> reads;
      for (uint64_t i = 0; i < 64; ++i) reads.push_back(Req(i, v1::OP_READ, base + i * 8192, 8192, "", "vm1"));
      SessionResult r = RunSession(stub.get(), reads);
      bool ok = w.status.ok() && r.status.ok() && w.by_id.size() == 65 && r.by_id.size() == 64;
      for (auto& [id, resp] : w.by_id) ok &= resp.code() == 0;
      for (uint64_t i = 0; ok && i < 64; ++i) ok &= r.by_id[i].data() == data.substr(i * 8192, 8192);
      if (!ok) ++failures;
    });
  }
  for (auto& th : threads) th.join();
  EXPECT_EQ(failures.load(), 0);
}

TEST_F(ServerSessionTest, AFailingRequestFailsAloneAndTheStreamGoesOn) {
  ASSERT_TRUE(Create("vm1", kMiB).ok());
  // Requests in flight together are unordered: read what was written before.
  const std::string data = RandomBytes(4096, 3);
  ASSERT_TRUE(WriteData("vm1", 0, data).ok());
  SessionResult r = RunSession(blocks_.get(), {
      Req(1, v1::OP_WRITE, 8192, 0, RandomBytes(4096, 4), "vm1"),
      Req(2, v1::OP_READ, 100, 512),
      Req(3, v1::OP_WRITE, kMiB, 0, std::string(512, 'x')),
      Req(4, v1::OP_UNSPECIFIED, 0, 512),
      Req(5, v1::OP_READ, 0, 0),
      Req(6, v1::OP_READ, 0, 4096, "", "other-volume"),
      Req(7, v1::OP_FLUSH, 0, 0),
      Req(8, v1::OP_READ, 0, 4096),
  });
  ASSERT_TRUE(r.status.ok());
  ASSERT_EQ(r.by_id.size(), 8u);
  EXPECT_EQ(r.by_id[1].code(), 0);
  EXPECT_EQ(r.by_id[2].code(), grpc::StatusCode::INVALID_ARGUMENT);
  EXPECT_THAT(r.by_id[2].message(), ::testing::HasSubstr("offset"));
  EXPECT_EQ(r.by_id[3].code(), grpc::StatusCode::OUT_OF_RANGE);
  EXPECT_EQ(r.by_id[4].code(), grpc::StatusCode::INVALID_ARGUMENT);
  EXPECT_THAT(r.by_id[4].message(), ::testing::HasSubstr("op"));
  EXPECT_EQ(r.by_id[5].code(), grpc::StatusCode::INVALID_ARGUMENT);
  EXPECT_EQ(r.by_id[6].code(), grpc::StatusCode::INVALID_ARGUMENT);
  EXPECT_EQ(r.by_id[7].code(), 0);
  EXPECT_EQ(r.by_id[8].code(), 0);
  EXPECT_TRUE(r.by_id[8].data() == data);
}

TEST_F(ServerSessionTest, TheFirstRequestMustNameAnExistingVolume) {
  SessionResult r = RunSession(blocks_.get(), {Req(1, v1::OP_READ, 0, 512),
                                               Req(2, v1::OP_READ, 0, 512, "", "nope")});
  ASSERT_TRUE(r.status.ok());
  EXPECT_EQ(r.by_id[1].code(), grpc::StatusCode::INVALID_ARGUMENT);
  EXPECT_THAT(r.by_id[1].message(), ::testing::HasSubstr("volume"));
  EXPECT_EQ(r.by_id[2].code(), grpc::StatusCode::NOT_FOUND);
}

TEST_F(ServerSessionTest, ASmallInFlightWindowStillAnswersEverything) {
  ASSERT_EQ(StopServer(), 0);
  StartServer({"--max-in-flight", "2"});
  ASSERT_TRUE(Create("vm1", kMiB).ok());
  std::vector<v1::SessionRequest> reqs;
  for (uint64_t i = 0; i < 300; ++i) {
    reqs.push_back(i % 2 == 0 ? Req(i, v1::OP_WRITE, (i % 256) * 4096, 0, std::string(4096, 'a' + i % 26), "vm1")
                              : Req(i, v1::OP_READ, (i % 256) * 4096, 4096));
  }
  SessionResult r = RunSession(blocks_.get(), reqs);
  ASSERT_TRUE(r.status.ok());
  EXPECT_EQ(r.by_id.size(), 300u);
  for (auto& [id, resp] : r.by_id) EXPECT_EQ(resp.code(), 0) << id;
}

TEST_F(ServerSessionTest, FlushedDataSurvivesACleanRestart) {
  ASSERT_TRUE(Create("vm1", 4 * kMiB).ok());
  const std::string data = RandomBytes(kMiB, 4);
  ASSERT_TRUE(WriteData("vm1", kMiB, data, /*flush=*/true).ok());
  EXPECT_EQ(StopServer(SIGTERM), 0);
  EXPECT_THAT(server_.log(), ::testing::HasSubstr("event=stopped flush=ok"));
  StartServer();
  std::string got;
  ASSERT_TRUE(ReadData("vm1", kMiB, kMiB, &got).ok());
  EXPECT_TRUE(got == data);
}

// Sector contents written by the kill -9 test: the sector number, a version
// and filler derived from both, so a read tells exactly which write it saw.
std::string Pattern(uint64_t sector, uint64_t version) {
  std::string s(512, '\0');
  std::mt19937_64 rng(sector * 1000003 + version);
  for (size_t i = 0; i < 512; i += 8) {
    uint64_t v = i == 0 ? sector : i == 8 ? version : rng();
    memcpy(&s[i], &v, 8);
  }
  return s;
}

// The default durability (deferred since issue #23).
TEST_F(ServerSessionTest, AfterKillDashNineEveryFlushedWriteIsThereAndNothingIsGarbage) {
  KillDashNineKeepsFlushedWritesAndShowsNoGarbage({});
}

TEST_F(ServerSessionTest, OrderedDurabilityAfterKillDashNineKeepsFlushedWritesNoGarbage) {
  const std::vector<std::string> ordered = {"--durability", "ordered"};
  StopServer();
  StartServer(ordered);
  KillDashNineKeepsFlushedWritesAndShowsNoGarbage(ordered);
}

TEST_F(ServerSessionTest, DeferredDurabilityAfterKillDashNineKeepsFlushedWritesNoGarbage) {
  const std::vector<std::string> deferred = {"--durability", "deferred",
                                             "--commit-interval-ms", "20"};
  StopServer();
  StartServer(deferred);
  KillDashNineKeepsFlushedWritesAndShowsNoGarbage(deferred);
}

void ServerSessionTest::KillDashNineKeepsFlushedWritesAndShowsNoGarbage(
    const std::vector<std::string>& args) {
  constexpr uint64_t kSectors = 2048;
  ASSERT_TRUE(Create("vm1", kSectors * 512).ok());
  std::mutex mu;
  std::condition_variable cv;
  std::vector<uint64_t> acked(kSectors, 0), durable(kSectors, 0);
  int flushes = 0;
  bool killed = false;
  std::thread writer([&] {
    grpc::ClientContext ctx;
    auto stream = blocks_->Session(&ctx);
    std::map<uint64_t, std::pair<uint64_t, uint64_t>> writes;  // id -> sector, version
    std::map<uint64_t, std::vector<uint64_t>> flush_snapshots;  // id -> acked at send
    std::set<uint64_t> busy;  // sectors with a write in flight
    std::mt19937_64 rng(5);
    uint64_t id = 0, version = 0;
    std::thread reader([&] {
      v1::SessionResponse resp;
      while (stream->Read(&resp)) {
        std::lock_guard<std::mutex> lock(mu);
        EXPECT_EQ(resp.code(), 0) << resp.message();
        auto w = writes.find(resp.id());
        if (w != writes.end()) {
          if (resp.code() == 0) {
            acked[w->second.first] = std::max(acked[w->second.first], w->second.second);
          }
          busy.erase(w->second.first);
          cv.notify_all();
          continue;
        }
        auto f = flush_snapshots.find(resp.id());
        if (f != flush_snapshots.end() && resp.code() == 0) {
          for (uint64_t s = 0; s < kSectors; ++s) durable[s] = std::max(durable[s], f->second[s]);
          ++flushes;
          cv.notify_all();
        }
      }
    });
    for (;;) {
      v1::SessionRequest req;
      {
        std::unique_lock<std::mutex> lock(mu);
        cv.wait(lock, [&] { return busy.size() < 32 || killed; });
        if (killed) break;
        req.set_id(++id);
        req.set_volume("vm1");
        if (id % 40 == 0) {
          req.set_op(v1::OP_FLUSH);
          flush_snapshots[id] = acked;
        } else {
          uint64_t sector;
          do sector = rng() % kSectors; while (busy.count(sector));
          busy.insert(sector);
          writes[id] = {sector, ++version};
          req.set_op(v1::OP_WRITE);
          req.set_offset(sector * 512);
          req.set_data(Pattern(sector, version));
        }
      }
      if (!stream->Write(req)) break;
    }
    reader.join();
    stream->Finish();
  });
  {
    std::unique_lock<std::mutex> lock(mu);
    cv.wait(lock, [&] { return flushes >= 16; });
  }
  EXPECT_EQ(StopServer(SIGKILL), 128 + SIGKILL);
  {
    std::lock_guard<std::mutex> lock(mu);
    killed = true;
    cv.notify_all();
  }
  writer.join();
  StartServer(args);
  std::string got;
  ASSERT_TRUE(ReadData("vm1", 0, kSectors * 512, &got).ok());
  int garbage = 0, lost = 0;
  for (uint64_t s = 0; s < kSectors; ++s) {
    const std::string sec = got.substr(s * 512, 512);
    uint64_t version = 0;
    if (sec != std::string(512, '\0')) {
      uint64_t sector;
      memcpy(&sector, &sec[0], 8);
      memcpy(&version, &sec[8], 8);
      if (sector != s || sec != Pattern(s, version)) {
        ++garbage;
        continue;
      }
    }
    if (version < durable[s]) ++lost;
  }
  EXPECT_EQ(garbage, 0);
  EXPECT_EQ(lost, 0);
}

}  // namespace
}  // namespace cowblk::testing
