#include "server/transport/nbd/connection.h"

#include <pthread.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <unistd.h>

#include "common/log.h"
#include "server/transport/nbd/handshake.h"
#include "server/transport/nbd/transmission.h"

namespace cowblk::nbd {
namespace {
constexpr size_t kRecvBufferBytes = 256 << 10;
}  // namespace

Connection::Connection(int fd, store::Store* store, core::PipelineOptions options)
    : fd_(fd),
      store_(store),
      peer_(options.peer),
      in_(fd, kRecvBufferBytes),
      pipeline_(this, std::move(options)),
      sender_(fd, &pipeline_, peer_) {}

Connection::~Connection() { close(fd_); }

void Connection::Start() {
  reader_ = std::thread([this] { ReaderMain(); });
  writer_ = std::thread([this] { WriterMain(); });
  pthread_setname_np(reader_.native_handle(), "nbd-recv");
  pthread_setname_np(writer_.native_handle(), "nbd-send");
}

void Connection::StopReading() { shutdown(fd_, SHUT_RD); }

void Connection::Cut() { shutdown(fd_, SHUT_RDWR); }

bool Connection::WaitFinished(std::chrono::steady_clock::time_point deadline) {
  std::unique_lock<std::mutex> lock(mu_);
  return done_cv_.wait_until(lock, deadline, [this] { return threads_done_ == 2; });
}

void Connection::WaitFinished() {
  std::unique_lock<std::mutex> lock(mu_);
  done_cv_.wait(lock, [this] { return threads_done_ == 2; });
}

bool Connection::finished() {
  std::lock_guard<std::mutex> lock(mu_);
  return threads_done_ == 2;
}

void Connection::Join() {
  reader_.join();
  writer_.join();
}

void Connection::ReaderMain() {
  std::string why;
  std::shared_ptr<store::VolumeHandle> volume = Handshake(fd_, &in_, store_).Run(&why);
  if (volume) {
    Export(std::move(volume));
    Transmission transmission(&in_, &pipeline_, &sender_, peer_);
    why = transmission.Run();
    requests_ = transmission.requests();
  }
  {
    std::lock_guard<std::mutex> lock(mu_);
    close_reason_ = std::move(why);
    ++threads_done_;
    done_cv_.notify_all();
  }
  sender_.ReaderDone();
}

void Connection::Export(std::shared_ptr<store::VolumeHandle> volume) {
  timeval tv{0, 0};  // an idle connection is normal from here on
  setsockopt(fd_, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
  pipeline_.Bind(std::move(volume), /*writable=*/true);
  if (pipeline_.zero_copy() && !sender_.OpenPipe()) pipeline_.DisableZeroCopy();
  Log(LogLevel::kInfo, "nbd_export",
      {{"peer", peer_},
       {"volume", pipeline_.volume()->name()},
       {"zero_copy", pipeline_.zero_copy() ? "on" : "off"},
       {"inline_writes", pipeline_.inline_writes() ? "on" : "off"},
       {"pipe_kib", std::to_string(sender_.pipe_bytes() / 1024)}});
}

void Connection::WriterMain() {
  sender_.Run();
  // The reader ended before Run returned, so its counters are final, and
  // the connection's last send is behind it.
  std::string why;
  {
    std::lock_guard<std::mutex> lock(mu_);
    why = close_reason_;
  }
  const core::Pipeline::Counters counts = pipeline_.counters();
  Log(LogLevel::kInfo, "nbd_closed",
      {{"peer", peer_},
       {"volume", pipeline_.volume() ? pipeline_.volume()->name() : ""},
       {"requests", std::to_string(requests_)},
       {"zero_copy_reads", std::to_string(counts.located_reads)},
       {"inline_writes", std::to_string(counts.inline_writes)},
       {"reason", why}});
  std::lock_guard<std::mutex> lock(mu_);
  ++threads_done_;
  done_cv_.notify_all();
}

}  // namespace cowblk::nbd
