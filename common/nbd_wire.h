// The Network Block Device protocol's numbers and byte helpers, shared by
// cowblkd's NBD export (server/service/nbd_server.cc) and libcowblk's NBD
// path for large I/O (client/src/nbd_call.cc). Numbers from
// NetworkBlockDevice/nbd, doc/proto.md. Header-only: libcowblk carries no
// other part of common/.

#ifndef COWBLK_COMMON_NBD_WIRE_H_
#define COWBLK_COMMON_NBD_WIRE_H_

#include <endian.h>
#include <sys/socket.h>
#include <sys/uio.h>

#include <algorithm>
#include <cerrno>
#include <climits>
#include <cstdint>
#include <cstring>
#include <string>
#include <vector>

namespace cowblk::nbd {

inline constexpr uint64_t kNbdMagic = 0x4e42444d41474943;  // "NBDMAGIC"
inline constexpr uint64_t kOptMagic = 0x49484156454f5054;  // "IHAVEOPT"
inline constexpr uint64_t kRepMagic = 0x0003e889045565a9;
inline constexpr uint32_t kRequestMagic = 0x25609513;
inline constexpr uint32_t kSimpleReplyMagic = 0x67446698;
inline constexpr uint32_t kStructuredReplyMagic = 0x668e33ef;

// Handshake flags (server) and client flags.
inline constexpr uint16_t kFlagFixedNewstyle = 1 << 0;
inline constexpr uint16_t kFlagNoZeroes = 1 << 1;

inline constexpr uint32_t kOptExportName = 1, kOptAbort = 2, kOptList = 3, kOptInfo = 6,
                          kOptGo = 7, kOptStructuredReply = 8, kOptListMetaContext = 9,
                          kOptSetMetaContext = 10;
inline constexpr uint32_t kOptStartTls = 5;
inline constexpr uint32_t kRepAck = 1, kRepServer = 2, kRepInfo = 3, kRepMetaContext = 4;
inline constexpr uint32_t kRepFlagError = 1u << 31;
inline constexpr uint32_t kRepErrUnsup = kRepFlagError + 1;
inline constexpr uint32_t kRepErrInvalid = kRepFlagError + 3;
inline constexpr uint32_t kRepErrUnknown = kRepFlagError + 6;
inline constexpr uint32_t kRepErrTlsReqd = kRepFlagError + 5;
inline constexpr uint16_t kInfoExport = 0, kInfoBlockSize = 3;

// Transmission flags.
inline constexpr uint16_t kTxHasFlags = 1 << 0, kTxReadOnly = 1 << 1, kTxSendFlush = 1 << 2,
                          kTxSendFua = 1 << 3, kTxSendTrim = 1 << 5,
                          kTxSendWriteZeroes = 1 << 6, kTxCanMultiConn = 1 << 8,
                          kTxSendFastZero = 1 << 11;

inline constexpr uint16_t kCmdRead = 0, kCmdWrite = 1, kCmdDisc = 2, kCmdFlush = 3, kCmdTrim = 4,
                          kCmdWriteZeroes = 6, kCmdBlockStatus = 7;
inline constexpr uint16_t kCmdFlagFua = 1 << 0, kCmdFlagNoHole = 1 << 1, kCmdFlagReqOne = 1 << 3,
                          kCmdFlagFastZero = 1 << 4;
// NBD_ENOTSUP: a fast zero that would not be fast.
inline constexpr uint32_t kErrNotSup = 95;

// Structured replies: chunk flags and types; base:allocation's states.
inline constexpr uint16_t kReplyFlagDone = 1 << 0;
inline constexpr uint16_t kReplyTypeNone = 0, kReplyTypeOffsetData = 1, kReplyTypeBlockStatus = 5,
                          kReplyTypeError = (1 << 15) + 1;
inline constexpr uint32_t kStateHole = 1 << 0, kStateZero = 1 << 1;

// A request header: magic, flags, type, cookie, offset, length.
inline constexpr size_t kRequestBytes = 28;
// A simple reply: magic, error, cookie.
inline constexpr size_t kSimpleReplyBytes = 16;
// A structured reply chunk's header: magic, flags, type, cookie, length.
inline constexpr size_t kStructuredReplyBytes = 20;

inline void Put16(std::string* out, uint16_t v) {
  v = htobe16(v);
  out->append(reinterpret_cast<const char*>(&v), 2);
}
inline void Put32(std::string* out, uint32_t v) {
  v = htobe32(v);
  out->append(reinterpret_cast<const char*>(&v), 4);
}
inline void Put64(std::string* out, uint64_t v) {
  v = htobe64(v);
  out->append(reinterpret_cast<const char*>(&v), 8);
}
inline uint16_t Get16(const uint8_t* p) {
  uint16_t v;
  std::memcpy(&v, p, 2);
  return be16toh(v);
}
inline uint32_t Get32(const uint8_t* p) {
  uint32_t v;
  std::memcpy(&v, p, 4);
  return be32toh(v);
}
inline uint64_t Get64(const uint8_t* p) {
  uint64_t v;
  std::memcpy(&v, p, 8);
  return be64toh(v);
}

// Sends all `n` bytes (with send(2) `flags` besides MSG_NOSIGNAL); false
// when the socket failed or closed.
inline bool SendAll(int fd, const void* data, size_t n, int flags = 0) {
  const char* p = static_cast<const char*>(data);
  while (n > 0) {
    const ssize_t w = send(fd, p, n, MSG_NOSIGNAL | flags);
    if (w < 0 && errno == EINTR) continue;
    if (w <= 0) return false;
    p += w;
    n -= static_cast<size_t>(w);
  }
  return true;
}

// Sends every byte of `iov` (modified as it goes).
inline bool SendAllV(int fd, std::vector<iovec>* iov, int flags = 0) {
  size_t at = 0;
  while (at < iov->size()) {
    msghdr msg{};
    msg.msg_iov = iov->data() + at;
    msg.msg_iovlen = std::min<size_t>(iov->size() - at, IOV_MAX);
    ssize_t w = sendmsg(fd, &msg, MSG_NOSIGNAL | flags);
    if (w < 0 && errno == EINTR) continue;
    if (w <= 0) return false;
    while (w > 0 && at < iov->size()) {
      iovec& v = (*iov)[at];
      const size_t here = std::min(static_cast<size_t>(w), v.iov_len);
      v.iov_base = static_cast<char*>(v.iov_base) + here;
      v.iov_len -= here;
      w -= static_cast<ssize_t>(here);
      if (v.iov_len == 0) ++at;
    }
  }
  return true;
}

// Receives exactly `n` bytes; false when the socket failed, timed out or
// closed first.
inline bool RecvAll(int fd, void* dest, size_t n) {
  char* d = static_cast<char*>(dest);
  while (n > 0) {
    const ssize_t r = recv(fd, d, n, MSG_WAITALL);
    if (r < 0 && errno == EINTR) continue;
    if (r <= 0) return false;
    d += r;
    n -= static_cast<size_t>(r);
  }
  return true;
}

}  // namespace cowblk::nbd

#endif  // COWBLK_COMMON_NBD_WIRE_H_
