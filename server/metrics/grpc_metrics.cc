#include "server/metrics/grpc_metrics.h"

#include "common/clock.h"
#include "common/handoff.h"
#include "server/metrics/families.h"

namespace cowblk::metrics {
namespace {

using grpc::experimental::InterceptionHookPoints;
using prometheus::MetricFamily;
using prometheus::MetricType;

constexpr int kCodes = 17;  // grpc::StatusCode OK .. UNAUTHENTICATED
// Go's codes.Code.String(), which the standard dashboards and alerts use.
const char* const kCodeNames[kCodes] = {
    "OK",       "Canceled",       "Unknown",          "InvalidArgument",   "DeadlineExceeded",
    "NotFound", "AlreadyExists",  "PermissionDenied", "ResourceExhausted", "FailedPrecondition",
    "Aborted",  "OutOfRange",     "Unimplemented",    "Internal",          "Unavailable",
    "DataLoss", "Unauthenticated"};

// grpc_server_handling_seconds buckets: Go's prometheus.DefBuckets.
constexpr double kBounds[] = {0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10};
constexpr size_t kBoundCount = sizeof kBounds / sizeof kBounds[0];

void Inc(std::atomic<uint64_t>& c) { c.fetch_add(1, std::memory_order_relaxed); }

}  // namespace

struct GrpcServerMetrics::Method {
  std::string service, method, type;
  std::atomic<uint64_t> started{0}, received{0}, sent{0};
  std::atomic<uint64_t> handled[kCodes] = {};
  // Non-cumulative, one per bound plus +Inf.
  std::atomic<uint64_t> buckets[kBoundCount + 1] = {};
  std::atomic<uint64_t> handling_ns{0};

  void Handled(int code, uint64_t ns) {
    Inc(handled[code >= 0 && code < kCodes ? code : 2 /* Unknown */]);
    const double seconds = static_cast<double>(ns) / 1e9;
    size_t i = 0;
    while (i < kBoundCount && seconds > kBounds[i]) ++i;
    Inc(buckets[i]);
    handling_ns.fetch_add(ns, std::memory_order_relaxed);
  }
};

namespace {

class MetricsInterceptor final : public grpc::experimental::Interceptor {
 public:
  explicit MetricsInterceptor(GrpcServerMetrics::Method* m) : m_(m), start_ns_(MonotonicNs()) {
    Inc(m_->started);
    handoff_.Publish();
  }
  ~MetricsInterceptor() override {
    handoff_.Receive();
    if (!handled_.load(std::memory_order_relaxed)) m_->Handled(grpc::StatusCode::CANCELLED, MonotonicNs() - start_ns_);
  }

  void Intercept(grpc::experimental::InterceptorBatchMethods* b) override {
    handoff_.Receive();  // made on the thread that began the call
    // A failed receive (end of the client's stream) comes with no message.
    if (b->QueryInterceptionHookPoint(InterceptionHookPoints::POST_RECV_MESSAGE) &&
        b->GetRecvMessage() != nullptr) {
      Inc(m_->received);
    }
    if (b->QueryInterceptionHookPoint(InterceptionHookPoints::PRE_SEND_MESSAGE)) Inc(m_->sent);
    if (b->QueryInterceptionHookPoint(InterceptionHookPoints::PRE_SEND_STATUS) &&
        !handled_.exchange(true, std::memory_order_relaxed)) {
      m_->Handled(b->GetSendStatus().error_code(), MonotonicNs() - start_ns_);
    }
    // Before Proceed: from then on gRPC may run the next batch, or delete
    // this, on another thread; both begin with Receive().
    handoff_.Publish();
    b->Proceed();
  }

