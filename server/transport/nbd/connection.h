// One NBD connection of cowblkd's export: a reading thread (the handshake,
// then the transmission phase) and a writing thread (ReplySender::Run), over
// one core::Pipeline bound to the volume the client chose.
//
// Thread-safety: the public methods may be called from any thread.

#ifndef COWBLK_SERVER_TRANSPORT_NBD_CONNECTION_H_
#define COWBLK_SERVER_TRANSPORT_NBD_CONNECTION_H_

#include <chrono>
#include <condition_variable>
#include <memory>
#include <mutex>
#include <string>
#include <thread>

#include "server/core/pipeline.h"
#include "server/store/store.h"
#include "server/transport/nbd/reply_sender.h"
#include "server/transport/nbd/socket_reader.h"

namespace cowblk::nbd {

class Connection final : public core::Pipeline::Sink {
 public:
  // Serves the accepted socket `fd` (owned) with the volumes of `store`;
  // `options` for the pipeline of the volume it exports.
  Connection(int fd, store::Store* store, core::PipelineOptions options);
  // REQUIRES: Join() returned (or Start() was never called).
  ~Connection() override;
  Connection(const Connection&) = delete;
  Connection& operator=(const Connection&) = delete;

  void Start();
  // No more requests: the reader sees the end of the stream.
  void StopReading();
  // Ends the connection at once (replies not yet sent are dropped).
  void Cut();
  // Until both threads ended (or `deadline`): true if they did.
  bool WaitFinished(std::chrono::steady_clock::time_point deadline);
  void WaitFinished();
  bool finished();
  void Join();

 private:
  void OnAnswered(absl::Span<core::Call* const> calls) override { sender_.Queue(calls); }
  void ReaderMain();
  void WriterMain();
  // Binds the pipeline to the chosen volume and logs nbd_export.
  void Export(std::shared_ptr<store::VolumeHandle> volume);

  const int fd_;
  store::Store* const store_;
  const std::string peer_;
  SocketReader in_;
  core::Pipeline pipeline_;
  ReplySender sender_;
  std::thread reader_, writer_;
  uint64_t requests_ = 0;  // reader's; read by the writer once the reader ended

  std::mutex mu_;  // guards below
  std::condition_variable done_cv_;  // WaitFinished waits for both threads
  std::string close_reason_;         // the reader's, when it ended
  int threads_done_ = 0;
};

}  // namespace cowblk::nbd

#endif  // COWBLK_SERVER_TRANSPORT_NBD_CONNECTION_H_
