// Blocking reads from an NBD connection's socket through a buffer, so that
// the requests a client sends together are parsed (and submitted to the
// engine) together, while large payloads go straight from the socket into
// their own buffers.
//
// Thread-safety: one reading thread.

#ifndef COWBLK_SERVER_TRANSPORT_NBD_SOCKET_READER_H_
#define COWBLK_SERVER_TRANSPORT_NBD_SOCKET_READER_H_

#include <cstddef>
#include <string>
#include <vector>

namespace cowblk::nbd {

class SocketReader {
 public:
  // Reads `fd` (not owned) through a buffer of `buffer_bytes`.
  SocketReader(int fd, size_t buffer_bytes) : fd_(fd), buf_(buffer_bytes) {}

  // Receives what one recv brings. With `header_only` (set after a large
  // write: the next request is likely one too) it asks for no more than the
  // rest of the next request header of `header_bytes`, so that the payload
  // after it is received straight into its own buffer instead of through
  // this one (a copy less). False at the end of the stream or on an error.
  bool Fill(bool header_only = false, size_t header_bytes = 0);
  // Bytes received and not yet taken.
  size_t buffered() const { return end_ - pos_; }
  // The next `n` buffered bytes, consumed. REQUIRES: n <= buffered().
  const char* Consume(size_t n) {
    const char* p = buf_.data() + pos_;
    pos_ += n;
    return p;
  }
  // Copies `n` bytes into `dest`: what is buffered, then straight from the
  // socket. False at the end of the stream.
  bool Take(void* dest, size_t n);
  bool TakeString(std::string* out, size_t n);

 private:
  const int fd_;
  std::vector<char> buf_;
  size_t pos_ = 0, end_ = 0;
};

}  // namespace cowblk::nbd

#endif  // COWBLK_SERVER_TRANSPORT_NBD_SOCKET_READER_H_
