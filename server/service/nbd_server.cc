#include "server/service/nbd_server.h"

#include <arpa/inet.h>
#include <endian.h>
#include <fcntl.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <pthread.h>
#include <sys/eventfd.h>
#include <sys/socket.h>
#include <sys/uio.h>
#include <unistd.h>

#include <cerrno>
#include <climits>
#include <condition_variable>
#include <cstdlib>
#include <cstring>
#include <deque>
#include <optional>
#include <vector>

#include "absl/strings/str_cat.h"
#include "common/log.h"
#include "common/nbd_wire.h"
#include "server/engine/engine.h"
#include "server/engine/io.h"
#include "server/engine/request.h"

namespace cowblk::service {
namespace {

using namespace cowblk::nbd;  // NOLINT: the protocol's names read best bare

// Every connection sees every completed write (one engine per volume), and
// a flush covers all of them: multi-conn is safe.
constexpr uint16_t kTransmissionFlags = kTxHasFlags | kTxSendFlush | kTxSendFua | kTxSendTrim |
                                        kTxSendWriteZeroes | kTxCanMultiConn;

constexpr uint32_t kMinBlock = 512, kPreferredBlock = 4096;
constexpr uint32_t kMaxBlock = static_cast<uint32_t>(engine::kMaxIoBytes);
constexpr uint32_t kMaxOptionBytes = 64 << 10;  // a longer option ends the handshake
constexpr int kHandshakeSeconds = 30;           // a client silent longer is dropped
constexpr size_t kMaxRepliesPerSend = 256;
constexpr size_t kRecvBufferBytes = 256 << 10;
// What a connection's splice pipe is asked to hold: as fast as 1 MiB in an
// A/B (a run crosses in pieces, each but the last sent with MSG_MORE), and
// an unprivileged user's pipes reach /proc/sys/fs/pipe-user-pages-soft
// (64 MiB by default) only at 256 connections, past which new pipes are
// small (bench/RESULTS.md, "NBD reads: splice").
constexpr int kSplicePipeBytes = 256 << 10;
// Buffer bytes of a connection's requests in flight before it stops
// reading (with --max-in-flight requests of up to 32 MiB each, memory
// would otherwise follow the client's whims).
constexpr uint64_t kMaxInFlightBytes = 64 << 20;

// The errno an NBD client gets for a failed request.
uint32_t ToErrno(const absl::Status& s) {
  switch (s.code()) {
    case absl::StatusCode::kInvalidArgument:
    case absl::StatusCode::kOutOfRange:
      return EINVAL;
    case absl::StatusCode::kResourceExhausted:
      return ENOSPC;
    case absl::StatusCode::kPermissionDenied:
    case absl::StatusCode::kFailedPrecondition:
      return EPERM;
    case absl::StatusCode::kUnavailable:
      return ESHUTDOWN;
    default:
      return EIO;
  }
}

// Sets why a connection ends; returns false (for `return Fail(...)`).
bool Fail(std::string* why, std::string reason) {
  *why = std::move(reason);
  return false;
}

const char* CommandName(uint16_t type) {
  switch (type) {
    case kCmdRead: return "read";
    case kCmdWrite: return "write";
    case kCmdFlush: return "flush";
    case kCmdTrim: return "trim";
    case kCmdWriteZeroes: return "write_zeroes";
    default: return "unknown";
  }
}

std::string PeerName(const sockaddr_storage& addr) {
  char host[INET6_ADDRSTRLEN] = "?";
  int port = 0;
  if (addr.ss_family == AF_INET) {
    const auto* a = reinterpret_cast<const sockaddr_in*>(&addr);
    inet_ntop(AF_INET, &a->sin_addr, host, sizeof host);
    port = ntohs(a->sin_port);
  } else if (addr.ss_family == AF_INET6) {
    const auto* a = reinterpret_cast<const sockaddr_in6*>(&addr);
    inet_ntop(AF_INET6, &a->sin6_addr, host, sizeof host);
    port = ntohs(a->sin6_port);
    return absl::StrCat("[", host, "]:", port);
  }
  return absl::StrCat(host, ":", port);
}

}  // namespace

// One request from receipt to its reply on the wire.
struct NbdReply {
  ~NbdReply() { std::free(buf); }
  uint8_t header[kSimpleReplyBytes];  // the simple reply, filled in by Answer()
  size_t sent = 0;      // bytes of header and data already sent
  uint64_t cookie = 0;
  uint32_t error = 0;   // 0 or an errno
  char* buf = nullptr;  // a write's payload, or a read's data (page-aligned)
  size_t read_len = 0;  // bytes of data that follow the header (reads)
  // A read sent from the files (buf is null): where its data lies.
  std::vector<engine::ReadExtent> extents;
  bool located = false;
  uint64_t bytes = 0;   // buffer bytes it holds, for the connection's budget
  engine::Request request;
};

class NbdConnection final : public engine::BatchEndListener {
 public:
  NbdConnection(int fd, Store* store, const NbdServerOptions& options, std::string peer)
      : fd_(fd),
        store_(store),
        max_in_flight_(options.max_in_flight),
        zero_copy_(options.zero_copy),
        inline_writes_(options.inline_writes),
        peer_(std::move(peer)) {}
  ~NbdConnection() {
    close(fd_);
    if (pipe_[0] >= 0) {
      close(pipe_[0]);
      close(pipe_[1]);
    }
  }
  NbdConnection(const NbdConnection&) = delete;
  NbdConnection& operator=(const NbdConnection&) = delete;

