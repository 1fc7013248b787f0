// libFuzzer target for the server's Session request decoder
// (proto/session_decoder.h): the bytes of every Session message come from
// any client that may open a stream, so the decoder must stay safe on
// arbitrary bytes, bounded by its batch limit, and agree with protobuf's
// generated parser, which it replaced on the server.
//
// Input: byte 0 picks how the message is cut into slices (gRPC hands the
// server a message in pieces), byte 1 the batch limit; the rest is the
// message.

#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "cowblk/v1/block.pb.h"
#include "proto/session_decoder.h"
#include "tests/fuzz/fuzz_check.h"

namespace cowblk::wire {
namespace {

// `bytes` cut into slices of `piece` bytes (the last one shorter), with an
// empty slice in front: gRPC may hand over either.
std::vector<grpc::Slice> Slices(const std::string& bytes, size_t piece) {
  std::vector<grpc::Slice> slices;
  slices.emplace_back();
  for (size_t at = 0; at < bytes.size(); at += piece) {
    const size_t n = std::min(piece, bytes.size() - at);
    slices.emplace_back(bytes.data() + at, n);
  }
  return slices;
}

// The decoder's request equals the generated parser's (batch aside).
void CheckSame(const DecodedRequest& got, const v1::SessionRequest& want) {
  FUZZ_CHECK(got.id == want.id());
  FUZZ_CHECK(got.volume == want.volume());
  FUZZ_CHECK(got.op == static_cast<int32_t>(want.op()));
  FUZZ_CHECK(got.offset == want.offset());
  FUZZ_CHECK(got.length == want.length());
  FUZZ_CHECK(got.data.size() == want.data().size());
  FUZZ_CHECK(got.data.ToString() == want.data());
  FUZZ_CHECK(got.fua == want.fua());
}

int FuzzOneInput(const uint8_t* data, size_t size) {
  if (size < 2) return 0;
  const size_t piece = data[0] % 32 + 1;
  const uint32_t max_batch = data[1];
  const std::string bytes(reinterpret_cast<const char*>(data) + 2, size - 2);
  const std::vector<grpc::Slice> slices = Slices(bytes, piece);

  v1::SessionRequest want;
  const bool parsed = want.ParseFromString(bytes);

  SessionDecoder decoder;
  const absl::Status s = decoder.Start(slices, max_batch);
  if (!s.ok()) {
    // Refused, never an error of its own making: bytes the generated parser
    // takes fail only by their count.
    FUZZ_CHECK(s.code() == absl::StatusCode::kInvalidArgument ||
               s.code() == absl::StatusCode::kResourceExhausted);
    if (parsed) {
      FUZZ_CHECK(s.code() == absl::StatusCode::kResourceExhausted);
      FUZZ_CHECK(static_cast<uint32_t>(want.batch_size()) > max_batch);
    }
    return 0;
  }
  FUZZ_CHECK(decoder.batch_size() <= max_batch);
  if (parsed) {
    FUZZ_CHECK(decoder.batch_size() == static_cast<size_t>(want.batch_size()));
    CheckSame(decoder.head(), want);
    FUZZ_CHECK(decoder.head().IsRequest() ==
               (want.op() != 0 || want.id() != 0 || want.offset() != 0 ||
                want.length() != 0 || !want.data().empty() || want.fua()));
  }
  // The entries come one at a time, as many as counted, and then no more.
  DecodedRequest entry;
  size_t n = 0;
  while (decoder.NextEntry(&entry)) {
    FUZZ_CHECK(n < decoder.batch_size());
    if (parsed) {
      CheckSame(entry, want.batch(static_cast<int>(n)));
      FUZZ_CHECK(entry.has_batch == (want.batch(static_cast<int>(n)).batch_size() > 0));
    }
    ++n;
  }
  FUZZ_CHECK(n == decoder.batch_size());
  FUZZ_CHECK(!decoder.NextEntry(&entry));
  return 0;
}

}  // namespace
}  // namespace cowblk::wire

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  return cowblk::wire::FuzzOneInput(data, size);
}
