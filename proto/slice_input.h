// The slices of a received gRPC message as one stream for protobuf's
// CodedInputStream, which then hands out pointers into them (no copy).
// ReadView takes a field's bytes as pieces of those slices. Shared by the
// two parsers of raw Session messages: the client's
// (session_codec.h, answers) and the server's (session_decoder.h, requests).
//
// Thread-compatible; as valid as `slices`, which must outlive it.

#ifndef COWBLK_PROTO_SLICE_INPUT_H_
#define COWBLK_PROTO_SLICE_INPUT_H_

#include <google/protobuf/io/coded_stream.h>
#include <google/protobuf/io/zero_copy_stream.h>
#include <grpcpp/support/slice.h>

#include <algorithm>
#include <cstdint>
#include <vector>

#include "proto/session_codec.h"

namespace cowblk::wire {

class SliceInput final : public google::protobuf::io::ZeroCopyInputStream {
 public:
  explicit SliceInput(const std::vector<grpc::Slice>& slices) : slices_(slices) {}

  bool Next(const void** data, int* size) override {
    if (backed_up_ > 0) {
      *data = current_end_ - backed_up_;
      *size = backed_up_;
      count_ += backed_up_;
      backed_up_ = 0;
      return true;
    }
    while (next_ < slices_.size()) {
      const grpc::Slice& s = slices_[next_++];
      if (s.size() == 0) continue;
      *data = s.begin();
      *size = static_cast<int>(s.size());
      current_end_ = s.begin() + s.size();
      count_ += *size;
      return true;
    }
    return false;
  }
  void BackUp(int count) override {
    backed_up_ = count;
    count_ -= count;
  }
  bool Skip(int count) override {
    const void* data;
    int size;
    while (count > 0) {
      if (!Next(&data, &size)) return false;
      if (size > count) {
        BackUp(size - count);
        return true;
      }
      count -= size;
    }
    return true;
  }
  int64_t ByteCount() const override { return count_; }

 private:
  const std::vector<grpc::Slice>& slices_;
  size_t next_ = 0;
  const uint8_t* current_end_ = nullptr;  // of the slice last handed out
  int backed_up_ = 0;
  int64_t count_ = 0;
};

// Appends the next `n` bytes of `in` to `view` as pieces of its slices;
// false when fewer are left before the current limit.
inline bool ReadView(google::protobuf::io::CodedInputStream* in, int n, DataView* view) {
  while (n > 0) {
    const void* p;
    int here;
    if (!in->GetDirectBufferPointer(&p, &here)) return false;
    here = std::min(here, n);
    view->Add(static_cast<const char*>(p), static_cast<size_t>(here));
    in->Skip(here);
    n -= here;
  }
  return true;
}

}  // namespace cowblk::wire

#endif  // COWBLK_PROTO_SLICE_INPUT_H_
