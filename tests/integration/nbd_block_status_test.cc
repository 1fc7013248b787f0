// Block status on the NBD export: structured replies and the
// base:allocation context, so that tools see the volume's real allocation.
// nbdinfo --map shows exactly the written ranges as data and the rest as
// hole,zero (on a blank volume, and over an image: its data is data);
// qemu-img map agrees with GetAllocation; hand-made requests check the
// protocol's rules (EINVAL past the end and without the context,
// NBD_CMD_FLAG_REQ_ONE, options in the wrong order).

#include <endian.h>
#include <fcntl.h>
#include <libnbd.h>
#include <unistd.h>

#include <cerrno>
#include <cstdint>
#include <cstring>
#include <regex>
#include <sstream>
#include <string>
#include <vector>

#include "gtest/gtest.h"
#include "tests/integration/nbd_fixture.h"
#include "tests/support/command.h"
#include "tests/support/scratch.h"

namespace cowblk::testing {
namespace {

constexpr uint32_t kOptGo = 7, kOptStructuredReply = 8, kOptListMetaContext = 9,
                   kOptSetMetaContext = 10;
constexpr uint32_t kRepAck = 1, kRepMetaContext = 4, kRepErrInvalid = (1u << 31) + 3;
constexpr uint16_t kCmdRead = 0, kCmdBlockStatus = 7, kFlagFua = 1, kFlagReqOne = 8;
constexpr uint16_t kTypeOffsetData = 1, kTypeBlockStatus = 5, kTypeError = (1 << 15) + 1;
constexpr uint32_t kHoleZero = 3;

// An extent as the tools print it: [offset, offset + length), data or not.
struct Range {
  uint64_t offset, length;
  bool data;
  bool operator==(const Range&) const = default;
};
std::ostream& operator<<(std::ostream& o, const Range& r) {
  return o << "{" << r.offset << "+" << r.length << (r.data ? " data}" : " hole}");
}

// Adjacent ranges of the same kind made one (tools may split where they like).
std::vector<Range> Merged(const std::vector<Range>& in) {
  std::vector<Range> out;
  for (const Range& r : in) {
    if (!out.empty() && out.back().data == r.data &&
        out.back().offset + out.back().length == r.offset) {
      out.back().length += r.length;
    } else {
      out.push_back(r);
    }
  }
  return out;
}

std::string Be32(uint32_t v) {
  v = htobe32(v);
  return std::string(reinterpret_cast<const char*>(&v), 4);
}

// `nbdinfo --map URI`: lines "offset length type description".
std::vector<Range> NbdinfoMap(const std::string& uri, std::string* output) {
  const CommandResult r = RunCommand({"nbdinfo", "--map", uri});
  *output = r.output;
  std::vector<Range> out;
  if (r.exit_code != 0) return out;
  std::istringstream lines(r.output);
  uint64_t offset, length, type;
  std::string description;
  while (lines >> offset >> length >> type >> description) {
    // type 3 is hole,zero; 0 data.
    out.push_back({offset, length, type == 0});
    if (type != 0 && type != kHoleZero) out.back().length = 0;  // makes the comparison fail
  }
  return Merged(out);
}

class NbdBlockStatusTest : public NbdTest {
 protected:
  // Writes `length` bytes of data at `offset` of `volume` over NBD.
  void Write(nbd_handle* h, uint64_t offset, uint64_t length) {
    const std::string bytes = RandomBytes(length, static_cast<uint32_t>(offset));
    ASSERT_EQ(nbd_pwrite(h, bytes.data(), bytes.size(), offset, 0), 0) << nbd_get_error();
  }

  // The volume's allocation from GetAllocation, every page.
  std::vector<Range> Allocation(const std::string& volume) {
    std::vector<Range> out;
    uint64_t offset = 0;
    do {
      grpc::ClientContext ctx;
      v1::GetAllocationRequest req;
      req.set_name(volume);
      req.set_offset(offset);
      v1::GetAllocationResponse resp;
      EXPECT_TRUE(volumes_->GetAllocation(&ctx, req, &resp).ok());
      for (const auto& r : resp.ranges()) out.push_back({r.offset(), r.length(), r.allocated()});
      offset = resp.next_offset();
    } while (offset != 0);
    return Merged(out);
  }

