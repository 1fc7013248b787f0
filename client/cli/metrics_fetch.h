// What `cowblk top` reads: one scrape of a cowblkd metrics endpoint
// (Prometheus text format over plain HTTP), as samples.
//
// A URL is http://HOST:PORT[/PATH] or HOST:PORT (path /metrics). HOST is a
// name or an address (getaddrinfo); HTTPS is not spoken (cowblkd's endpoint
// is plain HTTP). A fetch has a deadline of its own and reads at most
// 64 MiB, so a wrong URL fails with a clear error instead of hanging or
// filling memory.

#ifndef COWBLK_CLIENT_CLI_METRICS_FETCH_H_
#define COWBLK_CLIENT_CLI_METRICS_FETCH_H_

#include <chrono>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "common/prometheus_text.h"

namespace cowblk::cli {

using MetricSample = PrometheusSample;

// GETs `url` and parses the body. INVALID_ARGUMENT for a URL that is not
// one, UNAVAILABLE when the endpoint cannot be reached or does not answer
// 200 within `timeout`, DATA_LOSS for a body that is not the text format.
absl::StatusOr<std::vector<MetricSample>> FetchMetrics(const std::string& url,
                                                       std::chrono::milliseconds timeout);

}  // namespace cowblk::cli

#endif  // COWBLK_CLIENT_CLI_METRICS_FETCH_H_
