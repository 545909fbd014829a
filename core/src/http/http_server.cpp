#include "xlhost/core/http/http_server.hpp"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cerrno>
#include <chrono>
#include <cstring>

#include "xlhost/core/util/error.hpp"

namespace xlhost::core::http {

bool ListenAddress::is_loopback() const {
  return host == "localhost" || host == "::1" || host.rfind("127.", 0) == 0;
}

std::string ListenAddress::to_string() const {
  return (is_ipv6() ? "[" + host + "]" : host) + ":" + std::to_string(port);
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
// A client that reads its answer slowly holds a worker no longer than this (a trickle of
// reads keeps each send from timing out, so the socket timeout alone does not end it).
constexpr int kWriteDeadlineMs = 10000;
constexpr size_t kMaxResponseBytes = size_t{64} << 20;

void send_all(int fd, const std::string& data) {
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::milliseconds(kWriteDeadlineMs);
  size_t sent = 0;
  while (sent < data.size() && std::chrono::steady_clock::now() < deadline) {
    ssize_t n = ::send(fd, data.data() + sent, data.size() - sent, MSG_NOSIGNAL);
    if (n <= 0) return;  // client gone or send timeout: nothing more to do for it
    sent += static_cast<size_t>(n);
  }
}

const char* reason(int status) {
  switch (status) {
    case 200: return "OK";
    case 100: return "Continue";
    case 400: return "Bad Request";
    case 403: return "Forbidden";
    case 404: return "Not Found";
    case 405: return "Method Not Allowed";
    case 411: return "Length Required";
    case 413: return "Content Too Large";
    case 431: return "Request Header Fields Too Large";
    case 500: return "Internal Server Error";
    case 503: return "Service Unavailable";
  }
  return "Unknown";
}

int hex_value(char c) {
  if (c >= '0' && c <= '9') return c - '0';
  if (c >= 'a' && c <= 'f') return c - 'a' + 10;
  if (c >= 'A' && c <= 'F') return c - 'A' + 10;
  return -1;
}

// %XX and (in queries) '+'; nothing for a malformed escape.
std::optional<std::string> percent_decode(const std::string& text, bool plus_is_space) {
  std::string out;
  for (size_t i = 0; i < text.size(); ++i) {
    if (text[i] == '%') {
      if (i + 2 >= text.size()) return std::nullopt;
      const int hi = hex_value(text[i + 1]), lo = hex_value(text[i + 2]);
      if (hi < 0 || lo < 0) return std::nullopt;
      out += static_cast<char>(hi * 16 + lo);
      i += 2;
    } else {
      out += plus_is_space && text[i] == '+' ? ' ' : text[i];
    }
  }
  return out;
}

}  // namespace

std::string response(int status, const std::string& content_type, const std::string& body, bool head_only) {
  return "HTTP/1.1 " + std::to_string(status) + " " + reason(status) + "\r\nContent-Type: " + content_type +
         "\r\nContent-Length: " + std::to_string(body.size()) + "\r\nCache-Control: no-store\r\nConnection: close\r\n\r\n" +
         (head_only ? "" : body);
}

std::optional<Request> parse_request(const std::string& head) {
  const auto line_end = head.find("\r\n");
  const auto first_space = head.find(' ');
  const auto second_space = first_space == std::string::npos ? first_space : head.find(' ', first_space + 1);
  if (first_space == std::string::npos || second_space == std::string::npos || second_space > line_end)
    return std::nullopt;
  Request r;
  r.method = head.substr(0, first_space);
  const std::string target = head.substr(first_space + 1, second_space - first_space - 1);
  const auto question = target.find('?');
  const auto path = percent_decode(target.substr(0, question), false);
  if (!path) return std::nullopt;
  r.path = *path;
  const auto head_end = head.find("\r\n\r\n");
  for (size_t start = line_end + 2; line_end != std::string::npos && start < std::min(head_end, head.size());) {
    const size_t end = std::min(head.find("\r\n", start), head.size());
    const std::string field = head.substr(start, end - start);
    const auto colon = field.find(':');
    if (colon != std::string::npos) {
      std::string name = field.substr(0, colon);
      for (auto& c : name) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
      const auto value = field.find_first_not_of(" \t", colon + 1);
      r.headers[name] = value == std::string::npos ? "" : field.substr(value, field.find_last_not_of(" \t\r") + 1 - value);
    }
    start = end + 2;
  }
  if (head_end != std::string::npos) r.body = head.substr(head_end + 4);
  if (question != std::string::npos) {
    const std::string query = target.substr(question + 1);
    for (size_t start = 0; start <= query.size();) {
      const size_t end = std::min(query.find('&', start), query.size());
      const std::string pair = query.substr(start, end - start);
      const auto equals = pair.find('=');
      const auto key = percent_decode(pair.substr(0, equals), true);
      const auto value = percent_decode(equals == std::string::npos ? "" : pair.substr(equals + 1), true);
      if (!key || !value) return std::nullopt;
      if (!key->empty()) r.query[*key] = *value;
      start = end + 1;
    }
  }
  return r;
}

std::string answer_read_only(const std::string& head, const std::function<std::string(const Request&)>& route) {
  const auto request = parse_request(head);
  if (!request) return response(400, "text/plain", "bad request line\n");
  if (request->method != "GET" && request->method != "HEAD") return response(405, "text/plain", "only GET and HEAD\n");
  return route(*request);
}

Server::Server(const ListenAddress& address, const std::string& what, Handler handler, size_t max_body_bytes,
               Refusal refusal)
    : address_(address), handler_(std::move(handler)), max_body_bytes_(max_body_bytes), refusal_(std::move(refusal)) {
  if (!refusal_) refusal_ = [](int status, const std::string& message) { return response(status, "text/plain", message + "\n"); };
  const bool v6 = address.is_ipv6();
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
  if (!parsed) throw UserError(what + ": \"" + address.host + "\" is not a numeric IP address");
  listen_fd_ = socket(v6 ? AF_INET6 : AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  int one = 1;
  setsockopt(listen_fd_, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
  if (listen_fd_ < 0 || bind(listen_fd_, reinterpret_cast<sockaddr*>(&storage), length) != 0 ||
      listen(listen_fd_, 64) != 0) {
    const std::string why = std::strerror(errno);
    if (listen_fd_ >= 0) close(listen_fd_);
    throw UserError(what + ": cannot listen on " + address.host + ":" + std::to_string(address.port) + " (" + why +
                    "); pick another address, 127.0.0.1:0 for any free port");
  }
  getsockname(listen_fd_, reinterpret_cast<sockaddr*>(&storage), &length);
  port_ = ntohs(v6 ? reinterpret_cast<sockaddr_in6*>(&storage)->sin6_port
                   : reinterpret_cast<sockaddr_in*>(&storage)->sin_port);
  acceptor_ = std::thread([this] { accept_loop(); });
}

Server::~Server() {
  stopping_ = true;
  if (acceptor_.joinable()) acceptor_.join();
  close(listen_fd_);
  std::lock_guard<std::mutex> lock(connections_mutex_);
  for (auto& c : connections_) c.thread.join();  // each ends within its I/O timeout
}

void Server::accept_loop() {
  while (!stopping_) {
    pollfd p{listen_fd_, POLLIN, 0};
    if (poll(&p, 1, 100) <= 0) continue;
    int fd = accept4(listen_fd_, nullptr, nullptr, SOCK_CLOEXEC);
    if (fd < 0) continue;
    timeval timeout{kIoTimeoutMs / 1000, 0};
    setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &timeout, sizeof timeout);
    setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &timeout, sizeof timeout);
    if (active_ >= kMaxConnections) {
      send_all(fd, response(503, "text/plain", "too many connections\n"));
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

namespace {

// Answers and closes a request whose input is not all read: closing with unread input would
// reset the connection before the client reads the answer, so stop writing, then discard
// what is still coming, within limits.
void refuse(int fd, const std::string& answer, std::chrono::steady_clock::time_point deadline) {
  send_all(fd, answer);
  shutdown(fd, SHUT_WR);
  char buffer[4096];
  size_t drained = 0;
  for (ssize_t n; drained < (size_t{16} << 20) && std::chrono::steady_clock::now() < deadline &&
                  (n = recv(fd, buffer, sizeof buffer, 0)) > 0;)
    drained += static_cast<size_t>(n);
}

// Appends what the client sends until `done(request)` or the deadline; false when it stopped.
template <typename Done>
bool receive_until(int fd, std::string& request, std::chrono::steady_clock::time_point deadline, size_t limit, Done done) {
  char buffer[65536];
  while (!done()) {
    if (request.size() > limit || std::chrono::steady_clock::now() > deadline) return false;  // a slow client only costs itself
    ssize_t n = recv(fd, buffer, sizeof buffer, 0);
    if (n <= 0) return false;
    request.append(buffer, static_cast<size_t>(n));
  }
  return true;
}

}  // namespace

bool Server::read_body(int fd, std::string& request, size_t head_end) {
  if (max_body_bytes_ == 0) return true;  // a read-only site: its handler answers a POST 405
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::milliseconds(kIoTimeoutMs);
  const auto head = parse_request(request.substr(0, head_end + 4));
  if (!head) return true;  // the handler answers 400
  const auto length = head->headers.find("content-length");
  if (head->headers.count("transfer-encoding")) {
    refuse(fd, refusal_(411, "send the body with a Content-Length"), deadline);
    return false;
  }
  if (length == head->headers.end()) return true;
  size_t bytes = 0;
  try {
    size_t used = 0;
    bytes = std::stoull(length->second, &used);
    if (used != length->second.size()) throw std::invalid_argument("length");
  } catch (const std::exception&) {
    refuse(fd, refusal_(400, "Content-Length is not a number"), deadline);
    return false;
  }
  if (bytes > max_body_bytes_) {
    refuse(fd, refusal_(413, "the body has " + std::to_string(bytes) + " bytes; this server takes at most " +
                              std::to_string(max_body_bytes_)),
           deadline);
    return false;
  }
  const auto expect = head->headers.find("expect");
  if (expect != head->headers.end() && expect->second == "100-continue" && request.size() < head_end + 4 + bytes)
    send_all(fd, "HTTP/1.1 100 Continue\r\n\r\n");
  const size_t total = head_end + 4 + bytes;
  if (!receive_until(fd, request, deadline, total, [&] { return request.size() >= total; })) return false;
  request.resize(total);
  return true;
}

void Server::serve(int fd) {
  std::string request;
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::milliseconds(kIoTimeoutMs);
  if (!receive_until(fd, request, deadline, kMaxRequestBytes, [&] { return request.find("\r\n\r\n") != std::string::npos; })) {
    if (request.size() > kMaxRequestBytes) refuse(fd, refusal_(431, "request too large"), deadline);
    return;
  }
  const size_t head_end = request.find("\r\n\r\n");
  if (head_end > kMaxRequestBytes) {
    refuse(fd, refusal_(431, "request too large"), deadline);
    return;
  }
  if (!read_body(fd, request, head_end)) return;
  const auto answer = handler_(request);
  if (answer.size() > kMaxResponseBytes)
    send_all(fd, response(500, "text/plain", "the answer would have " + std::to_string(answer.size()) +
                                                 " bytes, more than the server's limit of " +
                                                 std::to_string(kMaxResponseBytes) + "\n"));
  else
    send_all(fd, answer);
}

std::string Server::base_url() const {
  return "http://" + ListenAddress{address_.host, port_}.to_string();
}

}  // namespace xlhost::core::http