 private:
  GrpcServerMetrics::Method* const m_;
  const uint64_t start_ns_;
  // Batches of one call run on different threads, ordered inside libgrpc
  // where ThreadSanitizer does not see it (common/handoff.h), and the
  // completion op's batch (POST_RECV_CLOSE) may run beside another one: an
  // atomic, so that no order is needed.
  std::atomic<bool> handled_{false};
  HandOff handoff_;
};

}  // namespace

class GrpcServerMetrics::Factory final
    : public grpc::experimental::ServerInterceptorFactoryInterface {
 public:
  explicit Factory(const GrpcServerMetrics* metrics) : metrics_(metrics) {}

  grpc::experimental::Interceptor* CreateServerInterceptor(
      grpc::experimental::ServerRpcInfo* info) override {
    const char* path = info->method();
    if (path == nullptr) return nullptr;
    auto it = metrics_->by_path_.find(path);
    return it == metrics_->by_path_.end() ? nullptr : new MetricsInterceptor(it->second);
  }

 private:
  const GrpcServerMetrics* const metrics_;
};

const std::vector<double>& GrpcServerMetrics::Buckets() {
  static const std::vector<double> bounds(kBounds, kBounds + kBoundCount);
  return bounds;
}

GrpcServerMetrics::GrpcServerMetrics(
    const std::vector<const google::protobuf::ServiceDescriptor*>& services) {
  for (const google::protobuf::ServiceDescriptor* s : services) {
    for (int i = 0; i < s->method_count(); ++i) {
      const google::protobuf::MethodDescriptor* md = s->method(i);
      auto m = std::make_unique<Method>();
      m->service = s->full_name();
      m->method = md->name();
      m->type = md->client_streaming() ? (md->server_streaming() ? "bidi_stream" : "client_stream")
                                       : (md->server_streaming() ? "server_stream" : "unary");
      by_path_["/" + m->service + "/" + m->method] = m.get();
      methods_.push_back(std::move(m));
    }
  }
}

GrpcServerMetrics::~GrpcServerMetrics() = default;

std::unique_ptr<grpc::experimental::ServerInterceptorFactoryInterface>
GrpcServerMetrics::InterceptorFactory() {
  return std::make_unique<Factory>(this);
}

std::vector<MetricFamily> GrpcServerMetrics::Collect() const {
  MetricFamily started =
      Family("grpc_server_started_total", "RPCs started on the server", MetricType::Counter);
  MetricFamily handled =
      Family("grpc_server_handled_total", "RPCs completed on the server, by status code",
             MetricType::Counter);
  MetricFamily handling =
      Family("grpc_server_handling_seconds", "Time from the start of an RPC to its status",
             MetricType::Histogram);
  MetricFamily received = Family("grpc_server_msg_received_total", "Messages received from clients",
                                 MetricType::Counter);
  MetricFamily sent =
      Family("grpc_server_msg_sent_total", "Messages sent to clients", MetricType::Counter);
  const std::vector<double>& bounds = Buckets();
  auto load = [](const std::atomic<uint64_t>& c) {
    return static_cast<double>(c.load(std::memory_order_relaxed));
  };
  for (const auto& m : methods_) {
    const Labels labels = {
        {"grpc_service", m->service}, {"grpc_method", m->method}, {"grpc_type", m->type}};
    AddCounter(&started, labels, load(m->started));
    AddCounter(&received, labels, load(m->received));
    AddCounter(&sent, labels, load(m->sent));
    for (int c = 0; c < kCodes; ++c) {
      Labels with_code = labels;
      with_code.push_back({"grpc_code", kCodeNames[c]});
      AddCounter(&handled, std::move(with_code), load(m->handled[c]));
    }
    uint64_t counts[kBoundCount + 1];
    for (size_t i = 0; i <= kBoundCount; ++i) {
      counts[i] = m->buckets[i].load(std::memory_order_relaxed);
    }
    AddHistogram(&handling, labels, bounds, counts, load(m->handling_ns) / 1e9);
  }
  std::vector<MetricFamily> out;
  for (MetricFamily* f : {&started, &handled, &handling, &received, &sent}) {
    out.push_back(std::move(*f));
  }
  return out;
}

}  // namespace cowblk::metrics
