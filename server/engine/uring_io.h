// UringIo: the io_uring LoopIo (loop_io.h), one ring per engine thread.
//
// Thread-safety: owned and used by one engine thread. The ring is created in
// Create; Wake() is the only method other threads may call.

#ifndef COWBLK_SERVER_ENGINE_URING_IO_H_
#define COWBLK_SERVER_ENGINE_URING_IO_H_

#include <liburing.h>

#include <cstdint>
#include <map>
#include <memory>
#include <vector>

#include "absl/status/statusor.h"
#include "server/engine/loop_io.h"

namespace cowblk::engine {

class UringIo : public LoopIo {
  // Only Create constructs a UringIo: the constructor is public for
  // std::make_unique, and callable only with this private key.
  struct Passkey {
    explicit Passkey() = default;
  };

 public:
  // A ring with `entries` submission slots (the completion queue is twice
  // that). Operations beyond the ring's capacity wait in user space.
  static absl::StatusOr<std::unique_ptr<UringIo>> Create(unsigned entries,
                                                         IoSink* sink);
  UringIo(Passkey, IoSink* sink) : sink_(sink) {}
  ~UringIo() override;

  void Submit(const IoOp& op) override;
  size_t in_flight() const override { return in_flight_ + overflow_.size(); }

  bool Poll() override;
  void SubmitQueued() override;
  unsigned delivered() const override { return delivered_; }
  bool CompletionsReady() override { return io_uring_cq_ready(&ring_) > 0; }
  const char* name() const override { return "uring"; }
  unsigned entries() const { return entries_; }

 private:
  bool Push(const IoOp& op);
  void ArmWakeRead();

  struct io_uring ring_;
  bool ring_ok_ = false;
  IoSink* sink_;
  unsigned entries_ = 0;
  size_t in_flight_ = 0;
  std::vector<IoOp> overflow_;  // waiting for a free SQE
  // kTimeout operations in flight, by user_data: the kernel reads the
  // timespec when it takes the SQE, so it lives until the completion.
  std::map<uint64_t, __kernel_timespec> timeouts_;
  uint64_t event_buf_ = 0;
  bool wake_armed_ = false;
  unsigned delivered_ = 0;
};

}  // namespace cowblk::engine

#endif  // COWBLK_SERVER_ENGINE_URING_IO_H_
