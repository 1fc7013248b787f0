// Allocation failure at the request edge refuses one call (issue 20, items
// 1 and 13): cowblkd runs under tests/support/fail_alloc.c, a preloaded
// library that makes every allocation above 16 MiB fail as it would under a
// memory limit. A 32 MiB read or write then fails RESOURCE_EXHAUSTED (gRPC)
// or ENOMEM (NBD) with a `request_failed` line; the same stream or
// connection goes on to serve 1 MiB requests, and the process stays up.
// (The unary Read call reads in 1 MiB chunks, and NBD reads with zero-copy
// are spliced from the files: neither asks for a large buffer, and both
// serve 32 MiB under the same library.)

#include <libnbd.h>

#include <cerrno>
#include <chrono>
#include <cstdint>
#include <cstdlib>
#include <string>

#include "gtest/gtest.h"
#include "tests/integration/nbd_fixture.h"

namespace cowblk::testing {
namespace {

constexpr uint64_t kMiB = 1 << 20;
// ASAN_OPTIONS or TSAN_OPTIONS in a sanitizer build, else empty.
constexpr const char kSanitizer[] = COWBLK_FAIL_ALLOC_SANITIZER;

class AllocFailureTest : public NbdTest {
 protected:
  void SetUp() override {
    // NBD reads through a buffer (zero-copy ones take none).
    ServerConfig config{.args = {"--nbd-listen", "127.0.0.1:0", "--nbd-zero-copy", "off"}};
    if (kSanitizer[0] != '\0') {  // a sanitizer build: its allocator fails them
      const char* inherited = std::getenv(kSanitizer);  // suppressions, halt_on_error
      config.env = {{kSanitizer, std::string(inherited != nullptr ? inherited : "") +
                                     " allocator_may_return_null=1 max_allocation_size_mb=16"}};
    } else {
      config.env = {{"LD_PRELOAD", COWBLK_FAIL_ALLOC_LIB},
                    {"COWBLK_TEST_FAIL_ALLOC_ABOVE", std::to_string(16 * kMiB)}};
    }
    ASSERT_NO_FATAL_FAILURE(StartServer(config));
    nbd_address_ = server_.ServingField("nbd");
    ASSERT_NE(nbd_address_, "");
    ASSERT_TRUE(Create("big", 64 * kMiB).ok());
  }
  // The server refused `n` requests for want of memory, and serves still.
  void ExpectRefusedAndUp(size_t n) {
    server_.WaitForLog("code=RESOURCE_EXHAUSTED", n);
    ASSERT_TRUE(server_.running()) << server_.log();
    EXPECT_NE(server_.log().find("event=request_failed"), std::string::npos) << server_.log();
  }
};

v1::SessionRequest SessionOp(uint64_t id, v1::Op op, uint64_t offset, uint64_t length) {
  v1::SessionRequest r;
  r.set_volume("big");
  r.set_id(id);
  r.set_op(op);
  r.set_offset(offset);
  if (op == v1::OP_WRITE) {
    r.set_data(std::string(length, 'w'));
  } else {
    r.set_length(length);
  }
  return r;
}

TEST_F(AllocFailureTest, ASessionRefuses32MiBRequestsAndServes1MiBOnes) {
  grpc::ClientContext ctx;
  ctx.set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(60));
  auto stream = blocks_->Session(&ctx);
  v1::SessionResponse resp;
  ASSERT_TRUE(stream->Write(SessionOp(1, v1::OP_READ, 0, 32 * kMiB)));
  ASSERT_TRUE(stream->Read(&resp));
  EXPECT_EQ(resp.id(), 1u);
  EXPECT_EQ(resp.code(), grpc::StatusCode::RESOURCE_EXHAUSTED) << resp.message();
  ASSERT_TRUE(stream->Write(SessionOp(2, v1::OP_WRITE, 0, 32 * kMiB)));
  ASSERT_TRUE(stream->Read(&resp));
  EXPECT_EQ(resp.id(), 2u);
  EXPECT_EQ(resp.code(), grpc::StatusCode::RESOURCE_EXHAUSTED) << resp.message();
  ASSERT_NO_FATAL_FAILURE(ExpectRefusedAndUp(2));
  ASSERT_TRUE(stream->Write(SessionOp(3, v1::OP_WRITE, kMiB, kMiB)));
  ASSERT_TRUE(stream->Read(&resp));
  EXPECT_EQ(resp.code(), 0) << resp.message();
  ASSERT_TRUE(stream->Write(SessionOp(4, v1::OP_READ, 0, 2 * kMiB)));
  ASSERT_TRUE(stream->Read(&resp));
  EXPECT_EQ(resp.code(), 0) << resp.message();
  // The refused write changed nothing: zeros, then the 1 MiB written.
  EXPECT_TRUE(resp.data() == std::string(kMiB, '\0') + std::string(kMiB, 'w'));
  stream->WritesDone();
  EXPECT_TRUE(stream->Finish().ok());
  EXPECT_TRUE(server_.running());
}

// A unary Write message of 32 MiB fails the call; the next call is served.
// Not in a sanitizer build: there protobuf's parse allocates with a
// throwing operator new, which the sanitizers' allocators turn into a fatal
// report instead of std::bad_alloc, whatever their options.
#if !defined(__SANITIZE_ADDRESS__) && !defined(__SANITIZE_THREAD__)
TEST_F(AllocFailureTest, AUnaryWriteOf32MiBFailsAloneAndTheNextIsServed) {
  grpc::Status s = WriteData("big", 0, std::string(32 * kMiB, 'w'));
  EXPECT_EQ(s.error_code(), grpc::StatusCode::RESOURCE_EXHAUSTED) << s.error_message();
  ASSERT_NO_FATAL_FAILURE(ExpectRefusedAndUp(1));
  ASSERT_TRUE(WriteData("big", kMiB, std::string(kMiB, 'w')).ok());
  std::string out;
  ASSERT_TRUE(ReadData("big", 0, 2 * kMiB, &out).ok());
  // The refused write changed nothing: zeros, then the 1 MiB written.
  EXPECT_TRUE(out == std::string(kMiB, '\0') + std::string(kMiB, 'w'));
  EXPECT_TRUE(server_.running());
}
#endif

// The unary Read call asks for 1 MiB at a time: 32 MiB are served.
TEST_F(AllocFailureTest, AUnaryReadOf32MiBNeedsNoLargeBuffer) {
  ASSERT_TRUE(WriteData("big", kMiB, std::string(kMiB, 'w')).ok());
  std::string out;
  ASSERT_TRUE(ReadData("big", 0, 32 * kMiB, &out).ok());
  ASSERT_EQ(out.size(), 32 * kMiB);
  EXPECT_TRUE(out.substr(0, 2 * kMiB) == std::string(kMiB, '\0') + std::string(kMiB, 'w'));
  EXPECT_TRUE(server_.running());
}

TEST_F(AllocFailureTest, AnNbdConnectionRefuses32MiBRequestsWithEnomemAndGoesOn) {
  nbd_handle* h = Connect("big");
  ASSERT_NE(h, nullptr);
  std::string buf(32 * kMiB, 'r');
  EXPECT_EQ(nbd_pread(h, buf.data(), buf.size(), 0, 0), -1);
  EXPECT_EQ(nbd_get_errno(), ENOMEM) << nbd_get_error();
  buf.assign(buf.size(), 'r');  // libnbd zeroed it for the read
  EXPECT_EQ(nbd_pwrite(h, buf.data(), buf.size(), 0, 0), -1);
  EXPECT_EQ(nbd_get_errno(), ENOMEM) << nbd_get_error();
  ASSERT_NO_FATAL_FAILURE(ExpectRefusedAndUp(2));
  // The same connection serves what fits.
  const std::string data(kMiB, 'n');
  ASSERT_EQ(nbd_pwrite(h, data.data(), data.size(), kMiB, 0), 0) << nbd_get_error();
  std::string back(2 * kMiB, 'x');
  ASSERT_EQ(nbd_pread(h, back.data(), back.size(), 0, 0), 0) << nbd_get_error();
  // The refused write changed nothing: zeros, then the 1 MiB written.
  EXPECT_TRUE(back == std::string(kMiB, '\0') + data);
  EXPECT_TRUE(server_.running());
}

}  // namespace
}  // namespace cowblk::testing
