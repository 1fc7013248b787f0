#include "client/gateway/connection.h"

#include <pthread.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <sys/uio.h>
#include <unistd.h>

#include <algorithm>
#include <array>
#include <exception>
#include <new>

#include "absl/strings/str_cat.h"
#include "client/gateway/handshake.h"
#include "common/block_range.h"
#include "common/log.h"
#include "common/nbd_wire.h"

namespace cowblk::gateway {
namespace {

using namespace cowblk::nbd;  // the protocol's numbers

constexpr size_t kRecvBufferBytes = 256 << 10;
// One block status answers at most this much of the volume (the protocol
// lets it answer less than asked): GetAllocation's ranges for it, at worst
// one per sector, stay a few MiB.
constexpr uint32_t kMaxStatusBytes = 64 << 20;
constexpr size_t kMaxExtents = 1024;  // per answer, as cowblkd's export

// base:allocation's extents for GetExtents' `ranges`: what the COW file
// holds is data; what the server says reads as zeros (the image's holes,
// past its end; all of a blank volume's unallocated space) is a hole; the
// rest, the image's data, is data. (A server from before GetExtents says
// no zeros: a blank volume's unallocated ranges are holes all the same.)
std::vector<Extent> ExtentsOf(const std::vector<AllocationRange>& ranges, bool blank,
                              bool req_one) {
  std::vector<Extent> out;
  for (const AllocationRange& r : ranges) {
    const uint32_t flags = !r.allocated && (r.zero || blank) ? kStateHole | kStateZero : 0;
    const auto length = static_cast<uint32_t>(r.length);
    if (!out.empty() && out.back().flags == flags) {
      out.back().length += length;
    } else if (out.size() < (req_one ? 1 : kMaxExtents)) {
      out.push_back({length, flags});
    } else {
      break;
    }
  }
  return out;
}
// A client that takes no reply for this long is cut (its connection
// would otherwise hold the gateway's shutdown for ever).
constexpr std::chrono::seconds kSendTimeout{60};

void SetTimeout(int fd, int option, std::chrono::milliseconds t) {
  timeval tv{static_cast<time_t>(t.count() / 1000),
             static_cast<suseconds_t>(t.count() % 1000 * 1000)};
  setsockopt(fd, SOL_SOCKET, option, &tv, sizeof tv);
}

}  // namespace

struct Connection::Request {
  uint64_t cookie = 0;
  bool read = false;
  uint64_t offset = 0;  // a read's
  uint32_t length = 0;  // a read's bytes
  std::string status;   // a block status's payload (BlockStatusPayload)
  uint32_t error = 0;   // the reply's errno
  uint32_t forced_error = 0;   // the reply's errno whatever the status (NBD_ENOTSUP)
  bool out_of_memory = false;  // no buffer for its data: ENOMEM
  uint64_t bytes = 0;   // of `data`, counted in Connection::bytes_
  std::unique_ptr<char[]> data;
};

Connection::Connection(int fd, const Exports* exports, std::string peer,
                       ConnectionOptions options)
    : fd_(fd),
      exports_(exports),
      peer_(std::move(peer)),
      options_(std::move(options)),
      in_(fd, kRecvBufferBytes) {}

Connection::~Connection() { close(fd_); }

absl::Status Connection::Start() {
  SetTimeout(fd_, SO_SNDTIMEO, kSendTimeout);
  try {
    writer_ = std::thread([this] { WriterMain(); });
  } catch (const std::exception& e) {
    return absl::ResourceExhaustedError(absl::StrCat("cannot start a thread: ", e.what()));
  }
  try {
    reader_ = std::thread([this] { ReaderMain(); });
  } catch (const std::exception& e) {
    {
      std::lock_guard<std::mutex> lock(mu_);
      reader_done_ = true;
      writer_cv_.notify_one();
    }
    writer_.join();
    return absl::ResourceExhaustedError(absl::StrCat("cannot start a thread: ", e.what()));
  }
  return absl::OkStatus();
}

void Connection::StopReading() { shutdown(fd_, SHUT_RD); }

bool Connection::finished() {
  std::lock_guard<std::mutex> lock(mu_);
  return threads_done_ == 2;
}

void Connection::Join() {
  if (reader_.joinable()) reader_.join();
  if (writer_.joinable()) writer_.join();
}

void Connection::ThreadDone() {
  bool last;
  {
    std::lock_guard<std::mutex> lock(mu_);
    last = ++threads_done_ == 2;
  }
  if (last && options_.on_finished) options_.on_finished();
}

void Connection::ReaderMain() {
  pthread_setname_np(pthread_self(), "gw-recv");
  std::string why;
  if (!in_.Allocate()) {
    why = "out of memory for the receive buffer";
  } else {
    SetTimeout(fd_, SO_RCVTIMEO, options_.handshake_timeout);
    Volume* volume = nullptr;
    try {
      volume = RunHandshake(fd_, &in_, *exports_, &why, &negotiated_);
    } catch (const std::bad_alloc&) {
      why = "handshake: out of memory";
    }
    if (volume != nullptr) {
      SetTimeout(fd_, SO_RCVTIMEO, std::chrono::milliseconds(0));
      volume_ = volume->name();
      Log(LogLevel::kInfo, "nbd_gateway_export", {{"peer", peer_}, {"volume", volume_}});
      why = Transmit(volume);
    }
  }
  {
    std::lock_guard<std::mutex> lock(mu_);
    why_ = std::move(why);
    reader_done_ = true;
    writer_cv_.notify_one();
  }
  ThreadDone();
}

std::string Connection::Transmit(Volume* volume) {
  while (true) {
    if (in_.buffered() < kRequestBytes) {
      if (in_.Fill()) continue;
      return "the client closed the connection";
    }
    const RequestHeader h =
        ParseRequestHeader(reinterpret_cast<const uint8_t*>(in_.Consume(kRequestBytes)));
    const RequestVerdict verdict = CheckRequest(h, negotiated_.base_allocation);
    if (verdict == RequestVerdict::kBadMagic) return "malformed request (bad magic)";
    if (verdict == RequestVerdict::kDisconnect) return "the client disconnected";
    ++requests_;
    std::string why;
    if (!Take(volume, h, verdict, &why)) return why;
  }
}

bool Connection::WaitForRoom(uint64_t bytes) {
  std::unique_lock<std::mutex> lock(mu_);
  room_cv_.wait(lock, [&] {
    return broken_ || in_flight_ == 0 ||
           (in_flight_ < options_.max_in_flight && bytes_ + bytes <= options_.max_bytes);
  });
  if (broken_) return false;
  ++in_flight_;
  bytes_ += bytes;
  return true;
}

bool Connection::Take(Volume* volume, const RequestHeader& h, RequestVerdict verdict,
                      std::string* why) {
  const bool read = h.type == kCmdRead;
  const bool too_large_read = read && h.length > kMaxBlock;
  const uint32_t payload = verdict == RequestVerdict::kWriteTooLarge ? 0 : PayloadBytes(h);
  const uint64_t bytes =
      verdict == RequestVerdict::kSubmit && read && !too_large_read ? h.length : payload;
  if (!WaitForRoom(bytes)) {
    *why = "a reply could not be sent";
    return false;
  }
  auto* r = new Request;
  r->cookie = h.cookie;
  r->read = read;
  r->offset = h.offset;
  r->length = h.length;
  r->bytes = bytes;
  // Not zeroed (pages are touched as used); nothrow: under a memory limit
  // this request fails, not the gateway (a sanitizer's operator new would
  // end the process rather than throw).
  if (bytes > 0) {
    r->data.reset(new (std::nothrow) char[bytes]);
    r->out_of_memory = !r->data;  // its bytes stay counted until the reply
  }
  auto done = [this, r](absl::Status s) { Complete(r, s); };
  if (verdict == RequestVerdict::kWriteTooLarge) {
    *why = absl::StrCat("a write of ", h.length, " bytes (the limit is ", kMaxBlock, ")");
    Complete(r, absl::InvalidArgumentError(*why));
    return false;
  }
  if (payload > 0) {
    const bool got = r->data ? in_.Take(r->data.get(), payload) : in_.Skip(payload);
    if (!got) {
      *why = "the client closed the connection in a write";
      Complete(r, absl::AbortedError(*why));
      return false;
    }
  }
  if (verdict != RequestVerdict::kSubmit || too_large_read) {
    Complete(r, absl::InvalidArgumentError("refused"));
    return true;
  }
  if (h.length == 0 && h.type != kCmdFlush) {
    // proto.md leaves it to the server; cowblkd's export refuses it too.
    Complete(r, absl::InvalidArgumentError("length 0"));
    return true;
  }
  if (r->out_of_memory) {
    Complete(r, absl::ResourceExhaustedError("out of memory"));
    return true;
  }
  if (h.type == kCmdBlockStatus) {
    BlockStatus(volume, h, r);
    return true;
  }
  const IoOptions io{.fua = (h.flags & kCmdFlagFua) != 0};
  switch (h.type) {
    case kCmdRead:
      volume->ReadAsync(h.offset, r->data.get(), h.length, done, io);
      break;
    case kCmdWrite:
      volume->WriteAsync(h.offset, r->data.get(), h.length, done, io);
      break;
    case kCmdFlush:
      volume->FlushAsync(done, io);
      break;
    case kCmdTrim:
      volume->TrimAsync(h.offset, h.length, done, io);
      break;
    case kCmdWriteZeroes:
      if ((h.flags & kCmdFlagNoHole) == 0) {
        // The server punches a hole (or, over never-written sectors of a
        // blank volume, does nothing): fast, FAST_ZERO or not.
        volume->WriteZeroesAsync(h.offset, h.length, done, io);
      } else if ((h.flags & kCmdFlagFastZero) != 0) {
        // Provisioned zeros are written as data here: not faster than a
        // write, so a fast zero fails at once and changes nothing.
        r->forced_error = kErrNotSup;
        Complete(r, absl::UnimplementedError("a fast zero with NO_HOLE"));
      } else {
        WriteZeroBlocks(volume, h.offset, h.length, io, std::move(done));
      }
      break;
    default:  // CheckRequest lets no other command through
      Complete(r, absl::InvalidArgumentError("unknown command"));
  }
  return true;
}

namespace {

// What a write of zeros reads from: shared, never written.
constexpr size_t kZeroBlockBytes = 1 << 20;
char zero_block[kZeroBlockBytes];  // in .bss: never written

// Writes [offset, offset + length) of zeros as data, one block after the
// other (one write in flight per request), then `done` with the first
// error or OK.
void WriteZeroChain(Volume* volume, uint64_t offset, uint64_t length, IoOptions io,
                    std::function<void(absl::Status)> done) {
  const size_t n = static_cast<size_t>(std::min<uint64_t>(length, kZeroBlockBytes));
  volume->WriteAsync(
      offset, zero_block, n,
      [volume, offset, length, n, io, done = std::move(done)](absl::Status s) mutable {
        if (!s.ok() || n == length) {
          done(s);
          return;
        }
        WriteZeroChain(volume, offset + n, length - n, io, std::move(done));
      },
      io);
}

}  // namespace

void Connection::WriteZeroBlocks(Volume* volume, uint64_t offset, uint64_t length,
                                 const IoOptions& io, std::function<void(absl::Status)> done) {
  if (length == 0 || !CheckBlockRange(offset, length, volume->size(), kExtentRules).ok()) {
    // Refused as the server refuses a write-zeroes (the range's errors).
    volume->WriteZeroesAsync(offset, length, std::move(done), io);
    return;
  }
  WriteZeroChain(volume, offset, length, io, std::move(done));
}

void Connection::BlockStatus(Volume* volume, const RequestHeader& h, Request* r) {
  const absl::Status valid = CheckBlockRange(h.offset, h.length, volume->size(), kExtentRules);
  if (!valid.ok()) {
    // The protocol's word for a status past the end is EINVAL, not ENOSPC.
    Complete(r, absl::InvalidArgumentError(valid.message()));
    return;
  }
  const auto ranges = volume->GetExtents(h.offset, std::min(h.length, kMaxStatusBytes));
  if (!ranges.ok()) {
    Complete(r, ranges.status());
    return;
  }
  r->status = BlockStatusPayload(
      kBaseAllocationId, ExtentsOf(*ranges, volume->info().image.empty(),
                                   (h.flags & kCmdFlagReqOne) != 0));
  Complete(r, absl::OkStatus());
}

void Connection::Complete(Request* r, const absl::Status& status) {
  r->error = r->forced_error != 0 ? r->forced_error
                                  : ReplyErrnoFor(status.code(), r->read, r->out_of_memory);
  std::lock_guard<std::mutex> lock(mu_);
  done_.push_back(r);
  writer_cv_.notify_one();
  // Nothing of this connection is touched after the lock is released: the
  // writer may finish and the connection end at once.
}

void Connection::WriterMain() {
  pthread_setname_np(pthread_self(), "gw-send");
  std::vector<Request*> batch;
  std::vector<std::array<uint8_t, kMaxReplyHeaderBytes>> headers;
  std::vector<iovec> iov;
  while (true) {
    bool broken;
    {
      std::unique_lock<std::mutex> lock(mu_);
      writer_cv_.wait(lock, [&] { return !done_.empty() || (reader_done_ && in_flight_ == 0); });
      if (done_.empty()) break;
      batch.swap(done_);
      broken = broken_;
    }
    if (!broken) {
      headers.resize(batch.size());
      iov.clear();
      for (size_t i = 0; i < batch.size(); ++i) {
        Request* r = batch[i];
        const bool data = r->read && r->error == 0;
        const bool status = !r->status.empty() && r->error == 0;
        const ReplyKind kind = data     ? ReplyKind::kReadData
                               : status ? ReplyKind::kBlockStatus
                                        : ReplyKind::kNone;
        const size_t head =
            ReplyHeader(headers[i].data(), negotiated_.structured_replies, r->error, r->cookie,
                        kind, r->offset, status ? static_cast<uint32_t>(r->status.size()) : r->length);
        iov.push_back({headers[i].data(), head});
        if (data) iov.push_back({r->data.get(), r->length});
        if (status) iov.push_back({r->status.data(), r->status.size()});
      }
      if (!SendAllV(fd_, &iov)) {
        broken = true;
        shutdown(fd_, SHUT_RDWR);  // the reader's recv returns
      }
    }
    uint64_t freed = 0;
    for (Request* r : batch) {
      freed += r->bytes;
      delete r;
    }
    const auto n = static_cast<uint32_t>(batch.size());
    batch.clear();
    std::lock_guard<std::mutex> lock(mu_);
    in_flight_ -= n;
    bytes_ -= freed;
    if (broken) broken_ = true;
    room_cv_.notify_one();
  }
  shutdown(fd_, SHUT_RDWR);  // every reply sent: the client sees the end
  std::string why;
  {
    std::lock_guard<std::mutex> lock(mu_);
    why = broken_ ? "a reply could not be sent" : why_;
  }
  Log(LogLevel::kInfo, "nbd_gateway_closed",
      {{"peer", peer_}, {"volume", volume_}, {"requests", std::to_string(requests_)},
       {"reason", why}});
  ThreadDone();
}

}  // namespace cowblk::gateway
