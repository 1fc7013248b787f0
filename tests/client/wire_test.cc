// The Session codec (proto/session_codec.h) against the generated protobuf
// code, both ways: what the client's EncodeRequest and the server's
// EncodeAnswerHeader (plus its data slice) write is byte for byte what the
// generated serializer writes, and parses as the same message; ParseAnswers
// reads a SessionResponse with a batch however gRPC cuts it into slices.

#include "proto/session_codec.h"

#include <cstring>
#include <string>
#include <vector>

#include "gmock/gmock.h"

namespace cowblk::wire {
namespace {

std::string Bytes(const grpc::Slice& s) {
  return std::string(reinterpret_cast<const char*>(s.begin()), s.size());
}

TEST(SessionCodecTest, EncodedRequestsAreWhatProtobufSerializes) {
  const std::string data(4096 + 7, 'x');
  v1::SessionRequest want;
  want.set_id(300);
  want.set_volume("vm-1");
  want.set_op(v1::OP_WRITE);
  want.set_offset(1 << 20);
  want.set_data(data);
  want.set_fua(true);
  const grpc::Slice got = EncodeRequest(
      {.id = 300, .volume = "vm-1", .op = v1::OP_WRITE, .offset = 1 << 20, .data = data, .fua = true});
  EXPECT_EQ(Bytes(got), want.SerializeAsString());

  want.Clear();
  want.set_id(1);
  want.set_volume("v");
  want.set_op(v1::OP_READ);
  want.set_length(512);
  EXPECT_EQ(Bytes(EncodeRequest({.id = 1, .volume = "v", .op = v1::OP_READ, .length = 512})),
            want.SerializeAsString());
  // Every field at its default: nothing at all.
  EXPECT_EQ(EncodeRequest({}).size(), 0u);
}

TEST(SessionCodecTest, BatchEntriesParseAsTheRequestBatchField) {
  const grpc::Slice a = EncodeRequest({.id = 1, .volume = "v", .op = v1::OP_READ, .length = 4096});
  const grpc::Slice b = EncodeRequest({.id = 2, .volume = "v", .op = v1::OP_FLUSH});
  const std::string big_data(300 << 10, 'd');  // a length of three varint bytes
  const grpc::Slice c = EncodeRequest({.id = 3, .op = v1::OP_WRITE, .data = big_data});
  const std::string message = Bytes(a) + Bytes(RequestBatchEntryPrefix(b.size())) + Bytes(b) +
                              Bytes(RequestBatchEntryPrefix(c.size())) + Bytes(c);
  v1::SessionRequest r;
  ASSERT_TRUE(r.ParseFromString(message));
  EXPECT_EQ(r.id(), 1u);
  ASSERT_EQ(r.batch_size(), 2);
  EXPECT_EQ(r.batch(0).id(), 2u);
  EXPECT_EQ(r.batch(0).op(), v1::OP_FLUSH);
  EXPECT_EQ(r.batch(1).id(), 3u);
  EXPECT_EQ(r.batch(1).data(), big_data);
}

// The server's side: a header slice, then the data as a slice of its own.
std::string EncodeAnswer(const v1::SessionResponse& m, bool batch_entry) {
  const AnswerFields fields{
      .id = m.id(), .code = m.code(), .message = m.message(), .data_length = m.data().size()};
  const grpc::Slice header = EncodeAnswerHeader(fields, batch_entry);
  return Bytes(header) + m.data();
}

// The server's encoding of `m` against protobuf's, size and bytes.
void ExpectEncodedAsProtobufDoes(const v1::SessionResponse& m) {
  const std::string want = m.SerializeAsString();
  const AnswerFields fields{
      .id = m.id(), .code = m.code(), .message = m.message(), .data_length = m.data().size()};
  EXPECT_EQ(AnswerSize(fields), want.size()) << m.ShortDebugString().substr(0, 100);
  EXPECT_TRUE(EncodeAnswer(m, false) == want) << m.ShortDebugString().substr(0, 100);
}

TEST(SessionCodecTest, EncodedAnswersAreWhatProtobufSerializesForEveryFieldCombination) {
  const std::vector<uint64_t> ids = {0, 1, 300, uint64_t{1} << 40, ~uint64_t{0}};
  const std::vector<int32_t> codes = {0, 5, 14, -1, INT32_MIN, INT32_MAX};
  const std::vector<std::string> messages = {"", "volume gone", std::string(200, 'm')};
  // Data lengths whose varints take 0, 1 and 2 bytes.
  const std::vector<size_t> lengths = {0, 1, 127, 128, 4096};
  int checked = 0;
  for (uint64_t id : ids) {
    for (int32_t code : codes) {
      for (const std::string& message : messages) {
        for (size_t length : lengths) {
          v1::SessionResponse m;
          m.set_id(id);
          m.set_code(code);
          m.set_message(message);
          m.set_data(std::string(length, 'p'));
          ExpectEncodedAsProtobufDoes(m);
          ++checked;
        }
      }
    }
  }
  EXPECT_EQ(checked, 5 * 6 * 3 * 5);
}

TEST(SessionCodecTest, LargeReadAnswersAreWhatProtobufSerializes) {
  // Lengths of 3 and 4 varint bytes, up to 32 MiB (the most a request may
  // read), and the largest id.
  for (size_t length : {size_t{1} << 20, (size_t{2} << 20) + 512, size_t{32} << 20}) {
    v1::SessionResponse m;
    m.set_id(~uint64_t{0});
    m.set_data(std::string(length, 'p'));
    ExpectEncodedAsProtobufDoes(m);
  }
}

TEST(SessionCodecTest, AnswersWithBatchEntriesAreWhatProtobufSerializes) {
  v1::SessionResponse m;
  m.set_id(7);
  m.set_data(std::string(5000, 'a'));
  v1::SessionResponse* e1 = m.add_batch();
  e1->set_id(8);
  e1->set_code(-3);
  e1->set_message("refused");
  v1::SessionResponse* e2 = m.add_batch();
  e2->set_id(9);
  e2->set_data(std::string(200 << 10, 'b'));  // an entry length of three varint bytes
  v1::SessionResponse* e3 = m.add_batch();  // an answer with every field at its default
  (void)e3;
  v1::SessionResponse own = m;
  own.clear_batch();
  std::string encoded = EncodeAnswer(own, false);
  for (const v1::SessionResponse& e : m.batch()) encoded += EncodeAnswer(e, true);
  EXPECT_TRUE(encoded == m.SerializeAsString());
  v1::SessionResponse parsed;
  ASSERT_TRUE(parsed.ParseFromString(encoded));
  ASSERT_EQ(parsed.batch_size(), 3);
  EXPECT_EQ(parsed.batch(0).code(), -3);
  EXPECT_EQ(parsed.batch(1).data().size(), 200u << 10);
}

// Cuts `bytes` into slices of `piece` bytes (1: every field straddles).
std::vector<grpc::Slice> Cut(const std::string& bytes, size_t piece) {
  std::vector<grpc::Slice> slices;
  for (size_t at = 0; at < bytes.size(); at += piece) {
    slices.emplace_back(bytes.data() + at, std::min(piece, bytes.size() - at));
  }
  return slices;
}

TEST(SessionCodecTest, AnswersAndTheirBatchParseFromAnySlicing) {
  v1::SessionResponse m;
  m.set_id(7);
  m.set_data(std::string(3000, 'a'));
  auto* e1 = m.add_batch();
  e1->set_id(1ull << 40);
  e1->set_code(5);
  e1->set_message("volume gone");
  auto* e2 = m.add_batch();
  e2->set_id(9);
  e2->set_data("0123456789");
  auto* e3 = m.add_batch();
  e3->set_id(10);
  e3->set_code(-2);
  const std::string bytes = m.SerializeAsString();
  for (size_t piece : {size_t{1}, size_t{3}, size_t{1000}, bytes.size()}) {
    const std::vector<grpc::Slice> slices = Cut(bytes, piece);
    std::vector<Answer> answers;
    ASSERT_TRUE(ParseAnswers(slices, &answers)) << piece;
    ASSERT_EQ(answers.size(), 4u);
    EXPECT_EQ(answers[0].id, 7u);
    EXPECT_EQ(answers[0].code, 0);
    EXPECT_EQ(answers[0].data.ToString(), std::string(3000, 'a'));
    EXPECT_EQ(answers[1].id, 1ull << 40);
    EXPECT_EQ(answers[1].code, 5);
    EXPECT_EQ(answers[1].message, "volume gone");
    EXPECT_EQ(answers[1].data.size(), 0u);
    EXPECT_EQ(answers[2].id, 9u);
    std::string copied(10, '\0');
    answers[2].data.CopyTo(copied.data());
    EXPECT_EQ(copied, "0123456789");
    EXPECT_EQ(answers[3].code, -2);
  }
}

TEST(SessionCodecTest, ReadDataIsAViewOfTheReceivedSlicesNotACopy) {
  v1::SessionResponse m;
  m.set_id(1);
  m.set_data(std::string(100, 'z'));
  const std::vector<grpc::Slice> slices = Cut(m.SerializeAsString(), 40);
  std::vector<Answer> answers;
  ASSERT_TRUE(ParseAnswers(slices, &answers));
  ASSERT_EQ(answers.size(), 1u);
  EXPECT_EQ(answers[0].data.ToString(), std::string(100, 'z'));
  // What the received slices hold is what the answer's data holds.
  for (const grpc::Slice& s : slices) std::memset(const_cast<uint8_t*>(s.begin()), 'q', s.size());
  EXPECT_EQ(answers[0].data.ToString(), std::string(100, 'q'));
}

TEST(SessionCodecTest, UnknownFieldsAreSkippedAndTruncatedMessagesRefused) {
  v1::SessionResponse m;
  m.set_id(3);
  m.set_data("abc");
  m.add_batch()->set_id(4);
  std::string bytes = m.SerializeAsString();
  // An unknown varint field 20 and an unknown length-delimited field 21.
  bytes += std::string("\xa0\x01\x05\xaa\x01\x02zz", 8);
  const std::vector<grpc::Slice> slices = Cut(bytes, 2);  // outlives the answers' data
  std::vector<Answer> answers;
  ASSERT_TRUE(ParseAnswers(slices, &answers));
  ASSERT_EQ(answers.size(), 2u);
  EXPECT_EQ(answers[0].id, 3u);
  EXPECT_EQ(answers[0].data.ToString(), "abc");
  EXPECT_EQ(answers[1].id, 4u);
  for (size_t cut = 1; cut < bytes.size(); ++cut) {
    // Every proper prefix that protobuf refuses is refused.
    const std::string prefix = bytes.substr(0, cut);
    v1::SessionResponse check;
    if (check.ParseFromString(prefix)) continue;  // a prefix that is itself valid
    std::vector<Answer> none;
    EXPECT_FALSE(ParseAnswers(Cut(prefix, 1), &none)) << cut;
  }
  // A zero tag is not a field.
  std::vector<Answer> none;
  EXPECT_FALSE(ParseAnswers(Cut(std::string("\x08\x01\x00", 3), 1), &none));
}

}  // namespace
}  // namespace cowblk::wire
