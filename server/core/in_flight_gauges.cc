#include "server/core/in_flight_gauges.h"

namespace cowblk::core {
namespace {

constexpr const char* kNames[InFlightGauges::kTransports] = {"session", "read", "write",
                                                             "flush",   "nbd",  "other"};

}  // namespace

int InFlightGauges::Of(std::string_view transport) {
  for (int t = 0; t < kTransports - 1; ++t) {
    if (transport == kNames[t]) return t;
  }
  return kTransports - 1;
}

const char* InFlightGauges::Name(int t) { return kNames[t]; }

}  // namespace cowblk::core
