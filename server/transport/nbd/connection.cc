#include "server/transport/nbd/connection.h"

#include <pthread.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <unistd.h>

#include <exception>

#include "absl/strings/str_cat.h"
#include "common/log.h"
#include "server/transport/nbd/handshake.h"
#include "server/transport/nbd/transmission.h"

namespace cowblk::nbd {
namespace {

constexpr size_t kRecvBufferBytes = 256 << 10;

void SetTimeout(int fd, int option, std::chrono::milliseconds t) {
  timeval tv{static_cast<time_t>(t.count() / 1000),
             static_cast<suseconds_t>(t.count() % 1000 * 1000)};
  setsockopt(fd, SOL_SOCKET, option, &tv, sizeof tv);
}

std::string Seconds(std::chrono::milliseconds t) {
  return t.count() % 1000 == 0 ? absl::StrCat(t.count() / 1000, " s")
                               : absl::StrCat(t.count(), " ms");
}

}  // namespace

Connection::Connection(int fd, store::Store* store, core::PipelineOptions pipeline,
                       ConnectionOptions options)
    : fd_(fd),
      options_(std::move(options)),
      accepted_at_(std::chrono::steady_clock::now()),
      store_(store),
      peer_(pipeline.peer),
      in_(fd, kRecvBufferBytes),
      pipeline_(this, WakingSender(std::move(pipeline), this)),
      sender_(fd, &pipeline_, peer_) {}

Connection::~Connection() {
  pipeline_.StopWaiting();  // its callback wakes sender_, which goes first
  close(fd_);
}

core::PipelineOptions Connection::WakingSender(core::PipelineOptions options, Connection* self) {
  options.on_budget_room = [self] { self->sender_.WakeForRoom(); };
  return options;
}

absl::Status Connection::Start() {
  // From the greeting on: the handshake's sends too.
  if (options_.send_timeout.count() > 0) SetTimeout(fd_, SO_SNDTIMEO, options_.send_timeout);
  // The writer first: it ends by itself once told the reader never ran,
  // while a reader without its writer could leave answered calls unsent.
  try {
    writer_ = std::thread([this] { WriterMain(); });
  } catch (const std::exception& e) {
    return absl::ResourceExhaustedError(absl::StrCat("cannot start a thread: ", e.what()));
  }
  pthread_setname_np(writer_.native_handle(), "nbd-send");  // see ReaderMain
  try {
    reader_ = std::thread([this] { ReaderMain(); });
  } catch (const std::exception& e) {
    {
      std::lock_guard<std::mutex> lock(mu_);
      reader_failed_ = true;
    }
    handshake_over_.store(true, std::memory_order_release);
    sender_.ReaderDone();
    writer_.join();
    return absl::ResourceExhaustedError(absl::StrCat("cannot start a thread: ", e.what()));
  }
  pthread_setname_np(reader_.native_handle(), "nbd-recv");
  return absl::OkStatus();
}

void Connection::StopReading() { shutdown(fd_, SHUT_RD); }

void Connection::Cut() {
  shutdown(fd_, SHUT_RDWR);
  std::lock_guard<std::mutex> lock(mu_);
  if (relay_) relay_->Abort();
}

void Connection::CutHandshake(std::string why) {
  {
    std::lock_guard<std::mutex> lock(mu_);
    cut_reason_ = std::move(why);
  }
  handshake_over_.store(true, std::memory_order_release);
  shutdown(fd_, SHUT_RDWR);  // the reader's recv (or send) returns
  std::lock_guard<std::mutex> lock(mu_);
  if (relay_) relay_->Abort();
}

bool Connection::WaitFinished(std::chrono::steady_clock::time_point deadline) {
  std::unique_lock<std::mutex> lock(mu_);
  return done_cv_.wait_until(lock, deadline, [this] { return threads_done_ == threads_; });
}

void Connection::WaitFinished() {
  std::unique_lock<std::mutex> lock(mu_);
  done_cv_.wait(lock, [this] { return threads_done_ == threads_; });
}

bool Connection::finished() {
  std::lock_guard<std::mutex> lock(mu_);
  return threads_done_ == threads_;
}

void Connection::Join() {
  if (reader_.joinable()) reader_.join();
  if (writer_.joinable()) writer_.join();
  // The reader, which set it, is joined.
  if (relay_) relay_->Join();
}

bool Connection::tls_on() {
  std::lock_guard<std::mutex> lock(mu_);
  return relay_ != nullptr;
}

absl::StatusOr<std::string> Connection::StartTls() {
  absl::StatusOr<TlsSession> session = options_.tls->Accept(fd_);
  if (!session.ok()) return session.status();
  std::string identity = session->identity;
  {
    // Counted before it runs: it may end at once.
    std::lock_guard<std::mutex> lock(mu_);
    ++threads_;
  }
  absl::StatusOr<std::unique_ptr<TlsRelay>> relay = TlsRelay::Start(
      *std::move(session), fd_, options_.send_timeout, [this] { ThreadDone(); });
  std::lock_guard<std::mutex> lock(mu_);
  if (!relay.ok()) {
    --threads_;
    return relay.status();
  }
  relay_ = *std::move(relay);
  // The descriptor is the relay's socket now: its send timeout anew.
  if (options_.send_timeout.count() > 0) SetTimeout(fd_, SO_SNDTIMEO, options_.send_timeout);
  return identity;
}

void Connection::ThreadDone() {
  bool last;
  {
    std::lock_guard<std::mutex> lock(mu_);
    last = ++threads_done_ == threads_;
    done_cv_.notify_all();
  }
  // The connection lives on until this thread is joined.
  if (last && options_.on_finished) options_.on_finished();
}

// Start names the threads as it makes them, so that they carry their names
// from the start; each thread names itself again, since naming another
// thread writes to /proc, which needs a descriptor, and at the descriptor
// limit there is none.
void Connection::ReaderMain() {
  pthread_setname_np(pthread_self(), "nbd-recv");
  std::string why;
  std::shared_ptr<store::VolumeHandle> volume;
  HandshakeSecurity security;
  if (options_.tls != nullptr) security.start_tls = [this] { return StartTls(); };
  security.access = options_.access;
  Handshake handshake(fd_, &in_, store_, &security);
  try {
    volume = handshake.Run(&why);
  } catch (const std::bad_alloc&) {
    // Options are read into strings of up to 64 KiB: under a memory limit
    // that may fail, and must cost this connection only.
    why = "handshake: out of memory";
    if (options_.stats != nullptr) options_.stats->Refused(Refusal::kMemory);
  }
  handshake_over_.store(true, std::memory_order_release);
  const Negotiated& negotiated = handshake.negotiated();
  if (negotiated.structured_replies) sender_.UseStructuredReplies();
  if (volume && Export(std::move(volume), handshake.writable(), &why)) {
    Transmission transmission(&in_, &pipeline_, &sender_, peer_, negotiated.base_allocation);
    why = transmission.Run();
    requests_ = transmission.requests();
    if (transmission.idle_timed_out() && options_.stats != nullptr) {
      options_.stats->TimedOut(Timeout::kIdle);
    }
  }
  {
    std::lock_guard<std::mutex> lock(mu_);
    close_reason_ = std::move(why);
  }
  ThreadDone();
  sender_.ReaderDone();
}

bool Connection::Export(std::shared_ptr<store::VolumeHandle> volume, bool writable,
                        std::string* why) {
  // Only now: a connection still in its handshake holds no buffer.
  if (!in_.Allocate()) {
    *why = "out of memory for the receive buffer";
    if (options_.stats != nullptr) options_.stats->Refused(Refusal::kMemory);
    return false;
  }
  // An idle connection is normal from here on, unless --nbd-idle-timeout.
  SetTimeout(fd_, SO_RCVTIMEO, options_.idle_timeout);
  pipeline_.Bind(std::move(volume), writable);
  // Over TLS the relay copies every byte anyway: no splicing into its socket.
  const bool tls = tls_on();
  if (pipeline_.zero_copy() && (tls || !sender_.OpenPipe())) pipeline_.DisableZeroCopy();
  Log(LogLevel::kInfo, "nbd_export",
      {{"peer", peer_},
       {"tls", tls ? "on" : "off"},
       {"writable", writable ? "yes" : "no"},
       {"volume", pipeline_.volume()->name()},
       {"zero_copy", pipeline_.zero_copy() ? "on" : "off"},
       {"inline_writes", pipeline_.inline_writes() ? "on" : "off"},
       {"pipe_kib", std::to_string(sender_.pipe_bytes() / 1024)}});
  return true;
}

void Connection::WriterMain() {
  pthread_setname_np(pthread_self(), "nbd-send");
  sender_.Run();
  // The reader ended before Run returned, so its counters are final, and
  // the connection's last send is behind it.
  std::string why;
  bool quiet;
  {
    std::lock_guard<std::mutex> lock(mu_);
    why = cut_reason_.empty() ? close_reason_ : cut_reason_;
    quiet = reader_failed_;  // refused: the server logs nbd_refused
  }
  if (sender_.send_timed_out()) {
    why = absl::StrCat("send timeout: the client took no reply for ",
                       Seconds(options_.send_timeout));
    if (options_.stats != nullptr) options_.stats->TimedOut(Timeout::kSend);
  }
  if (!quiet) {
    const core::Pipeline::Counters counts = pipeline_.counters();
    Log(LogLevel::kInfo, "nbd_closed",
        {{"peer", peer_},
         {"volume", pipeline_.volume() ? pipeline_.volume()->name() : ""},
         {"requests", std::to_string(requests_)},
         {"zero_copy_reads", std::to_string(counts.located_reads)},
         {"inline_writes", std::to_string(counts.inline_writes)},
         {"reason", why}});
  }
  ThreadDone();
}

void Connection::OnAnswered(absl::Span<core::Call* const> calls) {
  if (options_.stats != nullptr) {
    for (const core::Call* c : calls) options_.stats->Answered(c->op, c->status().ok());
  }
  sender_.Queue(calls);
}

}  // namespace cowblk::nbd
