// The hand-made Session encodings (client/src/wire.h) against the generated
// protobuf code: what EncodeRequest writes parses as the same
// SessionRequest, and ParseAnswers reads a SessionResponse with a batch
// however gRPC cuts it into slices.

#include "client/src/wire.h"

#include <string>
#include <vector>

#include "gmock/gmock.h"

namespace cowblk::internal {
namespace {

std::string Bytes(const grpc::Slice& s) {
  return std::string(reinterpret_cast<const char*>(s.begin()), s.size());
}

TEST(WireTest, EncodedRequestsParseAsTheSameSessionRequest) {
  const std::string data(4096 + 7, 'x');
  v1::SessionRequest r;
  ASSERT_TRUE(r.ParseFromString(Bytes(EncodeRequest(300, "vm-1", v1::OP_WRITE, 1 << 20, 0,
                                                    data.data(), data.size(), true))));
  EXPECT_EQ(r.id(), 300u);
  EXPECT_EQ(r.volume(), "vm-1");
  EXPECT_EQ(r.op(), v1::OP_WRITE);
  EXPECT_EQ(r.offset(), 1u << 20);
  EXPECT_EQ(r.length(), 0u);
  EXPECT_EQ(r.data(), data);
  EXPECT_TRUE(r.fua());

  ASSERT_TRUE(r.ParseFromString(Bytes(EncodeRequest(1, "v", v1::OP_READ, 0, 512, nullptr, 0,
                                                    false))));
  EXPECT_EQ(r.op(), v1::OP_READ);
  EXPECT_EQ(r.offset(), 0u);
  EXPECT_EQ(r.length(), 512u);
  EXPECT_TRUE(r.data().empty());
  EXPECT_FALSE(r.fua());
}

TEST(WireTest, BatchEntriesParseAsTheBatchField) {
  const grpc::Slice a = EncodeRequest(1, "v", v1::OP_READ, 0, 4096, nullptr, 0, false);
  const grpc::Slice b = EncodeRequest(2, "v", v1::OP_FLUSH, 0, 0, nullptr, 0, false);
  const std::string message = Bytes(a) + Bytes(BatchEntryPrefix(b.size())) + Bytes(b);
  v1::SessionRequest r;
  ASSERT_TRUE(r.ParseFromString(message));
  EXPECT_EQ(r.id(), 1u);
  ASSERT_EQ(r.batch_size(), 1);
  EXPECT_EQ(r.batch(0).id(), 2u);
  EXPECT_EQ(r.batch(0).op(), v1::OP_FLUSH);
}

// Cuts `bytes` into slices of `piece` bytes (1: every field straddles).
std::vector<grpc::Slice> Cut(const std::string& bytes, size_t piece) {
  std::vector<grpc::Slice> slices;
  for (size_t at = 0; at < bytes.size(); at += piece) {
    slices.emplace_back(bytes.data() + at, std::min(piece, bytes.size() - at));
  }
  return slices;
}

TEST(WireTest, AnswersAndTheirBatchParseFromAnySlicing) {
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
  const std::string bytes = m.SerializeAsString();
  for (size_t piece : {size_t{1}, size_t{3}, size_t{1000}, bytes.size()}) {
    const std::vector<grpc::Slice> slices = Cut(bytes, piece);
    std::vector<WireAnswer> answers;
    ASSERT_TRUE(ParseAnswers(slices, &answers)) << piece;
    ASSERT_EQ(answers.size(), 3u);
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
  }
}

TEST(WireTest, UnknownFieldsAreSkippedAndTruncatedMessagesRefused) {
  v1::SessionResponse m;
  m.set_id(3);
  m.set_data("abc");
  std::string bytes = m.SerializeAsString();
  // An unknown varint field 20 and an unknown length-delimited field 21.
  bytes += std::string("\xa0\x01\x05\xaa\x01\x02zz", 8);
  const std::vector<grpc::Slice> slices = Cut(bytes, 2);  // outlives the answers' data
  std::vector<WireAnswer> answers;
  ASSERT_TRUE(ParseAnswers(slices, &answers));
  ASSERT_EQ(answers.size(), 1u);
  EXPECT_EQ(answers[0].id, 3u);
  EXPECT_EQ(answers[0].data.ToString(), "abc");
  for (size_t cut = 1; cut < bytes.size(); ++cut) {
    // Every proper prefix that ends inside a field is refused.
    const std::string prefix = bytes.substr(0, cut);
    v1::SessionResponse check;
    if (check.ParseFromString(prefix)) continue;  // a prefix that is itself valid
    std::vector<WireAnswer> none;
    EXPECT_FALSE(ParseAnswers(Cut(prefix, 1), &none)) << cut;
  }
}

}  // namespace
}  // namespace cowblk::internal
