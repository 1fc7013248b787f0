// What cowblk-bench drives: a block device reached over the network, with
// asynchronous reads and writes. One load model (engine.h) for every target:
//
//   cowblk://HOST:PORT/VOLUME   a cowblkd volume, through libcowblk
//   nbd://..., nbd+unix://...   an NBD export, through libnbd (any URI that
//                                nbd_connect_uri takes)
//
// A target has `streams` independent submission streams (NBD: one
// connection each; cowblk: one Session lane each, sharing one Volume).

#ifndef COWBLK_BENCH_LOADGEN_TARGET_H_
#define COWBLK_BENCH_LOADGEN_TARGET_H_

#include <chrono>
#include <cstdint>
#include <memory>
#include <string>

#include "absl/status/statusor.h"
#include "client/cli/connection.h"

namespace cowblk::bench {

inline int64_t NowNs() {
  return std::chrono::duration_cast<std::chrono::nanoseconds>(
             std::chrono::steady_clock::now().time_since_epoch())
      .count();
}

// One request in flight. The target calls Done exactly once, with 0 or an
// errno value, a message for errors (may be null) and the time the answer
// arrived (NowNs()).
struct Completion {
  int stream = 0;
  virtual void Done(int err, const char* message, int64_t t_done) = 0;

 protected:
  ~Completion() = default;
};

struct TargetOptions {
  std::string uri;
  int streams = 1;
  int iodepth = 1;
  uint32_t block_size = 4096;
  // cowblk:// only: the cowblk CLI's connection flags (`server` is for
  // cowblk:///VOLUME).
  cli::ConnectionFlags cowblk;
  // cowblk:// only: VolumeOptions::nbd (large I/O over the server's NBD
  // export when it offers one).
  bool cowblk_nbd = true;
  uint32_t cowblk_nbd_min_read = 32 << 10;  // VolumeOptions::nbd_min_read_bytes
  uint32_t cowblk_nbd_min_write = 0;        // VolumeOptions::nbd_min_write_bytes
};

class Target {
 public:
  virtual ~Target() = default;

  // Connects and opens. NOT_FOUND/UNAVAILABLE/...: cannot connect or open;
  // INVALID_ARGUMENT: a bad URI.
  static absl::StatusOr<std::unique_ptr<Target>> Open(const TargetOptions& options);

  virtual uint64_t size() const = 0;
  virtual bool read_only() const { return false; }
  // Notes for the user (e.g. a missing multi-conn), empty if none.
  virtual std::string notes() const { return ""; }

  // Asynchronous I/O on stream `c->stream`. `buf` stays valid until Done.
  // Done may run before the call returns (a failed submission).
  virtual void Read(uint64_t offset, void* buf, size_t length, Completion* c) = 0;
  virtual void Write(uint64_t offset, const void* buf, size_t length, Completion* c) = 0;

  // True: Read/Write may only be called from the stream's own thread, which
  // must call Poll() while the stream has requests in flight; Done runs in
  // that thread, outside the target's locks, so it may submit again (NBD).
  // False: Done runs on the target's threads and may submit again from
  // there; nobody polls (cowblk).
  virtual bool polled() const = 0;
  // Waits up to `timeout_ms` for answers on `stream` and runs their Done.
  // An error means the stream's connection is gone.
  virtual absl::Status Poll(int /*stream*/, int /*timeout_ms*/) { return absl::OkStatus(); }

  // Makes completed writes durable (every stream). Not measured.
  virtual absl::Status Flush() = 0;
};

absl::StatusOr<std::unique_ptr<Target>> OpenCowblk(const TargetOptions& options);
absl::StatusOr<std::unique_ptr<Target>> OpenNbd(const TargetOptions& options);

}  // namespace cowblk::bench

#endif  // COWBLK_BENCH_LOADGEN_TARGET_H_
