#include "client/src/nbd_lane.h"

#include <string>
#include <utility>

#include "absl/strings/str_cat.h"
#include "client/src/export_lookup.h"
#include "client/src/nbd_call.h"
#include "client/src/volume_core.h"

namespace cowblk::internal {
namespace {

// Where the NBD export of a volume opened with `options` is dialled.
std::string NbdHost(const ClientOptions& client, const VolumeOptions& options) {
  if (!options.nbd) return "";
  // NBD carries no token: cowblkd's export authorizes by the client
  // certificate (and, without TLS, it is off when tokens are on).
  if (!client.token.empty() && (!UsesTls(client) || client.tls_cert_file.empty())) return "";
  return NbdHostOf(client.target);
}

// The export's TLS when the client uses TLS; null without (or when its
// files cannot be loaded: the gRPC channel fails on them too).
std::shared_ptr<const NbdTls> TlsFor(const ClientOptions& client, const std::string& host) {
  if (!UsesTls(client) || host.empty()) return nullptr;
  absl::StatusOr<std::shared_ptr<const NbdTls>> tls = NbdTls::Create(client, host);
  return tls.ok() ? *std::move(tls) : nullptr;
}

}  // namespace

NbdLane::NbdLane(VolumeCore* core, ClientCore* client, std::string volume, uint64_t size,
                 uint32_t port, const VolumeOptions& options)
    : core_(core),
      client_(client),
      volume_(std::move(volume)),
      size_(size),
      host_(NbdHost(client->options(), options)),
      tls_(TlsFor(client->options(), host_)),
      tls_wanted_(UsesTls(client->options())),
      min_read_bytes_(options.nbd_min_read_bytes),
      min_write_bytes_(options.nbd_min_write_bytes),
      max_backoff_(client->options().max_backoff),
      port_(port) {}

void NbdLane::QueuedLocked(const Chunk& c) {
  // A volume that never moves such chunks never dials the export.
  wanted_ = wanted_ || ForNbd(c);
}

void NbdLane::PrepareLocked(Clock::time_point now, Actions* actions) {
  if (nbd_ || lookup_ || !wanted_ || host_.empty() || (tls_wanted_ && !tls_) ||
      core_->closing_locked() || now < retry_at_) {
    return;
  }
  if (stale_) {
    lookup_ = std::make_shared<ExportLookup>(this, client_, volume_);
    ++live_;
    actions->starts.push_back(lookup_);
    return;
  }
  if (port_ == 0) return;  // no export, as the volume was opened
  nbd_ = std::make_shared<NbdCall>(this, host_, std::to_string(port_), volume_, size_, tls_);
  ready_ = false;
  ++live_;
  actions->starts.push_back(nbd_);
}

bool NbdLane::TakeLocked(Chunk* c, Clock::time_point now, Actions* actions) {
  (void)now;
  if (!ready_ || c->nbd_refused || !ForNbd(*c) || (c->fua && !fua_)) return false;
  c->state = Chunk::State::kClaimed;
  c->link = nbd_.get();
  ++in_flight_;
  ++requests_;
  actions->sends.emplace_back(nbd_, Outgoing{c, grpc::Slice()});
  return true;
}

bool NbdLane::ReleaseExpiredLocked(Chunk* c, Actions* actions, std::string* why) {
  (void)why;
  // Only the connection's end frees it (OnGone fails it then).
  if (nbd_ && c->link == nbd_.get()) actions->cancels.push_back(nbd_);
  return false;
}

void NbdLane::CloseLocked(Actions* actions) {
  if (nbd_) actions->cancels.push_back(nbd_);
  if (lookup_) actions->cancels.push_back(lookup_);
}

void NbdLane::AddStatsLocked(VolumeStats* stats) const {
  stats->nbd_requests = requests_;
  stats->nbd_connections = connections_;
}

void NbdLane::OnReady(NbdCall* nbd, bool fua) {
  Actions actions;
  {
    std::lock_guard<std::mutex> lock(core_->mu());
    if (nbd_.get() != nbd) return;
    ready_ = true;
    fua_ = fua;
    backoff_ = std::chrono::milliseconds(0);
    ++connections_;
    core_->DispatchLocked(Clock::now(), &actions);
  }
  core_->Run(&actions);
}

void NbdLane::OnAnswer(NbdCall* nbd, Chunk* c, const absl::Status& answer) {
  Actions actions;
  {
    std::lock_guard<std::mutex> lock(core_->mu());
    --in_flight_;
    if (answer.ok() || core_->closing_locked()) {
      core_->CompleteLocked(c, answer, &actions);
    } else {
      // Over a stream the server says what went wrong in its own words.
      c->nbd_refused = true;
      core_->RequeueLocked({c}, answer);
      if (answer.code() == absl::StatusCode::kUnavailable && nbd_.get() == nbd) {
        actions.cancels.push_back(nbd_);
      }
    }
    core_->DispatchLocked(Clock::now(), &actions);
  }
  core_->Run(&actions);
}

void NbdLane::OnGone(NbdCall* nbd, std::vector<Chunk*> leftovers, const absl::Status& why) {
  Actions actions;
  {
    std::lock_guard<std::mutex> lock(core_->mu());
    const Clock::time_point now = Clock::now();
    if (nbd_.get() == nbd) {
      // Looked up again at once after a connection that served (the server
      // restarted, say); after one that never did, later and later.
      if (ready_) {
        backoff_ = std::chrono::milliseconds(0);
        retry_at_ = now;
      } else {
        BackOffLocked(now);
      }
      nbd_.reset();
      ready_ = false;
      stale_ = true;
    }
    std::vector<Chunk*> retry;
    for (Chunk* c : leftovers) {
      --in_flight_;
      if (c->call->deadline <= now) {
        core_->CompleteLocked(
            c,
            absl::DeadlineExceededError(absl::StrCat(
                "deadline exceeded; sent over the NBD export, which did not answer (",
                why.message(), ")")),
            &actions);
      } else if (core_->closing_locked()) {
        core_->CompleteLocked(c, why, &actions);
      } else {
        retry.push_back(c);
      }
    }
    if (!retry.empty()) core_->RequeueLocked(std::move(retry), why);
    core_->DispatchLocked(now, &actions);
  }
  core_->Run(&actions);
  // Last: Close() may destroy this once the count drops.
  std::lock_guard<std::mutex> lock(core_->mu());
  GoneOneLocked();
}

void NbdLane::OnLookedUp(ExportLookup* lookup, const absl::Status& status,
                         const v1::Volume& volume) {
  Actions actions;
  {
    std::lock_guard<std::mutex> lock(core_->mu());
    const Clock::time_point now = Clock::now();
    if (lookup_.get() == lookup) lookup_.reset();
    if (status.ok()) {
      // Before this lane writes to the server that answered: a restart
      // that may have lost acknowledged writes arms DATA_LOSS for the next
      // flush, even if no stream ever talks to the new server first.
      core_->LearnEpochLocked(volume.epoch());
      port_ = volume.nbd_port();
    }
    if (status.ok() && port_ != 0) {
      stale_ = false;  // dialled at once
    } else {
      BackOffLocked(now);  // and asked again then, while chunks want the lane
    }
    core_->DispatchLocked(now, &actions);
  }
  core_->Run(&actions);
  std::lock_guard<std::mutex> lock(core_->mu());
  GoneOneLocked();
}

bool NbdLane::ForNbd(const Chunk& c) const {
  return (c.kind == OpKind::kRead && c.length >= min_read_bytes_) ||
         (c.kind == OpKind::kWrite && c.length >= min_write_bytes_);
}

void NbdLane::BackOffLocked(Clock::time_point now) {
  backoff_ = NextBackoff(backoff_, max_backoff_);
  retry_at_ = now + backoff_;
}

void NbdLane::GoneOneLocked() {
  --live_;
  core_->LinkGoneLocked();
}

}  // namespace cowblk::internal
