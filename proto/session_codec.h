// The bytes of BlockService/Session messages, for the two ends that speak
// them as raw gRPC messages: libcowblk sends SessionRequests and parses
// SessionResponses, cowblkd the other way round (it parses requests with
// the generated code).
//
// Why not the generated messages: a write's data would be copied into a
// protobuf string and then into gRPC's buffer, and a read's answer would be
// zero-filled, copied into a string and copied out again. Here a request's
// data is copied once, into the slice that is sent; an answer's data is a
// slice of its own that the server builds over the engine's buffer (no
// copy), and that the client reads straight from the received slices.
//
// The encodings are exactly those of cowblk.v1.SessionRequest and
// SessionResponse (proto/cowblk/v1/block.proto), field numbers taken from
// the generated code, varints and tags written by protobuf's own helpers;
// tests/client/wire_test.cc checks both directions against the generated
// parser and serializer.
//
// Thread-safety: free functions without shared state. A DataView is as
// valid as the slices it points into.

#ifndef COWBLK_PROTO_SESSION_CODEC_H_
#define COWBLK_PROTO_SESSION_CODEC_H_

#include <grpcpp/support/slice.h>

#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "absl/container/inlined_vector.h"
#include "cowblk/v1/block.pb.h"

namespace cowblk::wire {

// ---- Requests (sent by the client) ---------------------------------------

// The fields of one SessionRequest (all but `batch`). Defaults are not
// encoded, as protobuf does not encode them.
struct RequestFields {
  uint64_t id = 0;
  std::string_view volume = {};
  v1::Op op = v1::OP_UNSPECIFIED;
  uint64_t offset = 0;
  uint64_t length = 0;
  std::string_view data = {};  // a write's bytes, copied into the slice
  bool fua = false;
};

// One SessionRequest in a single slice of exactly its size.
grpc::Slice EncodeRequest(const RequestFields& request);

// The tag and length that make an encoded request of `size` bytes, sent
// right after them, an entry of the `batch` field of the message before
// (SessionRequest.batch).
grpc::Slice RequestBatchEntryPrefix(size_t size);

// ---- Answers (sent by the server) ----------------------------------------

// The fields of one SessionResponse (all but `batch`), a read's data only by
// its length: the bytes follow the header as a slice of their own.
struct AnswerFields {
  uint64_t id = 0;
  int32_t code = 0;  // a google.rpc.Code; negative values are encoded as protobuf does
  std::string_view message = {};
  size_t data_length = 0;
};

// The encoded size of the answer, data included, without a batch-entry
// prefix: what a sender adds up to bound a message.
size_t AnswerSize(const AnswerFields& answer);

// The answer's bytes up to its data: fields 1-3 and the tag and length of
// field 4 (when data_length is not 0), in one slice. With `batch_entry`,
// the answer is prefixed as an entry of the `batch` field of the message
// before (SessionResponse.batch). A sender writes this slice, then exactly
// `data_length` bytes of data (a slice that may own the engine's buffer);
// the two together are AnswerSize() bytes, plus the prefix.
grpc::Slice EncodeAnswerHeader(const AnswerFields& answer, bool batch_entry);

// ---- Answers (parsed by the client) --------------------------------------

// Bytes of a received message, possibly in several pieces; valid while the
// message's slices are.
class DataView {
 public:
  void Add(const char* p, size_t n) {
    pieces_.emplace_back(p, n);
    size_ += n;
  }
  void Clear() {
    pieces_.clear();
    size_ = 0;
  }
  size_t size() const { return size_; }
  // Copies the bytes to `dest`, which has room for size().
  void CopyTo(char* dest) const;
  std::string ToString() const;

 private:
  absl::InlinedVector<std::pair<const char*, size_t>, 4> pieces_;
  size_t size_ = 0;
};

// One answer of a SessionResponse.
struct Answer {
  uint64_t id = 0;
  int32_t code = 0;
  std::string message;
  DataView data;  // points into the parsed slices
};

// Appends to `answers` the answers of the SessionResponse in `slices`: the
// message's own first, then those of its batch, in order. Unknown fields are
// skipped, as protobuf does. Returns false (with `answers` in an unspecified
// state) if the bytes are not a SessionResponse. `slices` must outlive the
// answers' data.
bool ParseAnswers(const std::vector<grpc::Slice>& slices, std::vector<Answer>* answers);

}  // namespace cowblk::wire

#endif  // COWBLK_PROTO_SESSION_CODEC_H_
