#include "proto/session_codec.h"

#include <google/protobuf/io/coded_stream.h>
#include <google/protobuf/io/zero_copy_stream.h>
#include <google/protobuf/wire_format_lite.h>

#include <algorithm>
#include <cstring>
#include <limits>

#include "proto/slice_input.h"

namespace cowblk::wire {
namespace {

using google::protobuf::io::CodedInputStream;
using google::protobuf::io::CodedOutputStream;
using WireFormatLite = google::protobuf::internal::WireFormatLite;
using Request = v1::SessionRequest;
using Response = v1::SessionResponse;

constexpr auto kVarint = WireFormatLite::WIRETYPE_VARINT;
constexpr auto kDelimited = WireFormatLite::WIRETYPE_LENGTH_DELIMITED;

size_t TagSize(int field, WireFormatLite::WireType type) {
  return CodedOutputStream::VarintSize32(WireFormatLite::MakeTag(field, type));
}

// Tag, length and bytes of a length-delimited field.
size_t DelimitedSize(int field, size_t length) {
  return TagSize(field, kDelimited) + WireFormatLite::LengthDelimitedSize(length);
}

// The tag and length of a length-delimited field whose bytes follow.
uint8_t* WriteDelimitedHeader(int field, size_t length, uint8_t* p) {
  p = WireFormatLite::WriteTagToArray(field, kDelimited, p);
  return CodedOutputStream::WriteVarint32ToArray(static_cast<uint32_t>(length), p);
}

uint8_t* WriteDelimited(int field, std::string_view bytes, uint8_t* p) {
  p = WriteDelimitedHeader(field, bytes.size(), p);
  std::memcpy(p, bytes.data(), bytes.size());
  return p + bytes.size();
}

// A slice of `size` bytes for the caller to fill (gRPC's slices are
// immutable only once handed over).
uint8_t* Writable(grpc::Slice* slice, size_t size) {
  *slice = grpc::Slice(size);
  return const_cast<uint8_t*>(slice->begin());
}

// Parses the fields of one answer up to the current limit; an entry of the
// `batch` field is parsed into `batch` (null inside an entry, whose own
// batch is skipped: the server sends none). True at a clean end.
bool ParseAnswer(CodedInputStream* in, Answer* a, std::vector<Answer>* batch) {
  constexpr uint32_t kId = WireFormatLite::MakeTag(Response::kIdFieldNumber, kVarint);
  constexpr uint32_t kCode = WireFormatLite::MakeTag(Response::kCodeFieldNumber, kVarint);
  constexpr uint32_t kMessage = WireFormatLite::MakeTag(Response::kMessageFieldNumber, kDelimited);
  constexpr uint32_t kData = WireFormatLite::MakeTag(Response::kDataFieldNumber, kDelimited);
  constexpr uint32_t kBatch = WireFormatLite::MakeTag(Response::kBatchFieldNumber, kDelimited);
  while (true) {
    const uint32_t tag = in->ReadTag();
    if (tag == 0) return in->ConsumedEntireMessage();  // false for a bad tag
    if (WireFormatLite::GetTagFieldNumber(tag) == 0) return false;
    int length;
    switch (tag) {
      case kId:
        if (!in->ReadVarint64(&a->id)) return false;
        break;
      case kCode: {
        uint64_t code;  // an int32 is sign-extended to 64 bits
        if (!in->ReadVarint64(&code)) return false;
        a->code = static_cast<int32_t>(code);
        break;
      }
      case kMessage:
        if (!in->ReadVarintSizeAsInt(&length) || !in->ReadString(&a->message, length)) {
          return false;
        }
        break;
      case kData:
        a->data.Clear();  // the last occurrence wins, as in protobuf
        if (!in->ReadVarintSizeAsInt(&length) || !ReadView(in, length, &a->data)) return false;
        break;
      case kBatch:
        if (batch != nullptr) {
          // The top level has a limit (the message's size), so a length
          // past the end is caught here rather than read as a clean end.
          if (!in->ReadVarintSizeAsInt(&length) || length > in->BytesUntilLimit()) return false;
          const CodedInputStream::Limit outer = in->PushLimit(length);
          Answer entry;
          if (!ParseAnswer(in, &entry, nullptr)) return false;
          in->PopLimit(outer);
          batch->push_back(std::move(entry));
          break;
        }
        [[fallthrough]];
      default:
        if (!WireFormatLite::SkipField(in, tag)) return false;
    }
  }
}

}  // namespace

grpc::Slice EncodeRequest(const RequestFields& r) {
  size_t size = 0;
  if (r.id != 0) size += TagSize(Request::kIdFieldNumber, kVarint) + WireFormatLite::UInt64Size(r.id);
  if (!r.volume.empty()) size += DelimitedSize(Request::kVolumeFieldNumber, r.volume.size());
  if (r.op != v1::OP_UNSPECIFIED) {
    size += TagSize(Request::kOpFieldNumber, kVarint) + WireFormatLite::EnumSize(r.op);
  }
  if (r.offset != 0) {
    size += TagSize(Request::kOffsetFieldNumber, kVarint) + WireFormatLite::UInt64Size(r.offset);
  }
  if (r.length != 0) {
    size += TagSize(Request::kLengthFieldNumber, kVarint) + WireFormatLite::UInt64Size(r.length);
  }
  if (!r.data.empty()) size += DelimitedSize(Request::kDataFieldNumber, r.data.size());
  if (r.fua) size += TagSize(Request::kFuaFieldNumber, kVarint) + 1;

  grpc::Slice slice;
  uint8_t* p = Writable(&slice, size);
  if (r.id != 0) p = WireFormatLite::WriteUInt64ToArray(Request::kIdFieldNumber, r.id, p);
  if (!r.volume.empty()) p = WriteDelimited(Request::kVolumeFieldNumber, r.volume, p);
  if (r.op != v1::OP_UNSPECIFIED) p = WireFormatLite::WriteEnumToArray(Request::kOpFieldNumber, r.op, p);
  if (r.offset != 0) p = WireFormatLite::WriteUInt64ToArray(Request::kOffsetFieldNumber, r.offset, p);
  if (r.length != 0) p = WireFormatLite::WriteUInt64ToArray(Request::kLengthFieldNumber, r.length, p);
  if (!r.data.empty()) p = WriteDelimited(Request::kDataFieldNumber, r.data, p);
  if (r.fua) WireFormatLite::WriteBoolToArray(Request::kFuaFieldNumber, true, p);
  return slice;
}

grpc::Slice RequestBatchEntryPrefix(size_t size) {
  uint8_t buf[16];
  const uint8_t* end = WriteDelimitedHeader(Request::kBatchFieldNumber, size, buf);
  return grpc::Slice(buf, static_cast<size_t>(end - buf));
}

size_t AnswerSize(const AnswerFields& a) {
  size_t size = 0;
  if (a.id != 0) size += TagSize(Response::kIdFieldNumber, kVarint) + WireFormatLite::UInt64Size(a.id);
  if (a.code != 0) {
    size += TagSize(Response::kCodeFieldNumber, kVarint) + WireFormatLite::Int32Size(a.code);
  }
  if (!a.message.empty()) size += DelimitedSize(Response::kMessageFieldNumber, a.message.size());
  if (a.data_length != 0) size += DelimitedSize(Response::kDataFieldNumber, a.data_length);
  return size;
}

grpc::Slice EncodeAnswerHeader(const AnswerFields& a, bool batch_entry) {
  const size_t answer = AnswerSize(a);
  const size_t size = (batch_entry ? DelimitedSize(Response::kBatchFieldNumber, answer) - answer : 0) +
                      answer - a.data_length;
  grpc::Slice slice;
  uint8_t* p = Writable(&slice, size);
  if (batch_entry) p = WriteDelimitedHeader(Response::kBatchFieldNumber, answer, p);
  if (a.id != 0) p = WireFormatLite::WriteUInt64ToArray(Response::kIdFieldNumber, a.id, p);
  if (a.code != 0) p = WireFormatLite::WriteInt32ToArray(Response::kCodeFieldNumber, a.code, p);
  if (!a.message.empty()) p = WriteDelimited(Response::kMessageFieldNumber, a.message, p);
  if (a.data_length != 0) WriteDelimitedHeader(Response::kDataFieldNumber, a.data_length, p);
  return slice;
}

void DataView::CopyTo(char* dest) const {
  for (const auto& [p, n] : pieces_) {
    std::memcpy(dest, p, n);
    dest += n;
  }
}

std::string DataView::ToString() const {
  std::string s(size_, '\0');
  CopyTo(s.data());
  return s;
}

bool ParseAnswers(const std::vector<grpc::Slice>& slices, std::vector<Answer>* answers) {
  size_t total = 0;
  for (const auto& s : slices) total += s.size();
  if (total > static_cast<size_t>(std::numeric_limits<int>::max())) return false;
  SliceInput input(slices);
  CodedInputStream in(&input);
  in.PushLimit(static_cast<int>(total));
  Answer first;
  std::vector<Answer> batch;
  if (!ParseAnswer(&in, &first, &batch)) return false;
  answers->push_back(std::move(first));
  for (Answer& a : batch) answers->push_back(std::move(a));
  return true;
}

}  // namespace cowblk::wire