  void Start() {
    reader_ = std::thread([this] { ReaderMain(); });
    writer_ = std::thread([this] { WriterMain(); });
    pthread_setname_np(reader_.native_handle(), "nbd-recv");
    pthread_setname_np(writer_.native_handle(), "nbd-send");
  }
  // No more requests: the reader sees the end of the stream.
  void StopReading() { shutdown(fd_, SHUT_RD); }
  // Ends the connection at once (replies not yet sent are dropped).
  void Cut() { shutdown(fd_, SHUT_RDWR); }
  bool WaitFinished(std::chrono::steady_clock::time_point deadline) {
    std::unique_lock<std::mutex> lock(mu_);
    return done_cv_.wait_until(lock, deadline, [this] { return threads_done_ == 2; });
  }
  void WaitFinished() {
    std::unique_lock<std::mutex> lock(mu_);
    done_cv_.wait(lock, [this] { return threads_done_ == 2; });
  }
  bool finished() {
    std::lock_guard<std::mutex> lock(mu_);
    return threads_done_ == 2;
  }
  void Join() {
    reader_.join();
    writer_.join();
  }

 private:
  void ReaderMain() {
    std::string why;
    if (Handshake(&why)) Transmission(&why);
    std::lock_guard<std::mutex> lock(mu_);
    close_reason_ = std::move(why);
    reader_done_ = true;
    ++threads_done_;
    done_cv_.notify_all();
    WakeLocked();
  }

  // ---- receiving ----

  // Blocking reads through a buffer, so that the requests a client sends
  // together are parsed (and submitted to the engine) together.
  bool Fill() {
    if (rpos_ == rend_) rpos_ = rend_ = 0;
    if (rend_ == rbuf_.size()) {  // compact
      std::memmove(rbuf_.data(), rbuf_.data() + rpos_, rend_ - rpos_);
      rend_ -= rpos_;
      rpos_ = 0;
    }
    // After a large write, the next request is likely one too: take its
    // header alone, so that its payload goes straight to its own buffer
    // instead of through this one (a copy more).
    const size_t room = rbuf_.size() - rend_;
    const size_t ask = exact_fill_ && Buffered() < kRequestBytes
                           ? std::min(room, kRequestBytes - Buffered())
                           : room;
    while (true) {
      const ssize_t n = recv(fd_, rbuf_.data() + rend_, ask, 0);
      if (n < 0 && errno == EINTR) continue;
      if (n <= 0) return false;
      rend_ += static_cast<size_t>(n);
      return true;
    }
  }
  size_t Buffered() const { return rend_ - rpos_; }
  // Copies `n` bytes into `dest`: what is buffered, then straight from the
  // socket. False at the end of the stream.
  bool Take(void* dest, size_t n) {
    char* d = static_cast<char*>(dest);
    const size_t from_buffer = std::min(n, Buffered());
    if (from_buffer > 0) std::memcpy(d, rbuf_.data() + rpos_, from_buffer);
    rpos_ += from_buffer;
    d += from_buffer;
    n -= from_buffer;
    return RecvAll(fd_, d, n);
  }
  bool TakeString(std::string* out, size_t n) {
    out->resize(n);
    return Take(out->data(), n);
  }

  // ---- handshake (fixed newstyle) ----

  bool SendOptionReply(uint32_t option, uint32_t type, const std::string& data) {
    std::string m;
    Put64(&m, kRepMagic);
    Put32(&m, option);
    Put32(&m, type);
    Put32(&m, static_cast<uint32_t>(data.size()));
    m += data;
    return SendAll(fd_, m.data(), m.size());
  }

  // Opens export `name` for NBD_OPT_GO/INFO/EXPORT_NAME; on failure sets
  // `error` (for the client) and returns null.
  std::shared_ptr<VolumeHandle> OpenExport(const std::string& name, std::string* error) {
    auto handle = store_->FindVolume(name);
    if (!handle.ok()) {
      *error = std::string(handle.status().message());
      return nullptr;
    }
    return *handle;
  }

