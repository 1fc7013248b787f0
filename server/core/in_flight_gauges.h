// Requests in flight and the buffer bytes they hold, by transport: the
// gauges behind cowblk_requests_in_flight{transport} and
// cowblk_request_bytes_in_flight{transport} (docs/metrics.md, "Byte budget
// metrics"). Every Pipeline with a Budget counts its calls here, from Begin
// to Finish (an answer written or dropped), with the bytes it took from the
// budget: summed over the transports, the bytes are Budget::used().
//
// The transports are a fixed set, named as PipelineOptions::transport names
// them; any other name counts as `other`. Each gauge is a relaxed atomic:
// no lock, no lookup on the I/O path (the pipeline resolves its transport
// once).
//
// Thread-safety: any thread.

#ifndef COWBLK_SERVER_CORE_IN_FLIGHT_GAUGES_H_
#define COWBLK_SERVER_CORE_IN_FLIGHT_GAUGES_H_

#include <array>
#include <atomic>
#include <cstdint>
#include <string_view>

namespace cowblk::core {

class InFlightGauges {
 public:
  // session (the gRPC Session stream), read, write and flush (the gRPC
  // Read, Write and Flush calls), nbd (NBD connections), other.
  static constexpr int kTransports = 6;
  // The index of a transport name; `other` for a name not in the set.
  static int Of(std::string_view transport);
  // The label value of index `t`. REQUIRES: 0 <= t < kTransports.
  static const char* Name(int t);

  // A call of transport `t` began (holding `bytes`), or, with negative
  // values, ended.
  void Add(int t, int64_t calls, int64_t bytes) {
    calls_[t].fetch_add(calls, std::memory_order_relaxed);
    bytes_[t].fetch_add(bytes, std::memory_order_relaxed);
  }
  int64_t calls(int t) const { return calls_[t].load(std::memory_order_relaxed); }
  int64_t bytes(int t) const { return bytes_[t].load(std::memory_order_relaxed); }

 private:
  std::array<std::atomic<int64_t>, kTransports> calls_{};
  std::array<std::atomic<int64_t>, kTransports> bytes_{};
};

}  // namespace cowblk::core

#endif  // COWBLK_SERVER_CORE_IN_FLIGHT_GAUGES_H_
