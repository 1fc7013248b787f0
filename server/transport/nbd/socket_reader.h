// Blocking reads from an NBD connection's socket through a buffer, so that
// the requests a client sends together are parsed (and submitted to the
// engine) together, while large payloads go straight from the socket into
// their own buffers.
//
// Thread-safety: one reading thread.

#ifndef COWBLK_SERVER_TRANSPORT_NBD_SOCKET_READER_H_
#define COWBLK_SERVER_TRANSPORT_NBD_SOCKET_READER_H_

#include <cstddef>
#include <memory>
#include <string>

namespace cowblk::nbd {

class SocketReader {
 public:
  // Reads `fd` (not owned) through a buffer of `buffer_bytes`, allocated
  // by Allocate (a connection in its handshake needs none: Take reads
  // straight from the socket while nothing is buffered).
  SocketReader(int fd, size_t buffer_bytes) : fd_(fd), size_(buffer_bytes) {}

  // Allocates the buffer; false when there is no memory for it.
  bool Allocate();

  // Receives what one recv brings. With `header_only` (set after a large
  // write: the next request is likely one too) it asks for no more than the
  // rest of the next request header of `header_bytes`, so that the payload
  // after it is received straight into its own buffer instead of through
  // this one (a copy less). False at the end of the stream or on an error
  // (timed_out() tells a receive timeout, SO_RCVTIMEO, from the others).
  // REQUIRES: Allocate() succeeded.
  bool Fill(bool header_only = false, size_t header_bytes = 0);
  // The last Fill or Take failed because the socket's receive timeout
  // passed with nothing received.
  bool timed_out() const { return timed_out_; }
  // Bytes received and not yet taken.
  size_t buffered() const { return end_ - pos_; }
  // The next `n` buffered bytes, consumed. REQUIRES: n <= buffered().
  const char* Consume(size_t n) {
    const char* p = buf_.get() + pos_;
    pos_ += n;
    return p;
  }
  // Copies `n` bytes into `dest`: what is buffered, then straight from the
  // socket. False at the end of the stream.
  bool Take(void* dest, size_t n);
  bool TakeString(std::string* out, size_t n);
  // Receives `n` bytes and drops them (through the buffer: no memory of
  // their own). False at the end of the stream or on an error.
  bool Skip(size_t n);

 private:
  const int fd_;
  const size_t size_;
  std::unique_ptr<char[]> buf_;  // not zeroed: pages are touched as used
  size_t pos_ = 0, end_ = 0;
  bool timed_out_ = false;
};

}  // namespace cowblk::nbd

#endif  // COWBLK_SERVER_TRANSPORT_NBD_SOCKET_READER_H_
