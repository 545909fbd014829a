// A small HTTP/1.1 server for loopback tools: the metrics endpoint of a run, the
// experiment dashboard (`xlhost exp serve`) and the completions API (`xlhost serve`). One
// thread accepts; each connection gets a thread, a 5 s I/O budget and a 16 KiB limit on
// its request head; at most 16 at once. A body (Content-Length) is read only by a server
// given a body limit. What to answer is the handler's: a pure function of the request
// text (head and body), so it can be tested and fuzzed without sockets.
//
// Not civetweb, which DESIGN.md proposed: Debian's libcivetweb is built with a small
// fixed thread stack, and pthread_create fails in any process with LibTorch's large
// static thread-local storage ("Cannot create threads"), so it cannot start inside xlhost.
#pragma once

#include <atomic>
#include <functional>
#include <list>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <thread>

namespace xlhost::core::http {

struct ListenAddress {
  std::string host;  // "127.0.0.1", "::1", "0.0.0.0", ...
  int port = 0;      // 0 = pick a free port
  bool is_loopback() const;
  bool is_ipv6() const { return host.find(':') != std::string::npos; }
  std::string to_string() const;  // "host:port", "[v6]:port": what parse_listen_address reads
};

// Parses "host:port" or "[v6]:port"; `what` names the setting in errors.
ListenAddress parse_listen_address(const std::string& text, const std::string& what);

struct Request {
  std::string method, path;                  // path without the query, percent-decoded
  std::map<std::string, std::string> query;  // decoded
  std::map<std::string, std::string> headers;  // names lower-cased
  std::string body;
  bool head_only() const { return method == "HEAD"; }
};

// The request line, headers and body of a request; nothing when the line is malformed.
std::optional<Request> parse_request(const std::string& head);

// The answer of a read-only site: 400 for a malformed request line, 405 for a method other
// than GET and HEAD, else route(request) (which leaves out the body for request.head_only()).
std::string answer_read_only(const std::string& head, const std::function<std::string(const Request&)>& route);

// A whole response with Content-Length and Connection: close; head_only leaves out the body.
std::string response(int status, const std::string& content_type, const std::string& body, bool head_only = false);

class Server {
 public:
  using Handler = std::function<std::string(const std::string& request)>;
  // `what` names the server in errors ("metrics", "exp serve"). UserError when the
  // address cannot be bound. A request whose body is larger than max_body_bytes is
  // answered 413 without reaching the handler (0: no bodies). `refusal` words the answers
  // the server gives itself (413, 431, ...); default text/plain.
  using Refusal = std::function<std::string(int status, const std::string& message)>;
  Server(const ListenAddress& address, const std::string& what, Handler handler, size_t max_body_bytes = 0,
         Refusal refusal = {});
  ~Server();
  Server(const Server&) = delete;
  Server& operator=(const Server&) = delete;

  int port() const { return port_; }
  std::string base_url() const;  // http://host:port

 private:
  void accept_loop();
  void serve(int fd);

  // Reads the body the head announces into `request`; false when the client was answered.
  bool read_body(int fd, std::string& request, size_t head_end);

  ListenAddress address_;
  Handler handler_;
  size_t max_body_bytes_ = 0;
  Refusal refusal_;
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

}  // namespace xlhost::core::http
