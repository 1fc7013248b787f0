// The sending side of an NBD connection: replies for answered calls, in
// the order they were answered, and the flow control the reading side
// waits on. Replies are simple, or once the client negotiated them,
// structured: one chunk each, with NBD_REPLY_FLAG_DONE (a read's data as
// one NBD_REPLY_TYPE_OFFSET_DATA, a block status as
// NBD_REPLY_TYPE_BLOCK_STATUS, a failure as NBD_REPLY_TYPE_ERROR, others
// NBD_REPLY_TYPE_NONE).
//
// A reply is sent by the thread that handed it over (the engine's, at the
// end of its batch of completions, with the replies that completed with it)
// when nobody else is sending and the socket takes it without waiting:
// sending where reads complete keeps their data in that core's cache for
// the socket's copy, and saves a thread hop. Otherwise the connection's
// writer thread (Run) sends it, with the others that queued meanwhile, in
// one sendmsg. Located reads (core::Call::located) are the writer's alone:
// it sends the header, then splices each run from its file through the
// connection's pipe into the socket (no copy through memory).
//
// Thread-safety: Queue from any thread; Run on the writer thread;
// WaitForRoom and ReaderDone on the reading thread.

#ifndef COWBLK_SERVER_TRANSPORT_NBD_REPLY_SENDER_H_
#define COWBLK_SERVER_TRANSPORT_NBD_REPLY_SENDER_H_

#include <sys/uio.h>

#include <array>
#include <atomic>
#include <condition_variable>
#include <cstdint>
#include <deque>
#include <mutex>
#include <string>
#include <vector>

#include "absl/types/span.h"
#include "server/core/pipeline.h"
#include "server/transport/nbd/wire_parse.h"

namespace cowblk::nbd {

// The errno an NBD client gets for a failed call (0 for success).
uint32_t ReplyErrno(const core::Call& call);

class ReplySender {
 public:
  // Sends on `fd` (not owned) the answers of `pipeline`'s calls, and
  // finishes them there once sent (or dropped).
  ReplySender(int fd, core::Pipeline* pipeline, std::string peer);
  ~ReplySender();
  ReplySender(const ReplySender&) = delete;
  ReplySender& operator=(const ReplySender&) = delete;

  // Makes the pipe that located reads cross. False (logged) when the system
  // refuses one: reads are then copied through the engine.
  bool OpenPipe();
  // The pipe's capacity in bytes (0 without one).
  int pipe_bytes() const { return pipe_bytes_; }
  // Replies are structured from now on. Before the first call is queued.
  void UseStructuredReplies() { structured_ = true; }

  // Queues answered calls and sends what the socket takes at once.
  void Queue(absl::Span<core::Call* const> calls);
  // Blocks until the pipeline has room for another call; false once a reply
  // could not be sent (the connection is broken: read no more).
  bool WaitForRoom();
  // The server's byte budget has room again: WaitForRoom looks again.
  void WakeForRoom();
  // The reading side ended: once every call is answered and sent, Run
  // returns.
  void ReaderDone();
  // The writer thread: sends what the others did not, until the reading side
  // ended and every call was sent; then shuts the socket down.
  void Run();
  // A blocking send failed for the socket's send timeout (SO_SNDTIMEO):
  // the client stopped taking its replies. Any thread.
  bool send_timed_out() const { return send_timed_out_.load(std::memory_order_relaxed); }

 private:
  using Header = std::array<uint8_t, kMaxReplyHeaderBytes>;
  static bool SentFromFiles(const core::Call* c) { return c->located() && c->status().ok(); }
  static ReplyKind KindOf(const core::Call* c);
  // Header and data bytes of `c`'s reply.
  size_t ReplyBytes(const core::Call* c) const;
  // Appends what is left to send of `c` (skipping the first `skip` bytes)
  // to send_iov_, its header built into `header`.
  void AddReply(core::Call* c, size_t skip, Header* header);
  // Sends what is queued without waiting (see the top of this file).
  void SendQueued();
  // Splices a located read's data from the files (writer thread); false
  // when the connection must end (the header already said success).
  bool SendFromFiles(const core::Call* c);
  bool SendFailed(const core::Call* c, const char* what);
  // After a blocking send failed: notes a send timeout (errno EAGAIN).
  void NoteSendError();
  // REQUIRE mu_ held.
  bool RoomLocked() const { return pipeline_->HasRoom() || broken_; }
  bool WriterCanGoLocked() const;
  // Wakes the reader or the writer only if its wait can end: at depth 1 a
  // reply sent by the engine thread itself used to wake the writer for
  // nothing (bench/RESULTS.md, "NBD connection wake-ups").
  void WakeLocked();

  const int fd_;
  core::Pipeline* const pipeline_;
  const std::string peer_;
  int pipe_[2] = {-1, -1};  // the writer's, for SendFromFiles
  int pipe_bytes_ = 0;
  bool structured_ = false;  // set before any call, read by the sending threads
  std::atomic<bool> send_timed_out_{false};

  // Scratch of the thread that is sending (the one that set sending_).
  std::vector<core::Call*> send_calls_;
  std::vector<Header> send_headers_;
  std::vector<iovec> send_iov_;

  std::mutex mu_;                      // guards below
  std::condition_variable room_cv_;    // the reader waits for room
  std::condition_variable writer_cv_;  // the writer waits for replies (or the end)
  std::deque<core::Call*> replies_;    // answered, not yet sent
  size_t front_sent_ = 0;  // bytes of replies_.front() already sent
  bool reader_done_ = false;
  bool broken_ = false;   // a reply could not be sent: read no more
  bool sending_ = false;  // a thread is sending replies (one at a time)
};

}  // namespace cowblk::nbd

#endif  // COWBLK_SERVER_TRANSPORT_NBD_REPLY_SENDER_H_
