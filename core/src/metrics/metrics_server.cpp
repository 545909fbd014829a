#include "xlhost/core/metrics/metrics_server.hpp"

namespace xlhost::core::metrics {

std::string answer_request(const std::string& head, const Registry& registry) {
  return http::answer_read_only(head, [&](const http::Request& request) {
    const bool head_only = request.head_only();
    if (request.path == "/metrics")
      return http::response(200, "text/plain; version=0.0.4; charset=utf-8", registry.serialize(), head_only);
    if (request.path == "/healthz") return http::response(200, "text/plain; charset=utf-8", "ok\n", head_only);
    return http::response(404, "text/plain", "not found; try /metrics or /healthz\n", head_only);
  });
}

MetricsServer::MetricsServer(const Registry& registry, const ListenAddress& address)
    : server_(address, "metrics", [&registry](const std::string& head) { return answer_request(head, registry); }) {}

}  // namespace xlhost::core::metrics
