// The load generator under grpc_bench: keeps a workload's requests in flight
// on a volume of a running cowblkd through BlockService.Session streams.
//
// Each stream is a ClientBidiReactor with a fixed number of slots: a slot
// whose answer arrives picks its next offset and queues its next request;
// the stream writes one request at a time (what the callback API allows).
// No thread per request: reactions run on gRPC's threads. Latency runs from
// queueing a request to reading its answer.
//
// Thread-safety: RunSessionLoad blocks its caller until the run is over; the
// streams' state is guarded by a mutex per stream.

#ifndef COWBLK_BENCH_SESSION_LOAD_H_
#define COWBLK_BENCH_SESSION_LOAD_H_

#include <grpcpp/grpcpp.h>

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "bench/runner.h"

namespace cowblk::bench {

// A channel to `server` that shares no connection with channels of another
// `id` (distinct channel arguments, local subchannel pool), with message
// limits that fit cowblkd's largest requests.
std::shared_ptr<grpc::Channel> MakeChannel(const std::string& server, int id);

struct LoadResult {
  uint64_t ops = 0;  // answered OK
  uint64_t errors = 0;
  std::string first_error;
  double seconds = 0;      // first request to last answer
  double cpu_seconds = 0;  // this process (the client), user + system
  bool exhausted = false;  // first writes: every block was written once
  std::vector<uint64_t> lat_ns;  // per request, sorted
};

// Runs `w` at `depth` requests in flight, spread over one stream per
// channel (at most `depth` streams), against `volume` of `volume_size` bytes
// for `seconds`, or until a request fails or the blocks to write first run
// out. Offsets follow engine_bench's Runner: random ones uniformly, random
// first writes each block once in shuffled order, sequential ones from 0
// (wrapping, except first writes).
LoadResult RunSessionLoad(const std::vector<std::shared_ptr<grpc::Channel>>& channels,
                          const std::string& volume, uint64_t volume_size, const Workload& w,
                          int depth, double seconds, uint64_t seed);

}  // namespace cowblk::bench

#endif  // COWBLK_BENCH_SESSION_LOAD_H_
