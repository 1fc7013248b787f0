#include "server/transport/nbd/reply_sender.h"

#include <endian.h>
#include <fcntl.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <climits>
#include <cstring>

#include "absl/strings/str_cat.h"
#include "common/log.h"
#include "common/nbd_wire.h"
#include "server/core/out_of_memory.h"
#include "server/transport/nbd/wire_parse.h"

namespace cowblk::nbd {
namespace {

constexpr size_t kMaxRepliesPerSend = 256;
// What a connection's splice pipe is asked to hold: as fast as 1 MiB in an
// A/B (a run crosses in pieces, each but the last sent with MSG_MORE), and
// an unprivileged user's pipes reach /proc/sys/fs/pipe-user-pages-soft
// (64 MiB by default) only at 256 connections, past which new pipes are
// small (bench/RESULTS.md, "NBD reads: splice").
constexpr int kSplicePipeBytes = 256 << 10;

// A block status is the one call answered OK without an op
// (Transmission::AnswerBlockStatus): its payload is the call's data().
bool IsBlockStatus(const core::Call* c) { return c->status().ok() && !c->op; }

bool IsReadData(const core::Call* c) {
  return c->status().ok() && c->op == engine::OpType::kRead;
}

// Data sent from memory after the header: a read's (not located), a block
// status's.
bool CarriesData(const core::Call* c) {
  return (IsReadData(c) && !c->located()) || IsBlockStatus(c);
}

}  // namespace

uint32_t ReplyErrno(const core::Call& call) {
  const absl::Status& s = call.status();
  return ReplyErrnoFor(s.code(), call.op == engine::OpType::kRead, core::IsOutOfMemory(s));
}

ReplySender::ReplySender(int fd, core::Pipeline* pipeline, std::string peer)
    : fd_(fd), pipeline_(pipeline), peer_(std::move(peer)) {
  // The scratch's largest sizes, now: the writer then allocates nothing
  // (under a memory limit that would end the process, not the connection).
  send_calls_.reserve(kMaxRepliesPerSend);
  send_headers_.reserve(kMaxRepliesPerSend);
  send_iov_.reserve(2 * kMaxRepliesPerSend);
}

ReplySender::~ReplySender() {
  if (pipe_[0] >= 0) {
    close(pipe_[0]);
    close(pipe_[1]);
  }
}

bool ReplySender::OpenPipe() {
  if (pipe2(pipe_, O_CLOEXEC) != 0) {
    Log(LogLevel::kWarning, "nbd_files_unavailable",
        {{"peer", peer_},
         {"volume", pipeline_->volume()->name()},
         {"error", absl::StrCat("pipe: ", std::strerror(errno))}});
    pipe_[0] = pipe_[1] = -1;
    return false;
  }
  // Smaller if the system says no (an unprivileged user past
  // /proc/sys/fs/pipe-user-pages-soft): it still works, in more rounds;
  // nbd_export says what it got.
  const int sized = fcntl(pipe_[0], F_SETPIPE_SZ, kSplicePipeBytes);
  pipe_bytes_ = sized > 0 ? sized : std::max(fcntl(pipe_[0], F_GETPIPE_SZ), 0);
  return true;
}

ReplyKind ReplySender::KindOf(const core::Call* c) {
  return IsReadData(c) ? ReplyKind::kReadData
         : IsBlockStatus(c) ? ReplyKind::kBlockStatus
                            : ReplyKind::kNone;
}

size_t ReplySender::ReplyBytes(const core::Call* c) const {
  return ReplyHeaderBytes(structured_, ReplyErrno(*c), KindOf(c)) +
         (CarriesData(c) ? c->length : 0);
}

void ReplySender::AddReply(core::Call* c, size_t skip, Header* header) {
  const size_t head = ReplyHeader(header->data(), structured_, ReplyErrno(*c), c->tag, KindOf(c),
                                  c->offset, static_cast<uint32_t>(c->length));
  if (skip < head) {
    send_iov_.push_back({header->data() + skip, head - skip});
    skip = 0;
  } else {
    skip -= head;
  }
  if (CarriesData(c) && c->length > skip) {
    // iovec takes a non-const pointer; sendmsg only reads.
    send_iov_.push_back({const_cast<char*>(c->data()) + skip, c->length - skip});
  }
}

void ReplySender::Queue(absl::Span<core::Call* const> calls) {
  {
    std::lock_guard<std::mutex> lock(mu_);
    replies_.insert(replies_.end(), calls.begin(), calls.end());
  }
  SendQueued();
}

void ReplySender::SendQueued() {
  size_t skip;
  {
    std::lock_guard<std::mutex> lock(mu_);
    // Replies sent from the files block: they are the writer's.
    if (sending_ || broken_ || replies_.empty() || SentFromFiles(replies_.front())) {
      WakeLocked();
      return;
    }
    sending_ = true;
    send_calls_.clear();
    while (!replies_.empty() && send_calls_.size() < kMaxRepliesPerSend &&
           !SentFromFiles(replies_.front())) {
      send_calls_.push_back(replies_.front());
      replies_.pop_front();
    }
    skip = std::exchange(front_sent_, 0);
  }
  const size_t count = send_calls_.size();
  send_iov_.clear();
  send_headers_.resize(count);  // before AddReply: the iovecs point into it
  for (size_t i = 0; i < count; ++i) AddReply(send_calls_[i], i == 0 ? skip : 0, &send_headers_[i]);
  msghdr msg{};
  msg.msg_iov = send_iov_.data();
  msg.msg_iovlen = std::min<size_t>(send_iov_.size(), IOV_MAX);
  ssize_t n = sendmsg(fd_, &msg, MSG_DONTWAIT | MSG_NOSIGNAL);
  const bool failed = n < 0 && errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR;
  if (n < 0) n = 0;
  // The replies sent whole are done; the first one not (partly sent, or
  // not at all) and the rest go back to the front, in order.
  size_t done = 0;
  size_t partial = 0;
  auto left = static_cast<size_t>(n);
  while (done < count) {
    const size_t already = done == 0 ? skip : 0;
    const size_t rest = ReplyBytes(send_calls_[done]) - already;
    if (left < rest) {
      partial = already + left;
      break;
    }
    left -= rest;
    ++done;
  }
  for (size_t i = 0; i < done; ++i) pipeline_->Finish(send_calls_[i]);
  if (failed) shutdown(fd_, SHUT_RDWR);  // wakes a reader blocked in recv
  std::lock_guard<std::mutex> lock(mu_);
  sending_ = false;
  if (failed) broken_ = true;
  for (size_t i = count; i > done; --i) replies_.push_front(send_calls_[i - 1]);
  if (done < count) front_sent_ = partial;
  WakeLocked();
}

bool ReplySender::WriterCanGoLocked() const {
  if (sending_) return false;
  if (!replies_.empty()) return true;
  return reader_done_ && pipeline_->idle();
}

void ReplySender::WakeLocked() {
  if (WriterCanGoLocked()) writer_cv_.notify_one();
  if (RoomLocked()) room_cv_.notify_one();
}

bool ReplySender::WaitForRoom() {
  std::unique_lock<std::mutex> lock(mu_);
  room_cv_.wait(lock, [this] { return RoomLocked(); });
  return !broken_;
}

void ReplySender::WakeForRoom() {
  std::lock_guard<std::mutex> lock(mu_);
  room_cv_.notify_one();
}

void ReplySender::ReaderDone() {
  std::lock_guard<std::mutex> lock(mu_);
  reader_done_ = true;
  WakeLocked();
}

// Each run is spliced from its file into the connection's pipe (page
// references, no bytes) and from the pipe into the socket, with MSG_MORE
// (SPLICE_F_MORE) until the reply's last piece, so the runs go out in
// full-sized segments. sendfile(2) does the same through a pipe of 16 pages
// and pushes after each: on loopback a third more segments, and 1 MiB reads
// at depth 8 0.8x (bench/RESULTS.md, "NBD reads: splice"). Past a file's
// end: zeros. A file error cannot be reported any more (the header said
// success): the connection ends instead, and the client sees no wrong data.
bool ReplySender::SendFromFiles(const core::Call* c) {
  static const char kZeros[64 << 10] = {};
  const store::VolumeFiles& files = *pipeline_->files();
  for (size_t i = 0; i < c->extents().size(); ++i) {
    const engine::ReadExtent& e = c->extents()[i];
    const bool last_run = i + 1 == c->extents().size();
    auto offset = static_cast<loff_t>(e.offset);
    uint64_t left = e.length;
    while (left > 0) {
      // The pipe is empty here: this takes what it can hold.
      ssize_t n = splice(files.fd(e.source), &offset, pipe_[1], nullptr, left, 0);
      if (n < 0 && errno == EINTR) continue;
      if (n < 0) return SendFailed(c, "splice from the file");
      if (n == 0) {  // past the end of the file: zeros
        while (left > 0) {
          const size_t z = std::min<uint64_t>(left, sizeof kZeros);
          if (!SendAll(fd_, kZeros, z)) return SendFailed(c, "send");
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
        if (w <= 0) return SendFailed(c, "splice to the socket");
        n -= w;
      }
    }
  }
  return true;
}

void ReplySender::NoteSendError() {
  if (errno == EAGAIN || errno == EWOULDBLOCK) {
    send_timed_out_.store(true, std::memory_order_relaxed);
  }
}

bool ReplySender::SendFailed(const core::Call* c, const char* what) {
  NoteSendError();
  // A send timeout is the connection's reason to end (nbd_closed says so).
  if (errno != EPIPE && errno != ECONNRESET && errno != EAGAIN && errno != EWOULDBLOCK) {
    Log(LogLevel::kWarning, "nbd_send_failed",
        {{"peer", peer_},
         {"volume", pipeline_->volume()->name()},
         {"offset", std::to_string(c->offset)},
         {"length", std::to_string(c->length)},
         {"error", absl::StrCat(what, ": ", std::strerror(errno))}});
  }
  return false;
}

void ReplySender::Run() {
  while (true) {
    bool broken;
    size_t skip;
    {
      std::unique_lock<std::mutex> lock(mu_);
      writer_cv_.wait(lock, [this] { return WriterCanGoLocked(); });
      if (replies_.empty()) break;
      send_calls_.clear();
      while (!replies_.empty() && send_calls_.size() < kMaxRepliesPerSend) {
        send_calls_.push_back(replies_.front());
        replies_.pop_front();
      }
      skip = std::exchange(front_sent_, 0);
      broken = broken_;
      sending_ = !broken;
    }
    if (!broken) {
      send_iov_.clear();
      send_headers_.resize(send_calls_.size());
      for (size_t i = 0; i < send_calls_.size(); ++i) {
        core::Call* c = send_calls_[i];
        AddReply(c, i == 0 ? skip : 0, &send_headers_[i]);
        if (!SentFromFiles(c)) continue;
        // The header (and the replies before it), then the data.
        if (!SendAllV(fd_, &send_iov_, MSG_MORE)) {
          NoteSendError();
          broken = true;
          break;
        }
        if (!SendFromFiles(c)) {
          broken = true;
          break;
        }
        send_iov_.clear();
      }
      if (!broken && !SendAllV(fd_, &send_iov_)) {
        NoteSendError();
        broken = true;
      }
      if (broken) shutdown(fd_, SHUT_RDWR);  // wakes a reader blocked in recv
    }
    for (core::Call* c : send_calls_) pipeline_->Finish(c);
    std::lock_guard<std::mutex> lock(mu_);
    sending_ = false;
    if (broken) broken_ = true;
    WakeLocked();
  }
  // Everything answered and nothing more to read: let the client see the
  // end now (the socket itself closes with the connection).
  shutdown(fd_, SHUT_RDWR);
}

}  // namespace cowblk::nbd
