// One NBD client of the gateway: a reading thread (the handshake, then
// requests, each handed to the chosen volume's asynchronous call at once)
// and a writing thread (the replies, in the order the calls complete:
// many requests in flight, answered out of order as NBD allows).
//
// Replies are simple, or structured for a client that asked (one chunk
// each; then block status for base:allocation: kMaxStatusBytes below).
//
// Bounds: at most `max_in_flight` requests and `max_bytes` of their data in
// flight; the reader stops taking requests until replies free room. A read
// above the protocol's maximum block is answered EINVAL without a buffer;
// a write above it ends the connection (its payload cannot be skipped).
//
// Ending: StopReading() (the gateway's shutdown) and a client's
// NBD_CMD_DISC or close end the reading; the writer then sends the replies
// of every request still in flight, and the connection finishes.
//
// Thread-safety: the public methods from any thread. Volume callbacks run
// on the library's threads and only queue a reply.

#ifndef COWBLK_CLIENT_GATEWAY_CONNECTION_H_
#define COWBLK_CLIENT_GATEWAY_CONNECTION_H_

#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <functional>
#include <memory>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include "absl/status/status.h"
#include "client/gateway/exports.h"
#include "server/transport/nbd/handshake_steps.h"
#include "server/transport/nbd/socket_reader.h"
#include "server/transport/nbd/wire_parse.h"

namespace cowblk::gateway {

struct ConnectionOptions {
  uint32_t max_in_flight = 128;
  uint64_t max_bytes = uint64_t{64} << 20;
  // From accept to the chosen export; a client slower than this is cut.
  std::chrono::milliseconds handshake_timeout{30000};
  // Called once both threads ended, on the last of them.
  std::function<void()> on_finished;
};

class Connection {
 public:
  // Serves the accepted socket `fd` (owned) with `exports` (outlives it).
  Connection(int fd, const Exports* exports, std::string peer, ConnectionOptions options);
  // REQUIRES: Join() returned, or Start() failed.
  ~Connection();
  Connection(const Connection&) = delete;
  Connection& operator=(const Connection&) = delete;

  // Starts the threads; RESOURCE_EXHAUSTED when the system refuses one.
  absl::Status Start();
  // No more requests; those in flight are answered.
  void StopReading();
  bool finished();
  void Join();

 private:
  struct Request;
  void ReaderMain();
  void WriterMain();
  // The transmission phase on `volume`; returns why it ended.
  std::string Transmit(Volume* volume);
  // Hands one judged request to the volume (or answers it at once).
  bool Take(Volume* volume, const nbd::RequestHeader& h, nbd::RequestVerdict verdict,
            std::string* why);
  // Answers an NBD_CMD_BLOCK_STATUS for base:allocation from the volume's
  // GetExtents (on this, the reading thread).
  void BlockStatus(Volume* volume, const nbd::RequestHeader& h, Request* r);
  // NBD_CMD_WRITE_ZEROES with NBD_CMD_FLAG_NO_HOLE: zeros written as data
  // (allocated on the server), then `done`.
  void WriteZeroBlocks(Volume* volume, uint64_t offset, uint64_t length, const IoOptions& io,
                       std::function<void(absl::Status)> done);
  // Waits until `bytes` more fit; false once replies cannot be sent.
  bool WaitForRoom(uint64_t bytes);
  // A call completed: queue its reply (any thread).
  void Complete(Request* r, const absl::Status& status);
  void ThreadDone();

  const int fd_;
  const Exports* const exports_;
  const std::string peer_;
  const ConnectionOptions options_;
  nbd::SocketReader in_;
  std::thread reader_, writer_;

  std::mutex mu_;  // guards below
  std::condition_variable room_cv_, writer_cv_;
  std::vector<Request*> done_;  // completed, reply not yet sent
  uint32_t in_flight_ = 0;      // taken, reply not yet sent
  uint64_t bytes_ = 0;          // their data buffers
  bool reader_done_ = false;
  bool broken_ = false;  // a reply could not be sent
  int threads_done_ = 0;
  std::string why_;  // the reader's reason to end
  uint64_t requests_ = 0;
  std::string volume_;
  // Set by the reader before its first request; read by the writer.
  nbd::Negotiated negotiated_;
};

}  // namespace cowblk::gateway

#endif  // COWBLK_CLIENT_GATEWAY_CONNECTION_H_