  bool Handshake(std::string* why) {
    timeval tv{kHandshakeSeconds, 0};
    setsockopt(fd_, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
    std::string hello;
    Put64(&hello, kNbdMagic);
    Put64(&hello, kOptMagic);
    Put16(&hello, kFlagFixedNewstyle | kFlagNoZeroes);
    if (!SendAll(fd_, hello.data(), hello.size())) return Fail(why, "handshake: send failed");
    uint8_t b[16];
    if (!Take(b, 4)) return Fail(why, "handshake: no client flags");
    const uint32_t client_flags = Get32(b);
    if ((client_flags & ~uint32_t{kFlagFixedNewstyle | kFlagNoZeroes}) != 0) {
      return Fail(why, absl::StrCat("handshake: unknown client flags ", client_flags));
    }
    const bool no_zeroes = (client_flags & kFlagNoZeroes) != 0;
    while (true) {
      if (!Take(b, 16)) return Fail(why, "handshake: ended during option haggling");
      if (Get64(b) != kOptMagic) return Fail(why, "handshake: bad option magic");
      const uint32_t option = Get32(b + 8);
      const uint32_t length = Get32(b + 12);
      if (length > kMaxOptionBytes) {
        return Fail(why, absl::StrCat("handshake: option ", option, " of ", length, " bytes"));
      }
      std::string data;
      if (!TakeString(&data, length)) return Fail(why, "handshake: ended in an option");
      switch (option) {
        case kOptExportName: {
          std::string error;
          volume_ = OpenExport(data, &error);
          // This option has no error reply: the connection just ends.
          if (!volume_) return Fail(why, absl::StrCat("export_name: ", error));
          std::string m;
          Put64(&m, volume_->size());
          Put16(&m, kTransmissionFlags);
          if (!no_zeroes) m.append(124, '\0');
          if (!SendAll(fd_, m.data(), m.size())) return Fail(why, "handshake: send failed");
          return Exported();
        }
        case kOptAbort:
          SendOptionReply(option, kRepAck, "");
          return Fail(why, "the client aborted the handshake");
        case kOptList: {
          if (length != 0) {
            if (!SendOptionReply(option, kRepErrInvalid, "NBD_OPT_LIST takes no data")) {
              return Fail(why, "send failed");
            }
            break;
          }
          bool ok = true;
          for (const VolumeInfo& v : store_->ListVolumes("", 1 << 20)) {
            if (!v.ready) continue;
            std::string m;
            Put32(&m, static_cast<uint32_t>(v.name.size()));
            m += v.name;
            ok = ok && SendOptionReply(option, kRepServer, m);
          }
          if (!ok || !SendOptionReply(option, kRepAck, "")) return Fail(why, "send failed");
          break;
        }
        case kOptInfo:
        case kOptGo: {
          // u32 name length, name, u16 count, count x u16 information types.
          const auto* p = reinterpret_cast<const uint8_t*>(data.data());
          const uint32_t name_len = data.size() >= 4 ? Get32(p) : 0;
          if (data.size() < 6 || name_len > data.size() - 6 ||
              data.size() != 6 + name_len + 2 * size_t{Get16(p + 4 + name_len)}) {
            if (!SendOptionReply(option, kRepErrInvalid, "malformed NBD_OPT_GO/NBD_OPT_INFO")) {
              return Fail(why, "send failed");
            }
            break;
          }
          std::string error;
          auto volume = OpenExport(data.substr(4, name_len), &error);
          if (!volume) {
            if (!SendOptionReply(option, kRepErrUnknown, error)) return Fail(why, "send failed");
            break;
          }
          std::string info;
          Put16(&info, kInfoExport);
          Put64(&info, volume->size());
          Put16(&info, kTransmissionFlags);
          std::string sizes;
          Put16(&sizes, kInfoBlockSize);
          Put32(&sizes, kMinBlock);
          Put32(&sizes, kPreferredBlock);
          Put32(&sizes, kMaxBlock);
          if (!SendOptionReply(option, kRepInfo, info) ||
              !SendOptionReply(option, kRepInfo, sizes) || !SendOptionReply(option, kRepAck, "")) {
            return Fail(why, "send failed");
          }
          if (option == kOptGo) {
            volume_ = std::move(volume);
            return Exported();
          }
          break;
        }
        default:
          if (!SendOptionReply(option, kRepErrUnsup,
                               absl::StrCat("option ", option, " is not supported"))) {
            return Fail(why, "send failed");
          }
      }
    }
  }

  bool Exported() {
    timeval tv{0, 0};  // an idle connection is normal from here on
    setsockopt(fd_, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
    if (zero_copy_ || inline_writes_) {
      auto files = volume_->OpenFiles(/*writable=*/inline_writes_);
      if (files.ok()) {
        files_ = *std::move(files);
        send_from_files_ = zero_copy_ && OpenPipe();
        write_to_files_ = inline_writes_;
      } else if (files.status().code() != absl::StatusCode::kFailedPrecondition) {
        // Copies through the engine still work: serve, and say why.
        Log(LogLevel::kWarning, "nbd_files_unavailable",
            {{"peer", peer_}, {"volume", volume_->name()},
             {"error", std::string(files.status().message())}});
      }
    }
    Log(LogLevel::kInfo, "nbd_export",
        {{"peer", peer_},
         {"volume", volume_->name()},
         {"zero_copy", send_from_files_ ? "on" : "off"},
         {"inline_writes", write_to_files_ ? "on" : "off"},
         {"pipe_kib", std::to_string(pipe_bytes_ / 1024)}});
    return true;
  }

  // The pipe that located reads cross (SendFromFiles). Without one, reads
  // are copied through the engine: serve, and say why.
  bool OpenPipe() {
    if (pipe2(pipe_, O_CLOEXEC) != 0) {
      Log(LogLevel::kWarning, "nbd_files_unavailable",
          {{"peer", peer_}, {"volume", volume_->name()},
           {"error", absl::StrCat("pipe: ", std::strerror(errno))}});
      return false;  // pipe_ stays {-1, -1}
    }
    // Smaller if the system says no (an unprivileged user past
    // /proc/sys/fs/pipe-user-pages-soft): it still works, in more rounds;
    // nbd_export says what it got.
    const int sized = fcntl(pipe_[0], F_SETPIPE_SZ, kSplicePipeBytes);
    pipe_bytes_ = sized > 0 ? sized : std::max(fcntl(pipe_[0], F_GETPIPE_SZ), 0);
    return true;
  }

  // ---- transmission ----

  void Transmission(std::string* why) {
    // One engine wake-up per burst of requests. --engine-poll-us polls after
    // NBD requests only: through gRPC it cost more than it gained (gRPC's
    // threads need the core the engine spins on; bench/RESULTS.md, "Engine
    // polling").
    std::optional<engine::SubmitBatch> batch;
    while (true) {
      if (Buffered() < kRequestBytes) {
        batch.reset();  // do not hold submitted requests while waiting
        if (!Fill()) {
          *why = "the client closed the connection";
          return;
        }
        continue;
      }
      {
        std::unique_lock<std::mutex> lock(mu_);
        if (!RoomLocked()) {
          batch.reset();
          room_cv_.wait(lock, [this] { return RoomLocked(); });
        }
        if (broken_) {
          *why = "a reply could not be sent";
          return;
        }
      }
      uint8_t h[kRequestBytes];
      Take(h, sizeof h);  // buffered: cannot fail
      const uint32_t magic = Get32(h);
      const uint16_t flags = Get16(h + 4);
      const uint16_t type = Get16(h + 6);
      const uint64_t cookie = Get64(h + 8);
      const uint64_t offset = Get64(h + 16);
      const uint32_t length = Get32(h + 24);
      if (magic != kRequestMagic) {
        *why = "malformed request (bad magic)";
        Log(LogLevel::kWarning, "nbd_malformed", {{"peer", peer_}, {"error", *why}});
        return;
      }
      exact_fill_ = type == kCmdWrite && length >= kNbdLargeWriteBytes;
      if (type == kCmdDisc) {
        *why = "the client disconnected";
        return;
      }
      ++requests_;
      auto* r = new NbdReply;
      r->cookie = cookie;
      // A read's buffer or a write's payload, while the request lives.
      r->bytes = type == kCmdRead || type == kCmdWrite ? std::min(length, kMaxBlock) : 0;
      {
        std::lock_guard<std::mutex> lock(mu_);
        ++in_flight_;
        in_flight_bytes_ += r->bytes;
      }
      if (type == kCmdWrite) {
        if (length > kMaxBlock) {
          // Its payload cannot be taken in: answer, then end the connection
          // (the stream is out of step from here).
          r->error = EINVAL;
          Answer(r);
          *why = absl::StrCat("a write of ", length, " bytes (the limit is ", kMaxBlock, ")");
          Log(LogLevel::kWarning, "nbd_malformed", {{"peer", peer_}, {"error", *why}});
          return;
        }
        if (length > 0) {
          r->buf = static_cast<char*>(std::aligned_alloc(4096, (length + 4095) & ~size_t{4095}));
        }
        if (length > 0 && r->buf == nullptr) {
          r->error = ENOMEM;
          Answer(r);
          *why = "out of memory for a write's payload";
          return;
        }
        if (length > Buffered()) batch.reset();
        if (!Take(r->buf, length)) {
          r->error = EIO;  // not written (the reply will hardly reach anyone)
          Answer(r);
          *why = "the client closed the connection in a write";
          return;
        }
      }
      if (const uint32_t err = Check(type, flags, offset, length); err != 0) {
        r->error = err;
        Log(LogLevel::kWarning, "request_failed",
            {{"volume", volume_->name()},
             {"transport", "nbd"},
             {"op", CommandName(type)},
             {"offset", std::to_string(offset)},
             {"length", std::to_string(length)},
             {"error", std::strerror(static_cast<int>(err))}});
        Answer(r);
        continue;
      }
      // Requests parsed before a large write are not held while it writes.
      if (type == kCmdWrite && write_to_files_ && length >= kNbdLargeWriteBytes) batch.reset();
      if (!batch) batch.emplace(/*poll_after=*/true);
      Submit(r, type, flags, offset, length, &*batch);
    }
  }

  // The errno for a request that must not reach the engine, or 0.
  uint32_t Check(uint16_t type, uint16_t flags, uint64_t offset, uint32_t length) const {
    if (type != kCmdRead && type != kCmdWrite && type != kCmdFlush && type != kCmdTrim &&
        type != kCmdWriteZeroes) {
      return EINVAL;
    }
    const uint16_t allowed = type == kCmdWriteZeroes ? (kCmdFlagFua | kCmdFlagNoHole) : kCmdFlagFua;
    if ((flags & ~allowed) != 0) return EINVAL;
    if (type == kCmdFlush) return 0;
    if (length == 0 || offset % kMinBlock != 0 || length % kMinBlock != 0) return EINVAL;
    if (type == kCmdRead && length > kMaxBlock) return EINVAL;
    const uint64_t size = volume_->size();
    if (length > size || offset > size - length) return type == kCmdRead ? EINVAL : ENOSPC;
    return 0;
  }

  void Submit(NbdReply* r, uint16_t type, uint16_t flags, uint64_t offset, uint32_t length,
              engine::SubmitBatch* batch) {
    engine::Request& q = r->request;
    const bool fua = (flags & kCmdFlagFua) != 0;
    switch (type) {
      case kCmdRead:
        r->read_len = length;
        if (send_from_files_ && length >= kNbdZeroCopyMinBytes) {
          r->located = true;
          ++zero_copy_reads_;
          q.kind = engine::LocateRead{&r->extents};
          break;
        }
        // Page-aligned and not zeroed: the engine fills every byte.
        r->buf = static_cast<char*>(std::aligned_alloc(4096, (length + 4095) & ~size_t{4095}));
        if (r->buf == nullptr) {
          r->error = ENOMEM;
          Answer(r);
          return;
        }
        q.kind = engine::Read{r->buf};
        break;
      case kCmdWrite:
        q.kind = engine::Write{r->buf, fua};
        break;
      case kCmdFlush:
        q.kind = engine::Flush{};
        offset = length = 0;
        break;
      case kCmdTrim:
        q.kind = engine::Trim{fua};
        break;
      case kCmdWriteZeroes:
        q.kind = engine::WriteZeroes{fua};
        break;
    }
    q.offset = offset;
    q.length = length;
    q.done = [this, r, type](absl::Status s) {
      if (!s.ok()) {
        r->error = ToErrno(s);
        r->read_len = 0;
        Log(LogLevel::kWarning, "request_failed",
            {{"volume", volume_->name()},
             {"transport", "nbd"},
             {"op", CommandName(type)},
             {"offset", std::to_string(r->request.offset)},
             {"length", std::to_string(r->request.length)},
             {"code", absl::StatusCodeToString(s.code())},
             {"error", std::string(s.message())}});
      }
      Answer(r, /*from_engine=*/true);
    };
    q.batch_end = this;
    bool submitted;
    if (type == kCmdWrite && write_to_files_) {
      submitted = volume_->WriteAndSubmit(*files_, &q, batch);
      if (submitted) ++inline_writes_done_;
    } else {
      submitted = volume_->Submit(&q, batch);
    }
    if (!submitted) {
      r->error = ESHUTDOWN;
      r->read_len = 0;
      Answer(r);
    }
  }

  // Queues `r` and has it sent: by this thread at once (or, from the engine,
  // once the engine handled its batch of completions, together with the
  // replies that completed with it: OnBatchEnd) when nobody else is sending
  // and the socket takes it without waiting; otherwise by the writer
  // thread. Any thread. Sending where reads complete keeps their data in
  // that core's cache for the socket's copy, and saves a thread hop.
  void Answer(NbdReply* r, bool from_engine = false) {
    const uint32_t magic = htobe32(kSimpleReplyMagic);
    const uint32_t error = htobe32(r->error);
    const uint64_t cookie = htobe64(r->cookie);
    std::memcpy(r->header, &magic, 4);
    std::memcpy(r->header + 4, &error, 4);
    std::memcpy(r->header + 8, &cookie, 8);
    {
      std::lock_guard<std::mutex> lock(mu_);
      replies_.push_back(r);
      if (from_engine) {
        // The connection outlives this: the writer does not end while a
        // flush is pending.
        flush_pending_ = true;
        return;
      }
    }
    SendQueued(/*deferred=*/false);
  }

  void OnBatchEnd() override { SendQueued(/*deferred=*/true); }

  // Sends what is queued without waiting, unless another thread is sending;
  // what the socket does not take is left to the writer.
  void SendQueued(bool deferred) {
    std::vector<NbdReply*> batch;
    {
      std::lock_guard<std::mutex> lock(mu_);
      if (deferred) flush_pending_ = false;
      if (sending_ || broken_ || replies_.empty()) {
        WakeLocked();
        return;
      }
      // Replies sent from the files block: they are the writer's.
      if (SentFromFiles(replies_.front())) {
        WakeLocked();
        return;
      }
      sending_ = true;
      while (!replies_.empty() && batch.size() < kMaxRepliesPerSend &&
             !SentFromFiles(replies_.front())) {
        batch.push_back(replies_.front());
        replies_.pop_front();
      }
    }
    std::vector<iovec> iov;
    for (NbdReply* r : batch) AddReply(r, &iov);
    msghdr msg{};
    msg.msg_iov = iov.data();
    msg.msg_iovlen = std::min<size_t>(iov.size(), IOV_MAX);
    ssize_t n = sendmsg(fd_, &msg, MSG_DONTWAIT | MSG_NOSIGNAL);
    const bool failed = n < 0 && errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR;
    if (n < 0) n = 0;
    // The replies sent whole are done; the first one not (partly sent, or
    // not at all) and the rest go back to the front, in order.
    size_t done = 0;
    uint64_t freed = 0;
    auto left = static_cast<size_t>(n);
    while (done < batch.size()) {
      const size_t rest = ReplyBytes(batch[done]) - batch[done]->sent;
      if (left < rest) {
        batch[done]->sent += left;
        break;
      }
      left -= rest;
      freed += batch[done]->bytes;
      delete batch[done];
      ++done;
    }
    if (failed) Cut();  // wakes a reader blocked in recv
    std::lock_guard<std::mutex> lock(mu_);
    sending_ = false;
    if (failed) broken_ = true;
    in_flight_ -= static_cast<uint32_t>(done);
    in_flight_bytes_ -= freed;
    for (size_t i = batch.size(); i > done; --i) replies_.push_front(batch[i - 1]);
    WakeLocked();
  }

  // Under mu_: the reader may take another request (or must stop).
  bool RoomLocked() const {
    return (in_flight_ < max_in_flight_ && in_flight_bytes_ < kMaxInFlightBytes) || broken_;
  }
  // Under mu_: the writer has replies to send, or everything is over.
  bool WriterCanGoLocked() const {
    if (sending_) return false;
    if (!replies_.empty()) return true;
    return !flush_pending_ && reader_done_ && in_flight_ == 0;
  }
  // Under mu_, after a change: wakes the reader or the writer only if its
  // wait can end. At depth 1 a reply sent by the engine thread itself used
  // to wake the writer for nothing (one futex wake and one context switch
  // per request; bench/RESULTS.md, "NBD connection wake-ups").
  void WakeLocked() {
    if (WriterCanGoLocked()) writer_cv_.notify_one();
    if (RoomLocked()) room_cv_.notify_one();
  }

  static bool SentFromFiles(const NbdReply* r) { return r->located && r->error == 0; }
  static size_t ReplyBytes(const NbdReply* r) {
    return sizeof r->header + (r->error == 0 ? r->read_len : 0);
  }
  // Appends what is left to send of `r`.
  static void AddReply(NbdReply* r, std::vector<iovec>* iov) {
    size_t skip = r->sent;
    if (skip < sizeof r->header) {
      iov->push_back({r->header + skip, sizeof r->header - skip});
      skip = 0;
    } else {
      skip -= sizeof r->header;
    }
    if (r->error == 0 && !r->located && r->read_len > skip) {
      iov->push_back({r->buf + skip, r->read_len - skip});
    }
  }

  // ---- replying ----

  // Sends a located read's data from the volume's files (writer thread):
  // each run is spliced from its file into the connection's pipe (page
  // references, no bytes) and from the pipe into the socket, with MSG_MORE
  // (SPLICE_F_MORE) until the reply's last piece, so the runs go out in
  // full-sized segments. sendfile(2) does the same through a pipe of 16
  // pages and pushes after each: on loopback a third more segments, and
  // 1 MiB reads at depth 8 0.8x (bench/RESULTS.md, "NBD reads: splice").
  // Past a file's end: zeros. A file error cannot be reported any more
  // (the header said success): the connection ends instead, and the client
  // sees no wrong data.
  bool SendFromFiles(const NbdReply* r) {
    static const char kZeros[64 << 10] = {};
    for (size_t i = 0; i < r->extents.size(); ++i) {
      const engine::ReadExtent& e = r->extents[i];
      const bool last_run = i + 1 == r->extents.size();
      auto offset = static_cast<loff_t>(e.offset);
      uint64_t left = e.length;
      while (left > 0) {
        // The pipe is empty here: this takes what it can hold.
        ssize_t n = splice(files_->fd(e.source), &offset, pipe_[1], nullptr, left, 0);
        if (n < 0 && errno == EINTR) continue;
        if (n < 0) return SendFailed(r, "splice from the file");
        if (n == 0) {  // past the end of the file: zeros
          while (left > 0) {
            const size_t z = std::min<uint64_t>(left, sizeof kZeros);
            if (!SendAll(fd_, kZeros, z)) return SendFailed(r, "send");
            left -= z;
          }
          break;
        }
        left -= static_cast<uint64_t>(n);
        const unsigned more = left > 0 || !last_run ? SPLICE_F_MORE : 0;
        while (n > 0) {
          const ssize_t w = splice(pipe_[0], nullptr, fd_, nullptr, static_cast<size_t>(n), more);
          if (w < 0 && errno == EINTR) continue;
          if (w == 0) errno = EPIPE;
          // What stays in the pipe dies with the connection.
          if (w <= 0) return SendFailed(r, "splice to the socket");
          n -= w;
        }
      }
    }
    return true;
  }
  bool SendFailed(const NbdReply* r, const char* what) {
    if (errno != EPIPE && errno != ECONNRESET) {
      Log(LogLevel::kWarning, "nbd_send_failed",
          {{"peer", peer_},
           {"volume", volume_->name()},
           {"offset", std::to_string(r->request.offset)},
           {"length", std::to_string(r->request.length)},
           {"error", absl::StrCat(what, ": ", std::strerror(errno))}});
    }
    return false;
  }

  void WriterMain() {
    std::vector<NbdReply*> batch;
    std::vector<iovec> iov;
    while (true) {
      bool broken;
      {
        std::unique_lock<std::mutex> lock(mu_);
        writer_cv_.wait(lock, [this] { return WriterCanGoLocked(); });
        if (replies_.empty()) break;
        while (!replies_.empty() && batch.size() < kMaxRepliesPerSend) {
          batch.push_back(replies_.front());
          replies_.pop_front();
        }
        broken = broken_;
        sending_ = !broken;
      }
      if (!broken) {
        iov.clear();
        for (NbdReply* r : batch) {
          AddReply(r, &iov);
          if (!SentFromFiles(r)) continue;
          // The header (and the replies before it), then the data.
          if (!SendAllV(fd_, &iov, MSG_MORE) || !SendFromFiles(r)) {
            broken = true;
            break;
          }
          iov.clear();
        }
        if (!broken && !SendAllV(fd_, &iov)) broken = true;
        if (broken) Cut();  // wakes a reader blocked in recv
      }
      const size_t n = batch.size();
      uint64_t freed = 0;
      for (NbdReply* r : batch) {
        freed += r->bytes;
        delete r;
      }
      batch.clear();
      std::lock_guard<std::mutex> lock(mu_);
      sending_ = false;
      in_flight_ -= static_cast<uint32_t>(n);
      in_flight_bytes_ -= freed;
      if (broken) broken_ = true;
      WakeLocked();
    }
    // Everything answered and nothing more to read: let the client see the
    // end now (the socket itself closes when the server reaps this).
    shutdown(fd_, SHUT_RDWR);
    // The reader ended before this (see the wait above), so its counters
    // are final, and the connection's last send is behind it.
    std::string why;
    {
      std::lock_guard<std::mutex> lock(mu_);
      why = close_reason_;
    }
    Log(LogLevel::kInfo, "nbd_closed",
        {{"peer", peer_},
         {"volume", volume_ ? volume_->name() : ""},
         {"requests", std::to_string(requests_)},
         {"zero_copy_reads", std::to_string(zero_copy_reads_)},
         {"inline_writes", std::to_string(inline_writes_done_)},
         {"reason", why}});
    std::lock_guard<std::mutex> lock(mu_);
    ++threads_done_;
    done_cv_.notify_all();
  }

  const int fd_;
  Store* const store_;
  const uint32_t max_in_flight_;
  const bool zero_copy_;
  const bool inline_writes_;
  const std::string peer_;
  std::thread reader_, writer_;

  // Set by the reader once exported; then read by the writer too, for the
  // replies it sends from the files.
  std::shared_ptr<VolumeHandle> volume_;
  std::unique_ptr<VolumeFiles> files_;  // with zero-copy or inline writes on
  int pipe_[2] = {-1, -1};  // with zero-copy on: the writer's, for SendFromFiles
  int pipe_bytes_ = 0;      // its capacity
  bool send_from_files_ = false;   // zero-copy reads
  bool write_to_files_ = false;    // inline writes
  // Reader thread only (the writer reads the counters once the reader ended,
  // for nbd_closed).
  std::vector<char> rbuf_ = std::vector<char>(kRecvBufferBytes);
  size_t rpos_ = 0, rend_ = 0;
  bool exact_fill_ = false;  // the last request was a large write
  uint64_t requests_ = 0;
  uint64_t zero_copy_reads_ = 0;   // reads sent from the files
  uint64_t inline_writes_done_ = 0;  // writes written by the reader

  std::mutex mu_;  // guards below
  std::condition_variable room_cv_;    // the reader waits for room in the budget
  std::condition_variable writer_cv_;  // the writer waits for replies (or the end)
  std::condition_variable done_cv_;    // WaitFinished waits for both threads
  std::deque<NbdReply*> replies_;  // answered, not yet sent
  uint32_t in_flight_ = 0;         // received, reply not yet sent
  uint64_t in_flight_bytes_ = 0;   // their buffers (NbdReply::bytes)
  bool reader_done_ = false;
  std::string close_reason_;  // the reader's, when it ended
  bool broken_ = false;   // a reply could not be sent: read no more
  bool sending_ = false;  // a thread is sending replies (one at a time)
  bool flush_pending_ = false;  // a SendQueued() waits for the engine's batch end
  int threads_done_ = 0;
};

absl::StatusOr<std::unique_ptr<NbdServer>> NbdServer::Start(const NbdServerOptions& options,
                                                            Store* store) {
  const size_t colon = options.listen.rfind(':');
  if (colon == std::string::npos) {
    return absl::InvalidArgumentError(
        absl::StrCat("nbd-listen: ", options.listen, " is not HOST:PORT"));
  }
  std::string host = options.listen.substr(0, colon);
  const std::string port = options.listen.substr(colon + 1);
  if (host.size() >= 2 && host.front() == '[' && host.back() == ']') {
    host = host.substr(1, host.size() - 2);
  }
  addrinfo hints{};
  hints.ai_family = AF_UNSPEC;
  hints.ai_socktype = SOCK_STREAM;
  hints.ai_flags = AI_PASSIVE | AI_NUMERICSERV;
  addrinfo* found = nullptr;
  if (int rc = getaddrinfo(host.empty() ? nullptr : host.c_str(), port.c_str(), &hints, &found);
      rc != 0) {
    return absl::InvalidArgumentError(
        absl::StrCat("nbd-listen: ", options.listen, ": ", gai_strerror(rc)));
  }
  int fd = -1;
  std::string error;
  for (addrinfo* a = found; a != nullptr && fd < 0; a = a->ai_next) {
    fd = socket(a->ai_family, a->ai_socktype | SOCK_CLOEXEC, a->ai_protocol);
    if (fd < 0) continue;
    const int one = 1;
    setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
    if (bind(fd, a->ai_addr, a->ai_addrlen) != 0 || listen(fd, 128) != 0) {
      error = std::strerror(errno);
      close(fd);
      fd = -1;
    }
  }
  freeaddrinfo(found);
  if (fd < 0) {
    return absl::UnavailableError(absl::StrCat("nbd-listen: cannot listen on ", options.listen,
                                               error.empty() ? "" : ": ", error));
  }
  sockaddr_storage bound{};
  socklen_t len = sizeof bound;
  getsockname(fd, reinterpret_cast<sockaddr*>(&bound), &len);
  const int wake = eventfd(0, EFD_CLOEXEC);
  if (wake < 0) {
    close(fd);
    return absl::InternalError(absl::StrCat("eventfd: ", std::strerror(errno)));
  }
  const uint16_t bound_port = ntohs(bound.ss_family == AF_INET6
                                        ? reinterpret_cast<const sockaddr_in6*>(&bound)->sin6_port
                                        : reinterpret_cast<const sockaddr_in*>(&bound)->sin_port);
  std::unique_ptr<NbdServer> server(
      new NbdServer(options, store, fd, wake, PeerName(bound), bound_port));
  server->acceptor_ = std::thread([s = server.get()] { s->AcceptLoop(); });
  pthread_setname_np(server->acceptor_.native_handle(), "nbd-accept");
  return server;
}

NbdServer::NbdServer(const NbdServerOptions& options, Store* store, int listen_fd, int wake_fd,
                     std::string address, uint16_t port)
    : options_(options),
      store_(store),
      listen_fd_(listen_fd),
      wake_fd_(wake_fd),
      address_(std::move(address)),
      port_(port) {}

NbdServer::~NbdServer() {
  Shutdown(std::chrono::steady_clock::now());
  close(listen_fd_);
  close(wake_fd_);
}

void NbdServer::AcceptLoop() {
  while (true) {
    pollfd fds[2] = {{listen_fd_, POLLIN, 0}, {wake_fd_, POLLIN, 0}};
    if (poll(fds, 2, -1) < 0) {
      if (errno == EINTR) continue;
      Log(LogLevel::kError, "nbd_accept_failed", {{"error", std::strerror(errno)}});
      return;
    }
    if (fds[1].revents != 0) return;
    sockaddr_storage peer{};
    socklen_t len = sizeof peer;
    const int fd = accept4(listen_fd_, reinterpret_cast<sockaddr*>(&peer), &len, SOCK_CLOEXEC);
    if (fd < 0) continue;  // the client went away, or out of descriptors for now
    const int one = 1;
    setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    setsockopt(fd, SOL_SOCKET, SO_KEEPALIVE, &one, sizeof one);
    const std::string name = PeerName(peer);
    Log(LogLevel::kInfo, "nbd_connected", {{"peer", name}});
    auto conn = std::make_shared<NbdConnection>(fd, store_, options_, name);
    std::lock_guard<std::mutex> lock(mu_);
    ReapLocked();
    conn->Start();
    connections_.push_back(std::move(conn));
  }
}

void NbdServer::ReapLocked() {
  for (auto it = connections_.begin(); it != connections_.end();) {
    if ((*it)->finished()) {
      (*it)->Join();
      it = connections_.erase(it);
    } else {
      ++it;
    }
  }
}

void NbdServer::Shutdown(std::chrono::steady_clock::time_point deadline) {
  {
    std::lock_guard<std::mutex> lock(mu_);
    if (shut_down_) return;
    shut_down_ = true;
  }
  const uint64_t one = 1;
  if (write(wake_fd_, &one, sizeof one) != sizeof one) {
    // An eventfd write fails only on overflow: the loop is already woken.
  }
  acceptor_.join();
  std::list<std::shared_ptr<NbdConnection>> connections;
  {
    std::lock_guard<std::mutex> lock(mu_);
    connections.swap(connections_);
  }
  for (auto& c : connections) c->StopReading();
  for (auto& c : connections) {
    if (!c->WaitFinished(deadline)) {
      c->Cut();  // a client that does not take its replies
      c->WaitFinished();
    }
    c->Join();
  }
}

}  // namespace cowblk::service
