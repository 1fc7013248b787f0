#include "server/metrics/nbd_collector.h"

#include "server/metrics/families.h"

namespace cowblk::metrics {
namespace {

double Read(const std::atomic<uint64_t>& v) {
  return static_cast<double>(v.load(std::memory_order_relaxed));
}

}  // namespace

std::vector<prometheus::MetricFamily> NbdCollector::Collect() const {
  using prometheus::MetricType;
  std::vector<prometheus::MetricFamily> out;
  out.push_back(Family("cowblk_nbd_connections", "NBD connections open (being served)",
                       MetricType::Gauge));
  AddGauge(&out.back(), {}, static_cast<double>(stats_->open.load(std::memory_order_relaxed)));
  out.push_back(Family("cowblk_nbd_connections_total",
                       "NBD connections accepted and served (refused ones not included)",
                       MetricType::Counter));
  AddCounter(&out.back(), {}, Read(stats_->accepted));
  out.push_back(Family("cowblk_nbd_connections_refused_total",
                       "NBD connections closed at once: the connection limit was reached, or "
                       "their threads or memory could not be had",
                       MetricType::Counter));
  for (int r = 0; r < nbd::kRefusals; ++r) {
    AddCounter(&out.back(), {{"reason", nbd::RefusalName(static_cast<nbd::Refusal>(r))}},
               Read(stats_->refused[r]));
  }
  out.push_back(Family("cowblk_nbd_timeouts_total",
                       "NBD connections cut by a timeout: handshake, idle or send",
                       MetricType::Counter));
  for (int t = 0; t < nbd::kTimeouts; ++t) {
    AddCounter(&out.back(), {{"phase", nbd::TimeoutName(static_cast<nbd::Timeout>(t))}},
               Read(stats_->timeouts[t]));
  }
  out.push_back(Family("cowblk_nbd_accept_pauses_total",
                       "Times accepting NBD connections paused for want of descriptors or "
                       "memory (EMFILE, ENFILE, ENOBUFS, ENOMEM)",
                       MetricType::Counter));
  AddCounter(&out.back(), {}, Read(stats_->accept_pauses));
  out.push_back(Family("cowblk_nbd_memory_trims_total",
                       "malloc_trim calls after NBD connections ended (memory given back)",
                       MetricType::Counter));
  AddCounter(&out.back(), {}, Read(stats_->memory_trims));
  out.push_back(Family("cowblk_nbd_requests_total",
                       "NBD requests answered, by command (other: a command the export does "
                       "not serve)",
                       MetricType::Counter));
  for (int c = 0; c < nbd::kCommands; ++c) {
    AddCounter(&out.back(), {{"command", nbd::CommandName(c)}}, Read(stats_->requests[c]));
  }
  out.push_back(Family("cowblk_nbd_request_errors_total",
                       "NBD requests answered with an error, by command", MetricType::Counter));
  for (int c = 0; c < nbd::kCommands; ++c) {
    AddCounter(&out.back(), {{"command", nbd::CommandName(c)}}, Read(stats_->errors[c]));
  }
  return out;
}

}  // namespace cowblk::metrics
