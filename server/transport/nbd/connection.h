// One NBD connection of cowblkd's export: a reading thread (the handshake,
// then the transmission phase) and a writing thread (ReplySender::Run), over
// one core::Pipeline bound to the volume the client chose.
//
// Its timeouts: the handshake's deadline is the server's to enforce
// (CutHandshake, from the accepting thread, which sees every connection's
// deadline); the idle timeout is the reader's (SO_RCVTIMEO in the
// transmission phase) and the send timeout the socket's (SO_SNDTIMEO: a
// blocked send that makes no progress that long fails).
//
// Thread-safety: the public methods may be called from any thread.

#ifndef COWBLK_SERVER_TRANSPORT_NBD_CONNECTION_H_
#define COWBLK_SERVER_TRANSPORT_NBD_CONNECTION_H_

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <functional>
#include <memory>
#include <mutex>
#include <string>
#include <thread>

#include "absl/status/status.h"
#include "server/core/pipeline.h"
#include "server/store/store.h"
#include "server/transport/nbd/handshake.h"
#include "server/transport/nbd/nbd_stats.h"
#include "server/transport/nbd/reply_sender.h"
#include "server/transport/nbd/socket_reader.h"
#include "server/transport/nbd/tls.h"

namespace cowblk::nbd {

struct ConnectionOptions {
  // Transmission phase: a connection that received nothing for this long
  // while no request of it was in flight is closed. 0: never.
  std::chrono::milliseconds idle_timeout{0};
  // A send to the client that makes no progress this long ends the
  // connection (a client that stops reading its replies). 0: never.
  std::chrono::milliseconds send_timeout{0};
  // Counted in (not owned; outlives the connection).
  NbdStats* stats = nullptr;
  // TLS, required when set (not owned; outlives the connection). The
  // connection then has a third thread, its TlsRelay (tls.h), from
  // NBD_OPT_STARTTLS on.
  const TlsServer* tls = nullptr;
  // Who may use which volume (handshake.h); null: everyone everything.
  ExportAccess access;
  // Called once its threads ended, on the last of them (the server reaps
  // the connection then). Must not destroy the connection itself.
  std::function<void()> on_finished;
};

class Connection final : public core::Pipeline::Sink {
 public:
  // Serves the accepted socket `fd` (owned) with the volumes of `store`;
  // `pipeline` for the pipeline of the volume it exports. Allocates only
  // small state (the receive buffer waits for the transmission phase).
  Connection(int fd, store::Store* store, core::PipelineOptions pipeline,
             ConnectionOptions options);
  // REQUIRES: Join() returned (or Start() was never called, or failed).
  ~Connection() override;
  Connection(const Connection&) = delete;
  Connection& operator=(const Connection&) = delete;

  // Starts the connection's threads. ResourceExhausted when the system
  // refuses one (a pids or process limit): then nothing of the connection
  // runs any more, on_finished may have been called, and the caller
  // destroys it (which closes the socket).
  absl::Status Start();
  // No more requests: the reader sees the end of the stream.
  void StopReading();
  // Ends the connection at once (replies not yet sent are dropped).
  void Cut();
  // When it was accepted (constructed), for the handshake's deadline.
  std::chrono::steady_clock::time_point accepted_at() const { return accepted_at_; }
  // True until the handshake ended (a volume chosen, or the connection
  // ending) or was cut.
  bool in_handshake() const { return !handshake_over_.load(std::memory_order_acquire); }
  // Cuts a connection still in its handshake; `why` becomes the reason
  // nbd_closed gives.
  void CutHandshake(std::string why);
  // Until its threads ended (or `deadline`): true if they did.
  bool WaitFinished(std::chrono::steady_clock::time_point deadline);
  void WaitFinished();
  bool finished();
  void Join();

 private:
  void OnAnswered(absl::Span<core::Call* const> calls) override;
  void ReaderMain();
  void WriterMain();
  // `options` with the budget's callback waking the reader in WaitForRoom.
  static core::PipelineOptions WakingSender(core::PipelineOptions options, Connection* self);
  // Binds the pipeline to the chosen volume and logs nbd_export; false
  // (with `why`) when the transmission phase cannot begin.
  bool Export(std::shared_ptr<store::VolumeHandle> volume, bool writable, std::string* why);
  // One of the threads ended; calls on_finished after the last.
  void ThreadDone();
  // After NBD_OPT_STARTTLS: the TLS handshake, then the relay in place
  // (tls.h); the client's identity.
  absl::StatusOr<std::string> StartTls();
  bool tls_on();

  const int fd_;
  const ConnectionOptions options_;
  const std::chrono::steady_clock::time_point accepted_at_;
  store::Store* const store_;
  const std::string peer_;
  SocketReader in_;
  core::Pipeline pipeline_;
  ReplySender sender_;
  std::thread reader_, writer_;
  uint64_t requests_ = 0;  // reader's; read by the writer once the reader ended
  std::atomic<bool> handshake_over_{false};

  std::mutex mu_;  // guards below
  std::condition_variable done_cv_;  // WaitFinished waits for both threads
  std::string close_reason_;         // the reader's, when it ended
  std::string cut_reason_;           // CutHandshake's: wins over the reader's
  bool reader_failed_ = false;       // Start could not make the reader
  int threads_done_ = 0;
  int threads_ = 2;                  // 3 once the TLS relay runs
  std::unique_ptr<TlsRelay> relay_;  // set once, by the reader
};

}  // namespace cowblk::nbd

#endif  // COWBLK_SERVER_TRANSPORT_NBD_CONNECTION_H_
