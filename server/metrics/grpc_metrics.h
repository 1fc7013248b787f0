// GrpcServerMetrics: per-method gRPC server metrics under the names the Go
// ecosystem made standard (go-grpc-prometheus):
//   grpc_server_started_total{grpc_service,grpc_method,grpc_type}
//   grpc_server_handled_total{grpc_service,grpc_method,grpc_type,grpc_code}
//   grpc_server_handling_seconds{grpc_service,grpc_method,grpc_type} (histogram)
//   grpc_server_msg_received_total{grpc_service,grpc_method,grpc_type}
//   grpc_server_msg_sent_total{grpc_service,grpc_method,grpc_type}
// grpc_type is unary, client_stream, server_stream or bidi_stream; grpc_code
// is the Go name of the status code (OK, NotFound, ...).
//
// Counted by a server interceptor (InterceptorFactory). Every method of the
// given services gets its counters at construction, every code included, so
// all series exist from the start and a call looks up nothing but its
// method, once, in a map that is never written after construction. Counters
// are relaxed atomics (no locks); Collect reads them at scrape time.
//
// A call counts as handled with the status it sends; a call that ends
// without sending one (the client went away) counts as Canceled, so started
// equals the sum of handled once calls are over.
//
// Thread-safety: everything is thread-safe. The object must outlive the
// server whose interceptor factory it made.

#ifndef COWBLK_SERVER_METRICS_GRPC_METRICS_H_
#define COWBLK_SERVER_METRICS_GRPC_METRICS_H_

#include <google/protobuf/descriptor.h>
#include <grpcpp/support/server_interceptor.h>
#include <prometheus/collectable.h>
#include <prometheus/metric_family.h>

#include <atomic>
#include <memory>
#include <string>
#include <unordered_map>
#include <vector>

namespace cowblk::metrics {

class GrpcServerMetrics : public prometheus::Collectable {
 public:
  explicit GrpcServerMetrics(
      const std::vector<const google::protobuf::ServiceDescriptor*>& services);
  ~GrpcServerMetrics() override;

  std::vector<prometheus::MetricFamily> Collect() const override;

  // For grpc::ServerBuilder::experimental().SetInterceptorCreators. Calls of
  // methods outside the given services are not intercepted.
  std::unique_ptr<grpc::experimental::ServerInterceptorFactoryInterface> InterceptorFactory();

  // Upper bounds of the handling-time buckets, in seconds (Go's defaults).
  static const std::vector<double>& Buckets();

  struct Method;  // the counters of one method

 private:
  class Factory;
  std::vector<std::unique_ptr<Method>> methods_;
  std::unordered_map<std::string, Method*> by_path_;  // "/pkg.Service/Method"
};

}  // namespace cowblk::metrics

#endif  // COWBLK_SERVER_METRICS_GRPC_METRICS_H_
