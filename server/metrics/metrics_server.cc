#include "server/metrics/metrics_server.h"

#include <google/protobuf/descriptor.h>
#include <grpcpp/server_builder.h>
#include <prometheus/exposer.h>

#include <exception>

#include "absl/strings/str_cat.h"
#include "server/metrics/build_info.h"
#include "server/metrics/engine_collector.h"
#include "server/metrics/grpc_metrics.h"

namespace cowblk::metrics {

absl::StatusOr<std::unique_ptr<MetricsServer>> MetricsServer::Start(
    const std::string& address,
    std::vector<std::shared_ptr<prometheus::Collectable>> collectables) {
  const size_t colon = address.rfind(':');
  if (colon == std::string::npos || colon == 0) {
    return absl::InvalidArgumentError(
        absl::StrCat("metrics address ", address, ": want host:port"));
  }
  std::unique_ptr<MetricsServer> s(new MetricsServer);
  try {
    // One HTTP thread: scrapes are rare and Collect is cheap.
    s->exposer_ = std::make_unique<prometheus::Exposer>(address, 1);
  } catch (const std::exception& e) {
    // prometheus-cpp reports a failed bind only as an exception.
    return absl::UnavailableError(absl::StrCat("cannot listen on ", address, ": ", e.what()));
  }
  const std::vector<int> ports = s->exposer_->GetListeningPorts();
  if (ports.empty()) return absl::UnavailableError(absl::StrCat("cannot listen on ", address));
  s->address_ = absl::StrCat(address.substr(0, colon), ":", ports[0]);
  for (const auto& c : collectables) s->exposer_->RegisterCollectable(c);
  s->collectables_ = std::move(collectables);
  return s;
}

MetricsServer::~MetricsServer() = default;

void MetricsServer::Add(std::shared_ptr<prometheus::Collectable> collectable) {
  exposer_->RegisterCollectable(collectable);
  collectables_.push_back(std::move(collectable));
}

absl::StatusOr<std::unique_ptr<MetricsServer>> StartCowblkdMetrics(
    const std::string& address, const engine::EngineGroup& engines,
    const std::vector<std::string>& grpc_services, grpc::ServerBuilder* builder,
    MetricsDetail detail) {
  std::vector<const google::protobuf::ServiceDescriptor*> services;
  for (const std::string& name : grpc_services) {
    const auto* s = google::protobuf::DescriptorPool::generated_pool()->FindServiceByName(name);
    if (s == nullptr) return absl::InternalError(absl::StrCat("no descriptor for service ", name));
    services.push_back(s);
  }
  auto grpc_metrics = std::make_shared<GrpcServerMetrics>(services);
  std::vector<const engine::Engine*> engine_list;
  for (const auto& e : engines.engines()) engine_list.push_back(e.get());
  auto server = MetricsServer::Start(
      address, {std::make_shared<EngineCollector>(std::move(engine_list), StoreVolumeName, detail),
                grpc_metrics, std::make_shared<BuildInfoCollector>()});
  if (!server.ok()) return server.status();
  std::vector<std::unique_ptr<grpc::experimental::ServerInterceptorFactoryInterface>> creators;
  creators.push_back(grpc_metrics->InterceptorFactory());
  builder->experimental().SetInterceptorCreators(std::move(creators));
  return server;
}

}  // namespace cowblk::metrics