  // A raw connection to `volume` after NBD_OPT_GO, having negotiated
  // structured replies and selected base:allocation as asked; -1 on failure.
  int Negotiate(const std::string& volume, bool structured, bool base_allocation) {
    const int fd = RawSocket();
    char greeting[18];
    if (fd < 0 || !RecvAll(fd, greeting, sizeof greeting)) return -1;
    if (!SendAll(fd, Be32(3))) return -1;  // fixed newstyle, no zeroes
    if (structured && OptionReplies(fd, kOptStructuredReply, "").back() != kRepAck) return -1;
    if (base_allocation &&
        OptionReplies(fd, kOptSetMetaContext, MetaData(volume, {"base:allocation"})) !=
            std::vector<uint32_t>{kRepMetaContext, kRepAck}) {
      return -1;
    }
    std::string go = Be32(static_cast<uint32_t>(volume.size())) + volume + std::string(2, '\0');
    if (OptionReplies(fd, kOptGo, go).back() != kRepAck) return -1;
    return fd;
  }

  // LIST/SET_META_CONTEXT's data.
  static std::string MetaData(const std::string& volume, const std::vector<std::string>& queries) {
    std::string m = Be32(static_cast<uint32_t>(volume.size())) + volume +
                    Be32(static_cast<uint32_t>(queries.size()));
    for (const std::string& q : queries) m += Be32(static_cast<uint32_t>(q.size())) + q;
    return m;
  }

  // Sends an option; returns the types of its replies up to the last (ACK
  // or an error), {0} when the connection broke. `contexts` (when set)
  // gets the names NBD_REP_META_CONTEXT replies carry.
  std::vector<uint32_t> OptionReplies(int fd, uint32_t option, const std::string& data,
                                      std::vector<std::string>* contexts = nullptr) {
    std::string m;
    AppendOption(&m, option, data);
    if (!SendAll(fd, m)) return {0};
    std::vector<uint32_t> types;
    while (true) {
      uint8_t h[20];
      if (!RecvAll(fd, h, sizeof h)) return {0};
      uint32_t type, length;
      std::memcpy(&type, h + 12, 4);
      std::memcpy(&length, h + 16, 4);
      type = be32toh(type);
      std::string payload(be32toh(length), '\0');
      // (A recv of 0 bytes would wait for more.)
      if (!payload.empty() && !RecvAll(fd, payload.data(), payload.size())) return {0};
      types.push_back(type);
      if (type == kRepMetaContext && contexts != nullptr) contexts->push_back(payload.substr(4));
      if (type == kRepAck || (type & (1u << 31)) != 0) return types;
    }
  }

