// What cowblkd's NBD export counts about its connections: how many are
// open, which were refused and why, which were cut by a timeout, and how
// often accepting paused at the descriptor limit; and its requests, by
// command, and those answered with an error. The metrics collector
// (server/metrics/nbd_collector.h) reads them at scrape time; the export
// only bumps relaxed atomics (per request: one or two, no lock).
//
// Thread-safety: any thread.

#ifndef COWBLK_SERVER_TRANSPORT_NBD_NBD_STATS_H_
#define COWBLK_SERVER_TRANSPORT_NBD_NBD_STATS_H_

#include <array>
#include <atomic>
#include <cstdint>
#include <optional>

#include "server/engine/request.h"

namespace cowblk::nbd {

// Why a connection was closed without being served.
enum class Refusal {
  kLimit,    // --nbd-max-connections were open
  kThreads,  // its threads could not be created (a pids or process limit)
  kMemory,   // its state or buffers could not be allocated
};
inline constexpr int kRefusals = 3;
inline const char* RefusalName(Refusal r) {
  switch (r) {
    case Refusal::kLimit:
      return "limit";
    case Refusal::kThreads:
      return "threads";
    case Refusal::kMemory:
      return "memory";
  }
  return "?";
}

// Which timeout cut a connection.
enum class Timeout {
  kHandshake,  // the whole handshake took longer than its deadline
  kIdle,       // no request and nothing in flight for the idle timeout
  kSend,       // a reply's send made no progress for the send timeout
};
inline constexpr int kTimeouts = 3;
inline const char* TimeoutName(Timeout t) {
  switch (t) {
    case Timeout::kHandshake:
      return "handshake";
    case Timeout::kIdle:
      return "idle";
    case Timeout::kSend:
      return "send";
  }
  return "?";
}

// The command of a request, as a label: the engine's op names (read, write,
// flush, trim, write_zeroes), `other` for a command the export does not
// serve (answered EINVAL).
inline constexpr int kCommands = engine::kOpTypeCount + 1;
inline int CommandIndex(std::optional<engine::OpType> op) {
  return op ? static_cast<int>(*op) : kCommands - 1;
}
inline const char* CommandName(int c) {
  return c == kCommands - 1 ? "other" : engine::OpTypeName(static_cast<engine::OpType>(c));
}

struct NbdStats {
  // Connections being served: accepted, threads running or not yet reaped.
  std::atomic<int64_t> open{0};
  // Connections accepted and served (refused ones not included).
  std::atomic<uint64_t> accepted{0};
  std::array<std::atomic<uint64_t>, kRefusals> refused{};
  std::array<std::atomic<uint64_t>, kTimeouts> timeouts{};
  // accept(2) failed for want of descriptors or memory; accepting paused.
  std::atomic<uint64_t> accept_pauses{0};
  // malloc_trim calls after connections ended (memory given back).
  std::atomic<uint64_t> memory_trims{0};
  // Requests answered, by CommandIndex, and those answered with an error.
  std::array<std::atomic<uint64_t>, kCommands> requests{};
  std::array<std::atomic<uint64_t>, kCommands> errors{};

  void Refused(Refusal r) { refused[static_cast<int>(r)].fetch_add(1, std::memory_order_relaxed); }
  void TimedOut(Timeout t) { timeouts[static_cast<int>(t)].fetch_add(1, std::memory_order_relaxed); }
  void Answered(std::optional<engine::OpType> op, bool ok) {
    const int c = CommandIndex(op);
    requests[c].fetch_add(1, std::memory_order_relaxed);
    if (!ok) errors[c].fetch_add(1, std::memory_order_relaxed);
  }
};

}  // namespace cowblk::nbd

#endif  // COWBLK_SERVER_TRANSPORT_NBD_NBD_STATS_H_
