#include "xlhost/core/metrics/metrics_server.hpp"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cerrno>
#include <chrono>
#include <cstring>

#include "xlhost/core/util/error.hpp"

namespace xlhost::core::metrics {

bool ListenAddress::is_loopback() const {
  return host == "localhost" || host == "::1" || host.rfind("127.", 0) == 0;
}

ListenAddress parse_listen_address(const std::string& text, const std::string& what) {
  ListenAddress a;
  std::string port_text;
  if (!text.empty() && text[0] == '[') {
    auto close = text.find(']');
    if (close == std::string::npos || close + 1 >= text.size() || text[close + 1] != ':')
      throw UserError(what + ": \"" + text + "\" is not [ipv6]:port");
    a.host = text.substr(1, close - 1);
    port_text = text.substr(close + 2);
  } else {
    auto colon = text.rfind(':');
    if (colon == std::string::npos || colon == 0) throw UserError(what + ": \"" + text + "\" is not host:port");
    a.host = text.substr(0, colon);
    port_text = text.substr(colon + 1);
  }
  try {
    size_t used = 0;
    a.port = std::stoi(port_text, &used);
    if (used != port_text.size() || a.port < 0 || a.port > 65535) throw std::out_of_range("port");
  } catch (const std::exception&) {
    throw UserError(what + ": \"" + port_text + "\" is not a port number 0-65535");
  }
  return a;
}

namespace {

constexpr int kMaxConnections = 16;
constexpr size_t kMaxRequestBytes = 16384;
constexpr int kIoTimeoutMs = 5000;

void send_all(int fd, const std::string& data) {
  size_t sent = 0;
  while (sent < data.size()) {
    ssize_t n = ::send(fd, data.data() + sent, data.size() - sent, MSG_NOSIGNAL);
    if (n <= 0) return;  // client gone or send timeout: nothing more to do for it
    sent += static_cast<size_t>(n);
  }
}

std::string response(int status, const char* reason, const std::string& content_type, const std::string& body,
                     bool head_only = false) {
  return "HTTP/1.1 " + std::to_string(status) + " " + reason + "\r\nContent-Type: " + content_type +
         "\r\nContent-Length: " + std::to_string(body.size()) + "\r\nConnection: close\r\n\r\n" +
         (head_only ? "" : body);
}

}  // namespace

MetricsServer::MetricsServer(const Registry& registry, const ListenAddress& address)
    : registry_(registry), address_(address) {
  const bool v6 = address.host.find(':') != std::string::npos;
  sockaddr_storage storage{};
  socklen_t length;
  bool parsed;
  if (v6) {
    auto* a = reinterpret_cast<sockaddr_in6*>(&storage);
    a->sin6_family = AF_INET6;
    a->sin6_port = htons(static_cast<uint16_t>(address.port));
    parsed = inet_pton(AF_INET6, address.host.c_str(), &a->sin6_addr) == 1;
    length = sizeof(sockaddr_in6);
  } else {
    auto* a = reinterpret_cast<sockaddr_in*>(&storage);
    a->sin_family = AF_INET;
    a->sin_port = htons(static_cast<uint16_t>(address.port));
    parsed = inet_pton(AF_INET, address.host == "localhost" ? "127.0.0.1" : address.host.c_str(), &a->sin_addr) == 1;
    length = sizeof(sockaddr_in);
  }
  const std::string where = url();
  if (!parsed) throw UserError("metrics.listen: \"" + address.host + "\" is not a numeric IP address");
  listen_fd_ = socket(v6 ? AF_INET6 : AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  int one = 1;
  setsockopt(listen_fd_, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
  if (listen_fd_ < 0 || bind(listen_fd_, reinterpret_cast<sockaddr*>(&storage), length) != 0 ||
      listen(listen_fd_, 64) != 0) {
    const std::string why = std::strerror(errno);
    if (listen_fd_ >= 0) close(listen_fd_);
    throw UserError("metrics: cannot listen on " + address.host + ":" + std::to_string(address.port) + " (" + why +
                    "); pick another address with --metrics-listen, 127.0.0.1:0 for any free port");
  }
  getsockname(listen_fd_, reinterpret_cast<sockaddr*>(&storage), &length);
  port_ = ntohs(v6 ? reinterpret_cast<sockaddr_in6*>(&storage)->sin6_port
                   : reinterpret_cast<sockaddr_in*>(&storage)->sin_port);
  acceptor_ = std::thread([this] { accept_loop(); });
}

MetricsServer::~MetricsServer() {
  stopping_ = true;
  if (acceptor_.joinable()) acceptor_.join();
  close(listen_fd_);
  std::lock_guard<std::mutex> lock(connections_mutex_);
  for (auto& c : connections_) c.thread.join();  // each ends within its I/O timeout
}

void MetricsServer::accept_loop() {
  while (!stopping_) {
    pollfd p{listen_fd_, POLLIN, 0};
    if (poll(&p, 1, 100) <= 0) continue;
    int fd = accept4(listen_fd_, nullptr, nullptr, SOCK_CLOEXEC);
    if (fd < 0) continue;
    timeval timeout{kIoTimeoutMs / 1000, 0};
    setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &timeout, sizeof timeout);
    setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &timeout, sizeof timeout);
    if (active_ >= kMaxConnections) {
      send_all(fd, response(503, "Service Unavailable", "text/plain", "too many connections\n"));
      close(fd);
      continue;
    }
    ++active_;
    std::lock_guard<std::mutex> lock(connections_mutex_);
    // Reap finished connection threads so the list stays short on long runs.
    for (auto it = connections_.begin(); it != connections_.end();) {
      if (*it->done) {
        it->thread.join();
        it = connections_.erase(it);
      } else {
        ++it;
      }
    }
    auto done = std::make_shared<std::atomic<bool>>(false);
    connections_.push_back({std::thread([this, fd, done] {
                              serve(fd);
                              close(fd);
                              --active_;
                              *done = true;
                            }),
                            done});
  }
}

void MetricsServer::serve(int fd) {
  std::string request;
  char buffer[4096];
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::milliseconds(kIoTimeoutMs);
  while (request.find("\r\n\r\n") == std::string::npos) {
    if (request.size() > kMaxRequestBytes) {
      send_all(fd, response(431, "Request Header Fields Too Large", "text/plain", "request too large\n"));
      // Closing with unread input would reset the connection before the client reads
      // the answer: stop writing, then discard what is still coming, within limits.
      shutdown(fd, SHUT_WR);
      size_t drained = 0;
      for (ssize_t n; drained < (1u << 20) && std::chrono::steady_clock::now() < deadline &&
                      (n = recv(fd, buffer, sizeof buffer, 0)) > 0;)
        drained += static_cast<size_t>(n);
      return;
    }
    if (std::chrono::steady_clock::now() > deadline) return;  // a slow client only costs itself
    ssize_t n = recv(fd, buffer, sizeof buffer, 0);
    if (n <= 0) return;
    request.append(buffer, static_cast<size_t>(n));
  }
  send_all(fd, answer_request(request, registry_));
}

std::string answer_request(const std::string& request, const Registry& registry) {
  const auto line_end = request.find("\r\n");
  const auto first_space = request.find(' ');
  const auto second_space = first_space == std::string::npos ? first_space : request.find(' ', first_space + 1);
  if (first_space == std::string::npos || second_space == std::string::npos || second_space > line_end)
    return response(400, "Bad Request", "text/plain", "bad request line\n");
  const std::string method = request.substr(0, first_space);
  std::string path = request.substr(first_space + 1, second_space - first_space - 1);
  path = path.substr(0, path.find('?'));
  if (method != "GET" && method != "HEAD") return response(405, "Method Not Allowed", "text/plain", "only GET and HEAD\n");
  const bool head = method == "HEAD";
  if (path == "/metrics")
    return response(200, "OK", "text/plain; version=0.0.4; charset=utf-8", registry.serialize(), head);
  if (path == "/healthz") return response(200, "OK", "text/plain; charset=utf-8", "ok\n", head);
  return response(404, "Not Found", "text/plain", "not found; try /metrics or /healthz\n", head);
}

std::string MetricsServer::url() const {
  const std::string host = address_.host.find(':') != std::string::npos ? "[" + address_.host + "]" : address_.host;
  return "http://" + host + ":" + std::to_string(port_) + "/metrics";
}

}  // namespace xlhost::core::metrics
