// The engine's I/O layer: the engine describes each file operation as an
// IoOp and learns of its completion through IoSink. Two implementations:
// UringIo (real io_uring, server/engine/uring_io.h) and ManualIo (the test
// layer whose completions a test releases one by one, manual_io.h); and a
// decorator that forwards to either, HeldIo (held_io.h: bitmap writes wait
// for a release, a debugging aid).
//
// Thread-safety: an IoBackend is used by its engine thread only.

#ifndef COWBLK_SERVER_ENGINE_IO_H_
#define COWBLK_SERVER_ENGINE_IO_H_

#include <cstddef>
#include <cstdint>

#include "common/block_range.h"

namespace cowblk::engine {

// Upper bound of one read or write request, so a transfer fits one SQE.
inline constexpr uint64_t kMaxIoBytes = kMaxTransferBytes;

enum class IoOpcode : uint8_t {
  kRead,       // pread(fd, buf, len, offset)
  kWrite,      // pwrite(fd, buf, len, offset)
  kFdatasync,  // fdatasync(fd); buf, len, offset unused
  kPunchHole,  // fallocate(fd, PUNCH_HOLE | KEEP_SIZE, offset, len)
  kZeroRange,  // fallocate(fd, ZERO_RANGE | KEEP_SIZE, offset, len): zeros, allocated
  kTimeout,    // completes with 0 after `len` nanoseconds; fd, buf, offset unused
  kTimeoutRemove,  // cancels the kTimeout whose user_data is `offset`: it
                   // completes -ECANCELED; this op 0, or -ENOENT if too late
};

const char* IoOpcodeName(IoOpcode op);

// What an operation is for, set by the volume that submits it. Backends
// ignore it; a decorator may act on it (HeldIo parks kBitmap writes).
enum class IoPurpose : uint8_t {
  kData,    // a request's data: reads, writes, punched holes
  kBitmap,  // the write of one bitmap block
  kSync,    // an fdatasync: group commit, or a deferred commit round
  kTimer,   // the deferred commit interval's kTimeout, or its kTimeoutRemove
};

struct IoOp {
  IoOpcode opcode = IoOpcode::kRead;
  IoPurpose purpose = IoPurpose::kData;
  int fd = -1;
  void* buf = nullptr;
  uint64_t len = 0;  // reads and writes: at most kMaxIoBytes
  uint64_t offset = 0;
  // Identifies the operation to the sink; opaque to the backend.
  uint64_t user_data = 0;
};

// Runs a file operation (kRead, kWrite, kFdatasync, kPunchHole, kZeroRange) with its
// plain syscall on the calling thread, retried while a signal interrupts it,
// and returns what an io_uring completion would: bytes transferred (possibly
// short) or -errno. -EINVAL for the timer opcodes. ManualIo and ThreadsIo's
// workers run their operations with it. (io.cc)
int32_t RunSyncIo(const IoOp& op);

class IoSink {
 public:
  virtual ~IoSink() = default;
  // `result` is what the syscall returns: bytes transferred (possibly short)
  // or -errno. Called on the engine thread, from IoBackend::Poll.
  virtual void OnIoComplete(uint64_t user_data, int32_t result) = 0;
};

class IoBackend {
 public:
  virtual ~IoBackend() = default;
  // Queues `op`; it reaches the kernel at the latest on the next Poll.
  virtual void Submit(const IoOp& op) = 0;
  // Operations submitted and not yet completed.
  virtual size_t in_flight() const = 0;
};

}  // namespace cowblk::engine

#endif  // COWBLK_SERVER_ENGINE_IO_H_
