// The NBD target: one libnbd handle (one connection) per stream, driven by
// nbd_poll in that stream's thread. libnbd runs completion callbacks with
// the handle's lock held, where no nbd_* call on the handle is allowed, so
// the callback only notes the answer; Poll() runs the Done()s (which may
// submit again) once nbd_poll returned.

#include <libnbd.h>

#include <cerrno>
#include <cstring>
#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "bench/loadgen/target.h"

namespace cowblk::bench {
namespace {

struct Answer {
  Completion* c;
  int err;
  int64_t t;
};
// Answers noted by callbacks, per thread: callbacks run in the thread that
// called into the handle, and each stream's handle has its own thread.
thread_local std::vector<Answer> t_answers;

absl::Status NbdError(const std::string& what) {
  const char* e = nbd_get_error();
  const int err = nbd_get_errno();
  std::string msg = absl::StrCat(what, ": ", e ? e : "unknown error");
  if (err == ECONNREFUSED || err == ENOENT || err == ECONNRESET || err == ENOTCONN)
    return absl::UnavailableError(msg);
  return absl::InternalError(msg);
}

class NbdTarget : public Target {
 public:
  ~NbdTarget() override {
    for (nbd_handle* h : handles_) {
      if (h) {
        nbd_shutdown(h, 0);
        nbd_close(h);
      }
    }
  }

  absl::Status Connect(const TargetOptions& o) {
    for (int i = 0; i < o.streams; i++) {
      nbd_handle* h = nbd_create();
      if (!h) return NbdError("nbd_create");
      handles_.push_back(h);
      // nbds:// URIs name their certificates' directory with
      // tls-certificates=DIR (a local file), which libnbd refuses unless
      // allowed: the benchmark's user wrote the URI, so it is.
      if (nbd_set_uri_allow_local_file(h, true) == -1) return NbdError("nbd_set_uri_allow_local_file");
      if (nbd_connect_uri(h, o.uri.c_str()) == -1) return NbdError(o.uri);
      const int64_t size = nbd_get_size(h);
      if (size < 0) return NbdError(o.uri);
      if (i == 0) {
        size_ = static_cast<uint64_t>(size);
        read_only_ = nbd_is_read_only(h) == 1;
        can_flush_ = nbd_can_flush(h) == 1;
        if (o.streams > 1 && nbd_can_multi_conn(h) != 1) {
          notes_ = absl::StrCat(
              "note: the server does not advertise multi-conn; ", o.streams,
              " connections are fine for benchmarking, but writes on one are not guaranteed "
              "visible (or flushed) on another");
        }
      } else if (static_cast<uint64_t>(size) != size_) {
        return absl::InternalError(absl::StrCat(o.uri, ": connections disagree on the size"));
      }
    }
    return absl::OkStatus();
  }

  uint64_t size() const override { return size_; }
  bool read_only() const override { return read_only_; }
  std::string notes() const override { return notes_; }
  bool polled() const override { return true; }

  void Read(uint64_t offset, void* buf, size_t length, Completion* c) override {
    nbd_completion_callback cb = {.callback = OnDone, .user_data = c, .free = nullptr};
    if (nbd_aio_pread(handles_[c->stream], buf, length, offset, cb, 0) == -1) Failed(c);
  }
  void Write(uint64_t offset, const void* buf, size_t length, Completion* c) override {
    nbd_completion_callback cb = {.callback = OnDone, .user_data = c, .free = nullptr};
    if (nbd_aio_pwrite(handles_[c->stream], buf, length, offset, cb, 0) == -1) Failed(c);
  }

  absl::Status Poll(int stream, int timeout_ms) override {
    if (nbd_poll(handles_[stream], timeout_ms) == -1) return NbdError("nbd_poll");
    // Done() may submit, and a submission may complete at once, or let
    // libnbd take in answers that arrived meanwhile: take the list first,
    // and again until it stays empty (an answer left for the next nbd_poll
    // would wait for another one, up to the timeout at the end of a run).
    std::vector<Answer> answers;
    while (!t_answers.empty()) {
      answers.swap(t_answers);
      for (const Answer& a : answers) {
        a.c->Done(a.err, a.err ? std::strerror(a.err) : nullptr, a.t);
      }
      answers.clear();
    }
    t_answers.swap(answers);  // keep the capacity
    return absl::OkStatus();
  }

  absl::Status Flush() override {
    if (!can_flush_ || read_only_) return absl::OkStatus();
    for (nbd_handle* h : handles_) {
      if (nbd_flush(h, 0) == -1) return NbdError("nbd_flush");
    }
    return absl::OkStatus();
  }

 private:
  static int OnDone(void* user_data, int* error) {
    t_answers.push_back({static_cast<Completion*>(user_data), *error, NowNs()});
    return 1;  // retire the command
  }
  static void Failed(Completion* c) {
    const char* e = nbd_get_error();
    const int err = nbd_get_errno();
    c->Done(err ? err : EIO, e ? e : "submission failed", NowNs());
  }

  std::vector<nbd_handle*> handles_;
  uint64_t size_ = 0;
  bool read_only_ = false;
  bool can_flush_ = false;
  std::string notes_;
};

}  // namespace

absl::StatusOr<std::unique_ptr<Target>> OpenNbd(const TargetOptions& o) {
  auto t = std::make_unique<NbdTarget>();
  if (absl::Status s = t->Connect(o); !s.ok()) return s;
  return std::unique_ptr<Target>(std::move(t));
}

absl::StatusOr<std::unique_ptr<Target>> Target::Open(const TargetOptions& o) {
  if (o.uri.rfind("cowblk://", 0) == 0) return OpenCowblk(o);
  if (o.uri.rfind("nbd", 0) == 0) return OpenNbd(o);
  return absl::InvalidArgumentError(absl::StrCat(
      "--target ", o.uri, ": want cowblk://HOST:PORT/VOLUME or an NBD URI (nbd://HOST:PORT/EXPORT, "
      "nbd+unix:///EXPORT?socket=PATH)"));
}

}  // namespace cowblk::bench
