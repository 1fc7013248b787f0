// The server's decoder of BlockService/Session request messages
// (cowblk.v1.SessionRequest), walked lazily over the received slices.
//
// Why not the generated parser: it gives every entry of `batch` a message
// of its own before the server can look at how many there are, so a 4 MB
// message of empty entries costs hundreds of megabytes. Here Start() walks
// the message once, checking every byte and counting the entries, keeps
// nothing per entry, and gives up as soon as the count passes the caller's
// limit (the session's window); the entries are then decoded one at a time
// into the caller's DecodedRequest. A write's data stays in the slices
// (DataView) until the caller copies it.
//
// The bytes are read as protobuf reads them (the last occurrence of a field
// wins, unknown fields and fields of the wrong wire type are skipped), with
// two differences that only accept more: `volume` is not checked to be
// UTF-8 (names are checked later, store/names.h), and an entry's own
// `batch`, which the server refuses, is skipped without being parsed.
// tests/fuzz/session_decoder_fuzz.cc holds the decoder to the generated
// parser.
//
// Thread-compatible. Results point into the slices given to Start(), which
// must outlive them.

#ifndef COWBLK_PROTO_SESSION_DECODER_H_
#define COWBLK_PROTO_SESSION_DECODER_H_

#include <google/protobuf/io/coded_stream.h>
#include <grpcpp/support/slice.h>

#include <cstddef>
#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "proto/session_codec.h"
#include "proto/slice_input.h"

namespace cowblk::wire {

// One request: the fields of a SessionRequest but `batch`.
struct DecodedRequest {
  uint64_t id = 0;
  std::string volume;
  int32_t op = 0;  // a v1::Op as sent: maybe none of its values
  uint64_t offset = 0;
  uint64_t length = 0;
  DataView data;  // a write's bytes, in the message's slices
  bool fua = false;
  // Carries a `batch` of its own (an entry of a batch may not).
  bool has_batch = false;

  // Whether a field other than `volume` (and `batch`) is set: a message
  // with a batch is a request of its own only then.
  bool IsRequest() const {
    return op != 0 || id != 0 || offset != 0 || length != 0 || data.size() != 0 || fua;
  }
};

class SessionDecoder {
 public:
  SessionDecoder() = default;
  SessionDecoder(const SessionDecoder&) = delete;
  SessionDecoder& operator=(const SessionDecoder&) = delete;

  // Checks the message in `slices` and decodes its own fields (head()).
  // Returns InvalidArgument when the bytes are not a SessionRequest, and
  // ResourceExhausted, having stopped there, when `batch` has more than
  // `max_batch` entries; after either, the decoder holds nothing.
  absl::Status Start(const std::vector<grpc::Slice>& slices, uint32_t max_batch);

  // The message's own fields. REQUIRES: Start() returned OK.
  const DecodedRequest& head() const { return head_; }
  // Entries of its `batch`.
  size_t batch_size() const { return batch_size_; }
  // Decodes the next entry of `batch`, in order, into `*entry` (cleared
  // first); false after the last. REQUIRES: Start() returned OK.
  bool NextEntry(DecodedRequest* entry);

 private:
  void Reset();

  DecodedRequest head_;
  size_t batch_size_ = 0;
  // The walk NextEntry continues; set by Start.
  std::optional<SliceInput> input_;
  std::optional<google::protobuf::io::CodedInputStream> in_;
};

}  // namespace cowblk::wire

#endif  // COWBLK_PROTO_SESSION_DECODER_H_