  // One structured reply chunk.
  struct Chunk {
    uint16_t flags = 0, type = 0;
    uint64_t cookie = 0;
    std::string payload;
    uint32_t error() const {  // of an error chunk
      uint32_t e;
      std::memcpy(&e, payload.data(), 4);
      return be32toh(e);
    }
    // The (length, flags) pairs of a block status chunk.
    std::vector<std::pair<uint32_t, uint32_t>> extents() const {
      std::vector<std::pair<uint32_t, uint32_t>> out;
      for (size_t at = 4; at + 8 <= payload.size(); at += 8) {
        uint32_t l, f;
        std::memcpy(&l, payload.data() + at, 4);
        std::memcpy(&f, payload.data() + at + 4, 4);
        out.push_back({be32toh(l), be32toh(f)});
      }
      return out;
    }
  };
  // Reads a structured reply chunk; false when none came (or not one).
  static bool ReadChunk(int fd, Chunk* c) {
    uint8_t h[20];
    if (!RecvAll(fd, h, sizeof h)) return false;
    uint32_t magic, length;
    std::memcpy(&magic, h, 4);
    if (be32toh(magic) != 0x668e33ef) return false;
    uint16_t v16;
    std::memcpy(&v16, h + 4, 2);
    c->flags = be16toh(v16);
    std::memcpy(&v16, h + 6, 2);
    c->type = be16toh(v16);
    std::memcpy(&c->cookie, h + 8, 8);
    c->cookie = be64toh(c->cookie);
    std::memcpy(&length, h + 16, 4);
    c->payload.assign(be32toh(length), '\0');
    return c->payload.empty() || RecvAll(fd, c->payload.data(), c->payload.size());
  }
  // Sends a block status request and reads its (one, final) chunk.
  static Chunk Status(int fd, uint16_t flags, uint64_t cookie, uint64_t offset, uint32_t length) {
    Chunk c;
    EXPECT_TRUE(SendAll(fd, Request(kCmdBlockStatus, flags, cookie, offset, length)));
    EXPECT_TRUE(ReadChunk(fd, &c));
    EXPECT_EQ(c.cookie, cookie);
    EXPECT_EQ(c.flags, 1) << "one chunk, NBD_REPLY_FLAG_DONE";
    return c;
  }
};

TEST_F(NbdBlockStatusTest, NbdinfoMapShowsTheWrittenRangesAsDataAndTheRestAsHoleZero) {
  nbd_handle* h = Connect("disk0");
  ASSERT_NE(h, nullptr) << nbd_get_error();
  Write(h, 64 << 10, 128 << 10);
  Write(h, (3 << 20) + 512, 1024);  // the map's grain is the sector
  Write(h, 7 << 20, 1 << 20);       // to the end
  std::string output;
  const std::vector<Range> want = {{0, 64 << 10, false},
                                   {64 << 10, 128 << 10, true},
                                   {192 << 10, (3 << 20) + 512 - (192 << 10), false},
                                   {(3 << 20) + 512, 1024, true},
                                   {(3 << 20) + 1536, (4 << 20) - 1536, false},
                                   {7 << 20, 1 << 20, true}};
  EXPECT_EQ(NbdinfoMap(Uri("disk0"), &output), want) << output;
}

// Over an image, what the volume did not write reads from the image: data
// where the image file has data, holes (zeros) where it has holes.
TEST_F(NbdBlockStatusTest, OverAnImageItsDataIsDataAndItsHolesAreHoles) {
  ASSERT_TRUE(Upload("base", RandomBytes(2 << 20, 7)).ok());
  {
    const int fd = open((dir_.path() + "/images/base.img").c_str(), O_RDWR | O_CLOEXEC);
    ASSERT_GE(fd, 0);
    ASSERT_EQ(fallocate(fd, FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE, 512 << 10, 1 << 20), 0)
        << std::strerror(errno);
    close(fd);
  }
  const grpc::Status created = Create("over", 0, "base");
  ASSERT_TRUE(created.ok()) << created.error_message();
  nbd_handle* h = Connect("over");
  ASSERT_NE(h, nullptr) << nbd_get_error();
  Write(h, 1 << 20, 64 << 10);
  std::string output;
  const std::vector<Range> want = {{0, 512 << 10, true},
                                   {512 << 10, 512 << 10, false},
                                   {1 << 20, 64 << 10, true},
                                   {(1 << 20) + (64 << 10), (512 - 64) << 10, false},
                                   {1536 << 10, 512 << 10, true}};
  EXPECT_EQ(NbdinfoMap(Uri("over"), &output), want) << output;
}

TEST_F(NbdBlockStatusTest, QemuImgMapAgreesWithGetAllocation) {
  nbd_handle* h = Connect("disk0");
  ASSERT_NE(h, nullptr) << nbd_get_error();
  Write(h, 4096, 8192);
  Write(h, 1 << 20, 1 << 20);
  Write(h, (5 << 20) + 512, 512);
  const CommandResult r =
      RunCommand({"qemu-img", "map", "--output=json", "-f", "raw", Uri("disk0")});
  ASSERT_EQ(r.exit_code, 0) << r.output;
  // [{ "start": 0, "length": 4096, "depth": 0, "present": false, "zero": true,
  //    "data": false, ...}, ...]
  const std::regex entry(R"re("start": (\d+), "length": (\d+),[^}]*"data": (true|false))re");
  std::vector<Range> map;
  for (auto it = std::sregex_iterator(r.output.begin(), r.output.end(), entry);
       it != std::sregex_iterator(); ++it) {
    map.push_back({std::stoull((*it)[1]), std::stoull((*it)[2]), (*it)[3] == "true"});
  }
  const std::vector<Range> allocation = Allocation("disk0");
  EXPECT_EQ(allocation.size(), 7u);  // holes around each of the three
  EXPECT_EQ(Merged(map), allocation) << r.output;
}

TEST_F(NbdBlockStatusTest, BlockStatusPastTheEndIsEinvalAndTheConnectionGoesOn) {
  const int fd = Negotiate("disk0", true, true);
  ASSERT_GE(fd, 0);
  Chunk c = Status(fd, 0, 1, kSize - 4096, 8192);
  EXPECT_EQ(c.type, kTypeError);
  EXPECT_EQ(c.error(), static_cast<uint32_t>(EINVAL));
  c = Status(fd, 0, 2, kSize, 512);
  EXPECT_EQ(c.type, kTypeError);
  EXPECT_EQ(c.error(), static_cast<uint32_t>(EINVAL));
  c = Status(fd, 0, 3, 0, 0);  // no length
  EXPECT_EQ(c.type, kTypeError);
  EXPECT_EQ(c.error(), static_cast<uint32_t>(EINVAL));
  c = Status(fd, kFlagFua, 4, 0, 4096);  // a flag block status does not take
  EXPECT_EQ(c.type, kTypeError);
  EXPECT_EQ(c.error(), static_cast<uint32_t>(EINVAL));
  // The last sector is fine, and answered as the blank hole it is.
  c = Status(fd, 0, 5, kSize - 512, 512);
  ASSERT_EQ(c.type, kTypeBlockStatus);
  EXPECT_EQ(c.extents(), (std::vector<std::pair<uint32_t, uint32_t>>{{512, kHoleZero}}));
  close(fd);
}

TEST_F(NbdBlockStatusTest, BlockStatusWithoutTheContextIsEinval) {
  // Structured replies, no context: an error chunk.
  int fd = Negotiate("disk0", true, false);
  ASSERT_GE(fd, 0);
  Chunk c = Status(fd, 0, 1, 0, 4096);
  EXPECT_EQ(c.type, kTypeError);
  EXPECT_EQ(c.error(), static_cast<uint32_t>(EINVAL));
  // A read is one NBD_REPLY_TYPE_OFFSET_DATA chunk: its offset, the data.
  ASSERT_TRUE(SendAll(fd, Request(kCmdRead, 0, 2, 8192, 4096)));
  ASSERT_TRUE(ReadChunk(fd, &c));
  EXPECT_EQ(c.type, kTypeOffsetData);
  EXPECT_EQ(c.flags, 1);
  EXPECT_EQ(c.payload.size(), 8u + 4096);
  EXPECT_EQ(c.payload.substr(0, 8), std::string("\0\0\0\0\0\0\x20\0", 8));
  close(fd);
  // Simple replies (no structured ones negotiated): a simple EINVAL.
  fd = Negotiate("disk0", false, false);
  ASSERT_GE(fd, 0);
  ASSERT_TRUE(SendAll(fd, Request(kCmdBlockStatus, 0, 3, 0, 4096)));
  EXPECT_EQ(ReplyError(fd, 3), EINVAL);
  close(fd);
}

TEST_F(NbdBlockStatusTest, ReqOneAnswersOneExtentAndOthersMayCoverLessThanAsked) {
  ASSERT_TRUE(WriteData("disk0", 4096, RandomBytes(4096, 1)).ok());
  ASSERT_TRUE(WriteData("disk0", 16384, RandomBytes(8192, 2)).ok());
  const int fd = Negotiate("disk0", true, true);
  ASSERT_GE(fd, 0);
  using Extents = std::vector<std::pair<uint32_t, uint32_t>>;
  Chunk c = Status(fd, kFlagReqOne, 1, 0, 1 << 20);
  ASSERT_EQ(c.type, kTypeBlockStatus);
  uint32_t id;
  std::memcpy(&id, c.payload.data(), 4);
  EXPECT_NE(be32toh(id), 0u) << "the id SET_META_CONTEXT gave";
  EXPECT_EQ(c.extents(), (Extents{{4096, kHoleZero}}));
  c = Status(fd, kFlagReqOne, 2, 4096, 512);  // no longer than asked
  EXPECT_EQ(c.extents(), (Extents{{512, 0}}));
  c = Status(fd, 0, 3, 0, 1 << 20);
  EXPECT_EQ(c.extents(), (Extents{{4096, kHoleZero},
                                  {4096, 0},
                                  {8192, kHoleZero},
                                  {8192, 0},
                                  {(1 << 20) - 24576, kHoleZero}}));
  close(fd);
}

TEST_F(NbdBlockStatusTest, MetaContextsNeedStructuredRepliesAndAreListed) {
  const int fd = RawSocket();
  char greeting[18];
  ASSERT_TRUE(RecvAll(fd, greeting, sizeof greeting));
  ASSERT_TRUE(SendAll(fd, Be32(3)));
  const std::string query = MetaData("disk0", {"base:allocation"});
  EXPECT_EQ(OptionReplies(fd, kOptSetMetaContext, query), std::vector<uint32_t>{kRepErrInvalid});
  EXPECT_EQ(OptionReplies(fd, kOptStructuredReply, "x"), std::vector<uint32_t>{kRepErrInvalid});
  EXPECT_EQ(OptionReplies(fd, kOptStructuredReply, ""), std::vector<uint32_t>{kRepAck});
  std::vector<std::string> names;
  EXPECT_EQ(OptionReplies(fd, kOptListMetaContext, MetaData("disk0", {}), &names),
            (std::vector<uint32_t>{kRepMetaContext, kRepAck}));
  EXPECT_EQ(names, std::vector<std::string>{"base:allocation"});
  // A context the export does not have selects nothing.
  EXPECT_EQ(OptionReplies(fd, kOptSetMetaContext, MetaData("disk0", {"qemu:dirty-bitmap:x"})),
            std::vector<uint32_t>{kRepAck});
  // Malformed: a query count the data does not hold.
  EXPECT_EQ(OptionReplies(fd, kOptSetMetaContext, MetaData("disk0", {}).substr(0, 9) + Be32(7)),
            std::vector<uint32_t>{kRepErrInvalid});
  close(fd);
}

}  // namespace
}  // namespace cowblk::testing
