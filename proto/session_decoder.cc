#include "proto/session_decoder.h"

#include <google/protobuf/wire_format_lite.h>

#include <limits>

#include "absl/functional/function_ref.h"
#include "absl/strings/str_format.h"
#include "cowblk/v1/block.pb.h"

namespace cowblk::wire {
namespace {

using google::protobuf::io::CodedInputStream;
using WireFormatLite = google::protobuf::internal::WireFormatLite;
using Request = v1::SessionRequest;

constexpr auto kVarint = WireFormatLite::WIRETYPE_VARINT;
constexpr auto kDelimited = WireFormatLite::WIRETYPE_LENGTH_DELIMITED;
constexpr uint32_t kId = WireFormatLite::MakeTag(Request::kIdFieldNumber, kVarint);
constexpr uint32_t kVolume = WireFormatLite::MakeTag(Request::kVolumeFieldNumber, kDelimited);
constexpr uint32_t kOp = WireFormatLite::MakeTag(Request::kOpFieldNumber, kVarint);
constexpr uint32_t kOffset = WireFormatLite::MakeTag(Request::kOffsetFieldNumber, kVarint);
constexpr uint32_t kLength = WireFormatLite::MakeTag(Request::kLengthFieldNumber, kVarint);
constexpr uint32_t kData = WireFormatLite::MakeTag(Request::kDataFieldNumber, kDelimited);
constexpr uint32_t kFua = WireFormatLite::MakeTag(Request::kFuaFieldNumber, kVarint);
constexpr uint32_t kBatch = WireFormatLite::MakeTag(Request::kBatchFieldNumber, kDelimited);

// Called with `in` limited to one entry of `batch`; false when the bytes
// are bad.
using EntryFn = absl::FunctionRef<bool(CodedInputStream*)>;

// Reads a length and calls `entry` with `in` limited to that many bytes.
bool WithinEntry(CodedInputStream* in, EntryFn entry) {
  int length;
  // Past the limit is bad bytes, not a clean end.
  if (!in->ReadVarintSizeAsInt(&length) || length > in->BytesUntilLimit()) return false;
  const CodedInputStream::Limit outer = in->PushLimit(length);
  if (!entry(in) || !in->ConsumedEntireMessage()) return false;
  in->PopLimit(outer);
  return true;
}

// Parses the fields of one request up to the current limit into `r`;
// entries of `batch` go to `entry`, or, when it is null, only mark `r`
// (has_batch) and are skipped. True at a clean end.
bool ParseRequest(CodedInputStream* in, DecodedRequest* r, const EntryFn* entry) {
  while (true) {
    const uint32_t tag = in->ReadTag();
    if (tag == 0) return in->ConsumedEntireMessage();  // false for a bad tag
    if (WireFormatLite::GetTagFieldNumber(tag) == 0) return false;
    int length;
    uint64_t v;
    switch (tag) {
      case kId:
        if (!in->ReadVarint64(&r->id)) return false;
        break;
      case kVolume:
        if (!in->ReadVarintSizeAsInt(&length) || !in->ReadString(&r->volume, length)) return false;
        break;
      case kOp:  // an enum is an int32, sign-extended to 64 bits
        if (!in->ReadVarint64(&v)) return false;
        r->op = static_cast<int32_t>(v);
        break;
      case kOffset:
        if (!in->ReadVarint64(&r->offset)) return false;
        break;
      case kLength:
        if (!in->ReadVarint64(&r->length)) return false;
        break;
      case kData:
        r->data.Clear();  // the last occurrence wins, as in protobuf
        if (!in->ReadVarintSizeAsInt(&length) || !ReadView(in, length, &r->data)) return false;
        break;
      case kFua:
        if (!in->ReadVarint64(&v)) return false;
        r->fua = v != 0;
        break;
      case kBatch:
        if (entry != nullptr) {
          if (!WithinEntry(in, *entry)) return false;
          break;
        }
        r->has_batch = true;
        [[fallthrough]];
      default:
        if (!WireFormatLite::SkipField(in, tag)) return false;
    }
  }
}

absl::Status NotARequest() {
  return absl::InvalidArgumentError("a Session message is not a cowblk.v1.SessionRequest");
}

}  // namespace

void SessionDecoder::Reset() {
  head_ = DecodedRequest();
  batch_size_ = 0;
  in_.reset();
  input_.reset();
}

absl::Status SessionDecoder::Start(const std::vector<grpc::Slice>& slices, uint32_t max_batch) {
  Reset();
  size_t total = 0;
  for (const auto& s : slices) total += s.size();
  if (total > static_cast<size_t>(std::numeric_limits<int>::max())) return NotARequest();

  // The checking walk: every entry is parsed into one scratch request and
  // forgotten, so the walk costs no memory whatever the count.
  absl::Status status;
  {
    SliceInput input(slices);
    CodedInputStream in(&input);
    in.PushLimit(static_cast<int>(total));
    DecodedRequest scratch;
    auto check_entry = [&](CodedInputStream* e) {
      if (++batch_size_ > max_batch) {
        status = absl::ResourceExhaustedError(absl::StrFormat(
            "batch: more than the session's window of %u requests in one message (the "
            "cowblk-batch-max metadata)",
            max_batch));
        return false;
      }
      scratch = DecodedRequest();
      return ParseRequest(e, &scratch, nullptr);
    };
    const EntryFn entry = check_entry;
    if (!ParseRequest(&in, &head_, &entry) && status.ok()) status = NotARequest();
  }
  if (!status.ok()) {
    Reset();
    return status;
  }
  input_.emplace(slices);
  in_.emplace(&*input_);
  in_->PushLimit(static_cast<int>(total));
  return absl::OkStatus();
}

bool SessionDecoder::NextEntry(DecodedRequest* entry) {
  // Start() checked every byte: only the entries are looked at here.
  while (true) {
    const uint32_t tag = in_->ReadTag();
    if (tag == 0) return false;
    if (tag != kBatch) {
      WireFormatLite::SkipField(&*in_, tag);
      continue;
    }
    *entry = DecodedRequest();
    auto parse = [entry](CodedInputStream* e) { return ParseRequest(e, entry, nullptr); };
    return WithinEntry(&*in_, parse);
  }
}

}  // namespace cowblk::wire
