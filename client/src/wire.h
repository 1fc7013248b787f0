// The Session stream's messages, encoded and parsed by hand so a write's
// bytes are copied once (into the message) and a read's answer once (from
// the received message into the caller's buffer), instead of going through
// a protobuf message on each side. The encodings are exactly
// cowblk.v1.SessionRequest and SessionResponse (proto/cowblk/v1/block.proto);
// tests/client/wire_test.cc checks them against the generated code.

#ifndef COWBLK_CLIENT_SRC_WIRE_H_
#define COWBLK_CLIENT_SRC_WIRE_H_

#include <grpcpp/support/byte_buffer.h>
#include <grpcpp/support/slice.h>

#include <cstddef>
#include <cstdint>
#include <string>
#include <utility>
#include <vector>

#include "absl/container/inlined_vector.h"
#include "cowblk/v1/block.pb.h"

namespace cowblk::internal {

// One SessionRequest, encoded into a single slice (`data` copied in).
grpc::Slice EncodeRequest(uint64_t id, const std::string& volume, v1::Op op, uint64_t offset,
                          uint64_t length, const char* data, size_t data_length, bool fua);

// The tag and length that make an encoded request of `size` bytes an entry
// of the `batch` field of the message before it.
grpc::Slice BatchEntryPrefix(size_t size);

// Bytes of a received message, possibly in several pieces; valid while the
// message's slices are.
class DataView {
 public:
  void Add(const char* p, size_t n) {
    pieces_.emplace_back(p, n);
    size_ += n;
  }
  size_t size() const { return size_; }
  void CopyTo(char* dest) const;
  std::string ToString() const;

 private:
  absl::InlinedVector<std::pair<const char*, size_t>, 4> pieces_;
  size_t size_ = 0;
};

struct WireAnswer {
  uint64_t id = 0;
  int32_t code = 0;
  std::string message;
  DataView data;
};

// Parses a SessionResponse, its own answer first, then those of its batch.
// `slices` must outlive the answers' data. False if the bytes are not a
// SessionResponse.
bool ParseAnswers(const std::vector<grpc::Slice>& slices, std::vector<WireAnswer>* answers);

}  // namespace cowblk::internal

#endif  // COWBLK_CLIENT_SRC_WIRE_H_
