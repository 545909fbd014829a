// Serves a metrics Registry over HTTP/1.1: /metrics (text format 0.0.4) and /healthz.
// Runs on the http::Server's threads; a slow or hostile client never blocks training,
// which only touches atomics.
#pragma once

#include <string>

#include "xlhost/core/http/http_server.hpp"
#include "xlhost/core/metrics/metrics_registry.hpp"

namespace xlhost::core::metrics {

using http::ListenAddress;
using http::parse_listen_address;

// The response to one request head (through its blank line): a pure function of the
// bytes, apart from the sockets, so that it can be fuzzed.
std::string answer_request(const std::string& request, const Registry& registry);

class MetricsServer {
 public:
  // Throws UserError when the address cannot be bound.
  MetricsServer(const Registry& registry, const ListenAddress& address);

  int port() const { return server_.port(); }
  std::string url() const { return server_.base_url() + "/metrics"; }

 private:
  http::Server server_;
};

}  // namespace xlhost::core::metrics
