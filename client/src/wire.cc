#include "client/src/wire.h"

#include <cstring>

namespace cowblk::internal {
namespace {

size_t VarintSize(uint64_t v) {
  size_t n = 1;
  while (v >= 0x80) {
    v >>= 7;
    ++n;
  }
  return n;
}

char* PutVarint(char* p, uint64_t v) {
  while (v >= 0x80) {
    *p++ = static_cast<char>(v | 0x80);
    v >>= 7;
  }
  *p++ = static_cast<char>(v);
  return p;
}

constexpr uint8_t kVarint = 0, kFixed64 = 1, kBytes = 2, kFixed32 = 5;
constexpr uint8_t Tag(int field, uint8_t type) { return static_cast<uint8_t>(field << 3 | type); }

// Reads protobuf wire data across the slices of a message, up to a limit.
class Reader {
 public:
  explicit Reader(const std::vector<grpc::Slice>& slices) : slices_(slices) {
    for (const auto& s : slices) end_ += s.size();
    Settle();
  }
  size_t pos() const { return pos_; }

  bool Byte(uint8_t* b) {
    if (pos_ >= end_) return false;
    *b = slices_[idx_].begin()[off_];
    Advance(1);
    return true;
  }
  bool Varint(uint64_t* v) {
    *v = 0;
    for (int shift = 0; shift < 64; shift += 7) {
      uint8_t b;
      if (!Byte(&b)) return false;
      *v |= static_cast<uint64_t>(b & 0x7f) << shift;
      if ((b & 0x80) == 0) return true;
    }
    return false;
  }
  // The next `n` bytes, as pieces of the slices.
  bool Span(uint64_t n, DataView* view) {
    if (n > end_ - pos_) return false;
    while (n > 0) {
      const size_t here = std::min<size_t>(n, slices_[idx_].size() - off_);
      if (view != nullptr) {
        view->Add(reinterpret_cast<const char*>(slices_[idx_].begin()) + off_, here);
      }
      Advance(here);
      n -= here;
    }
    return true;
  }
  bool Skip(uint8_t type) {
    uint64_t v;
    switch (type) {
      case kVarint: return Varint(&v);
      case kFixed64: return Span(8, nullptr);
      case kBytes: return Varint(&v) && Span(v, nullptr);
      case kFixed32: return Span(4, nullptr);
      default: return false;
    }
  }

 private:
  void Advance(size_t n) {
    off_ += n;
    pos_ += n;
    Settle();
  }
  // Moves past exhausted (and empty) slices.
  void Settle() {
    while (idx_ < slices_.size() && off_ == slices_[idx_].size()) {
      ++idx_;
      off_ = 0;
    }
  }

  const std::vector<grpc::Slice>& slices_;
  size_t idx_ = 0, off_ = 0, pos_ = 0, end_ = 0;
};

// Parses the fields of one answer until `end`; a batch entry (field 5)
// found at the top level is parsed into `batch` (null inside an entry,
// where a batch is not allowed).
bool ParseAnswer(Reader* r, size_t end, WireAnswer* a, std::vector<WireAnswer>* batch) {
  while (r->pos() < end) {
    uint64_t key;
    if (!r->Varint(&key)) return false;
    const int field = static_cast<int>(key >> 3);
    const uint8_t type = static_cast<uint8_t>(key & 7);
    uint64_t v;
    if (field == 1 && type == kVarint) {
      if (!r->Varint(&a->id)) return false;
    } else if (field == 2 && type == kVarint) {
      if (!r->Varint(&v)) return false;
      a->code = static_cast<int32_t>(v);
    } else if (field == 3 && type == kBytes) {
      DataView m;
      if (!r->Varint(&v) || !r->Span(v, &m)) return false;
      a->message = m.ToString();
    } else if (field == 4 && type == kBytes) {
      a->data = DataView();  // the last occurrence wins, as in protobuf
      if (!r->Varint(&v) || !r->Span(v, &a->data)) return false;
    } else if (field == 5 && type == kBytes && batch != nullptr) {
      if (!r->Varint(&v) || v > end - r->pos()) return false;
      WireAnswer entry;
      if (!ParseAnswer(r, r->pos() + v, &entry, nullptr)) return false;
      batch->push_back(std::move(entry));
    } else {
      if (!r->Skip(type)) return false;
    }
  }
  return r->pos() == end;
}

}  // namespace

grpc::Slice EncodeRequest(uint64_t id, const std::string& volume, v1::Op op, uint64_t offset,
                          uint64_t length, const char* data, size_t data_length, bool fua) {
  size_t size = 0;
  if (id != 0) size += 1 + VarintSize(id);
  if (!volume.empty()) size += 1 + VarintSize(volume.size()) + volume.size();
  if (op != 0) size += 1 + VarintSize(static_cast<uint64_t>(op));
  if (offset != 0) size += 1 + VarintSize(offset);
  if (length != 0) size += 1 + VarintSize(length);
  if (data_length != 0) size += 1 + VarintSize(data_length) + data_length;
  if (fua) size += 2;
  grpc::Slice slice(size);
  char* p = reinterpret_cast<char*>(const_cast<uint8_t*>(slice.begin()));
  if (id != 0) {
    *p++ = static_cast<char>(Tag(1, kVarint));
    p = PutVarint(p, id);
  }
  if (!volume.empty()) {
    *p++ = static_cast<char>(Tag(2, kBytes));
    p = PutVarint(p, volume.size());
    std::memcpy(p, volume.data(), volume.size());
    p += volume.size();
  }
  if (op != 0) {
    *p++ = static_cast<char>(Tag(3, kVarint));
    p = PutVarint(p, static_cast<uint64_t>(op));
  }
  if (offset != 0) {
    *p++ = static_cast<char>(Tag(4, kVarint));
    p = PutVarint(p, offset);
  }
  if (length != 0) {
    *p++ = static_cast<char>(Tag(5, kVarint));
    p = PutVarint(p, length);
  }
  if (data_length != 0) {
    *p++ = static_cast<char>(Tag(6, kBytes));
    p = PutVarint(p, data_length);
    std::memcpy(p, data, data_length);
    p += data_length;
  }
  if (fua) {
    *p++ = static_cast<char>(Tag(7, kVarint));
    *p++ = 1;
  }
  return slice;
}

grpc::Slice BatchEntryPrefix(size_t size) {
  char buf[16];
  buf[0] = static_cast<char>(Tag(8, kBytes));
  char* end = PutVarint(buf + 1, size);
  return grpc::Slice(buf, static_cast<size_t>(end - buf));
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

bool ParseAnswers(const std::vector<grpc::Slice>& slices, std::vector<WireAnswer>* answers) {
  Reader r(slices);
  size_t end = 0;
  for (const auto& s : slices) end += s.size();
  WireAnswer first;
  std::vector<WireAnswer> batch;
  if (!ParseAnswer(&r, end, &first, &batch)) return false;
  answers->push_back(std::move(first));
  for (auto& a : batch) answers->push_back(std::move(a));
  return true;
}

}  // namespace cowblk::internal
