// HeldIo: an IoBackend decorator that parks bitmap block writes
// (IoPurpose::kBitmap) until they are released, oldest first, and passes
// every other operation straight to the backend it wraps, the way nbdkit
// stacks its `delay` filter on a plugin. A debugging aid: with it a test
// keeps a bitmap update pending to watch stalled reads, waiting updates and
// the gauges that count them (cowblkd --debug-hold-bitmap-writes,
// docs/metrics.md). The engine knows it only as an IoBackend that
// EngineOptions::wrap_io put around its ring; production never builds one.
//
// Completions do not pass through it: the wrapped backend delivers them to
// its own sink with the operation's user_data unchanged. in_flight() counts
// parked operations too: to the volume that submitted them they are in
// flight, and the engine must not stop while one is parked; the ring's own
// count (Engine::io_in_flight, cowblk_uring_inflight) leaves them out, as
// they are not in the ring.
//
// Every bitmap write the backend is handed is parked, including the rest
// of a short one (a regular file's small writes are never short).
//
// Thread-safety: the engine thread only, like the backend it wraps.

#ifndef COWBLK_SERVER_ENGINE_HELD_IO_H_
#define COWBLK_SERVER_ENGINE_HELD_IO_H_

#include <cstdint>
#include <deque>
#include <functional>
#include <memory>
#include <string>

#include "absl/status/statusor.h"
#include "server/engine/io.h"

namespace cowblk::engine {

class HeldIo : public IoBackend {
 public:
  // Forwards to `real`, which must outlive this object.
  explicit HeldIo(IoBackend* real) : real_(real) {}

  // Parks a bitmap write (logged as event=io_held with the number parked),
  // unless a credit lets it through; submits anything else at once.
  void Submit(const IoOp& op) override;
  size_t in_flight() const override { return real_->in_flight() + held_.size(); }

  // Submits the oldest parked write (logged as event=io_released with the
  // number still parked); with none parked, lets the next one through at
  // once instead.
  void Release();
  size_t held() const { return held_.size(); }

 private:
  IoBackend* const real_;
  std::deque<IoOp> held_;
  uint64_t credit_ = 0;  // releases that came while nothing was parked
};

// A HeldIo released by the bytes written to `fifo`, a named pipe
// (cowblkd --debug-hold-bitmap-writes): a thread of its own, "cowblk-hold",
// reads the pipe and hands one Release per byte to the engine thread
// through `post` (Engine::Post). Logs event=holding_bitmap_writes. Fails
// when `fifo` cannot be opened or is not a FIFO. The result owns the
// thread and stops it when destroyed; releases posted but not yet run then
// must never run (the engine destroys it after its thread ended).
absl::StatusOr<std::unique_ptr<IoBackend>> HoldBitmapWritesUntilFifo(
    const std::string& fifo, IoBackend* real, std::function<void(std::function<void()>)> post);

}  // namespace cowblk::engine

#endif  // COWBLK_SERVER_ENGINE_HELD_IO_H_
