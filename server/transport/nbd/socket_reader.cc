#include "server/transport/nbd/socket_reader.h"

#include <sys/socket.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <new>

#include "common/nbd_wire.h"

namespace cowblk::nbd {

bool SocketReader::Allocate() {
  try {
    buf_ = std::make_unique_for_overwrite<char[]>(size_);
  } catch (const std::bad_alloc&) {
    return false;
  }
  return true;
}

bool SocketReader::Fill(bool header_only, size_t header_bytes) {
  if (pos_ == end_) pos_ = end_ = 0;
  if (end_ == size_) {  // compact
    std::memmove(buf_.get(), buf_.get() + pos_, end_ - pos_);
    end_ -= pos_;
    pos_ = 0;
  }
  const size_t room = size_ - end_;
  const size_t ask = header_only && buffered() < header_bytes
                         ? std::min(room, header_bytes - buffered())
                         : room;
  while (true) {
    const ssize_t n = recv(fd_, buf_.get() + end_, ask, 0);
    if (n < 0 && errno == EINTR) continue;
    timed_out_ = n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK);
    if (n <= 0) return false;
    end_ += static_cast<size_t>(n);
    return true;
  }
}

bool SocketReader::Take(void* dest, size_t n) {
  char* d = static_cast<char*>(dest);
  const size_t from_buffer = std::min(n, buffered());
  if (from_buffer > 0) std::memcpy(d, buf_.get() + pos_, from_buffer);
  pos_ += from_buffer;
  errno = 0;  // an end of stream leaves it alone
  if (RecvAll(fd_, d + from_buffer, n - from_buffer)) return true;
  timed_out_ = errno == EAGAIN || errno == EWOULDBLOCK;
  return false;
}

bool SocketReader::Skip(size_t n) {
  while (n > 0) {
    if (buffered() == 0 && !Fill()) return false;
    const size_t drop = std::min(n, buffered());
    pos_ += drop;
    n -= drop;
  }
  return true;
}

bool SocketReader::TakeString(std::string* out, size_t n) {
  out->resize(n);
  return Take(out->data(), n);
}

}  // namespace cowblk::nbd
