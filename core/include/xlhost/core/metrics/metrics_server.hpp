// Serves a metrics Registry over HTTP/1.1: /metrics (text format 0.0.4) and /healthz.
// Runs on its own threads; a slow or hostile client never blocks training, which only
// touches atomics.
//
// Not civetweb, which DESIGN.md proposed: Debian's libcivetweb is built with a small
// fixed thread stack, and pthread_create fails in any process with LibTorch's large
// static thread-local storage ("Cannot create threads"), so it cannot start inside xlhost.
#pragma once

#include <atomic>
#include <list>
#include <memory>
#include <mutex>
#include <string>
#include <thread>

#include "xlhost/core/metrics/metrics_registry.hpp"

namespace xlhost::core::metrics {

struct ListenAddress {
  std::string host;  // "127.0.0.1", "::1", "0.0.0.0", ...
  int port = 0;      // 0 = pick a free port
  bool is_loopback() const;
};

// Parses "host:port" or "[v6]:port"; `what` names the setting in errors.
ListenAddress parse_listen_address(const std::string& text, const std::string& what);

// The response to one request head (through its blank line): a pure function of the
// bytes, apart from the sockets, so that it can be fuzzed.
std::string answer_request(const std::string& request, const Registry& registry);

class MetricsServer {
 public:
  // Throws UserError when the address cannot be bound.
  MetricsServer(const Registry& registry, const ListenAddress& address);
  ~MetricsServer();
  MetricsServer(const MetricsServer&) = delete;
  MetricsServer& operator=(const MetricsServer&) = delete;

  int port() const { return port_; }
  std::string url() const;  // http://host:port/metrics

 private:
  void accept_loop();
  void serve(int fd);

  const Registry& registry_;
  ListenAddress address_;
  int listen_fd_ = -1;
  int port_ = 0;
  std::atomic<bool> stopping_{false};
  std::atomic<int> active_{0};
  std::mutex connections_mutex_;
  struct Connection {
    std::thread thread;
    std::shared_ptr<std::atomic<bool>> done;
  };
  std::list<Connection> connections_;  // finished ones are joined on the next accept, the rest on stop
  std::thread acceptor_;
};

}  // namespace xlhost::core::metrics
