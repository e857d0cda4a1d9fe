#pragma once
// The HTTP/1.1 connection layer on a real loopback socket: an acceptor on 127.0.0.1 port 0 whose
// connections run run_session + run_watchdog on an io_context of their own thread, and a raw client that
// writes scripted bytes and reads answers with a deadline (so that a hung server fails a test, not CI).
#include <arpa/inet.h>
#include <netinet/in.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <boost/asio/as_tuple.hpp>
#include <boost/asio/co_spawn.hpp>
#include <boost/asio/detached.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <chrono>
#include <map>
#include <stdexcept>
#include <string>
#include <thread>
#include <vector>

#include "harness.hpp"
#include "server/http1_connection.hpp"

namespace mediagate::testing_support {

using tcp = boost::asio::ip::tcp;

// One event loop serving connections from a loopback acceptor. Stop it (or let it go out of scope) before
// reading its services, logs or the fake storage's counters: they belong to the loop's thread.
class loopback_server {
 public:
  explicit loopback_server(service_harness& h) : context_{h.svc, access.logger.get()} {}
  ~loopback_server() { stop(); }

  void start() {
    acceptor_.open(tcp::v4());
    acceptor_.set_option(tcp::acceptor::reuse_address(true));
    acceptor_.bind({boost::asio::ip::make_address_v4("127.0.0.1"), 0});
    acceptor_.listen();
    port_ = acceptor_.local_endpoint().port();
    net::co_spawn(io_, accept_loop(), net::detached);
    thread_ = std::thread([this] { io_.run(); });
  }

  // Closes the acceptor and every connection, and waits for the loop to finish.
  void stop() {
    if (!thread_.joinable()) return;
    net::post(io_, [this] {
      boost::system::error_code ignored;
      acceptor_.close(ignored);
      for (auto* c : std::vector<server::connection*>(context_.open.begin(), context_.open.end())) {
        c->socket.cancel(ignored);
        c->socket.close(ignored);
      }
    });
    thread_.join();
  }

  std::uint16_t port() const { return port_; }
  captured_log access{"access"};

 private:
  net::awaitable<void> accept_loop() {
    while (true) {
      auto [ec, socket] = co_await acceptor_.async_accept(net::as_tuple(net::use_awaitable));
      if (ec) co_return;
      auto conn = std::make_shared<server::connection>(std::move(socket));
      net::co_spawn(io_, server::run_watchdog(conn), net::detached);
      net::co_spawn(io_, server::run_session(conn, context_), net::detached);
    }
  }

  net::io_context io_;
  tcp::acceptor acceptor_{io_};
  server::connection_context context_;
  std::thread thread_;
  std::uint16_t port_ = 0;
};

struct wire_response {
  std::string status_line;
  unsigned status = 0;
  std::multimap<std::string, std::string> headers;  // names lower-cased
  std::string body;
  std::size_t head_bytes = 0;
  std::string header(const std::string& lower_name) const {
    auto it = headers.find(lower_name);
    return it == headers.end() ? std::string() : it->second;
  }
  bool has(const std::string& lower_name) const { return headers.count(lower_name) > 0; }
};

// A client speaking raw bytes over a blocking POSIX socket, every read bounded by a deadline.
class raw_client {
 public:
  static constexpr std::chrono::milliseconds kDeadline{5000};

  explicit raw_client(std::uint16_t port) {
    fd_ = ::socket(AF_INET, SOCK_STREAM, 0);
    if (fd_ < 0) throw std::runtime_error("socket failed");
    sockaddr_in addr{};
    addr.sin_family = AF_INET;
    addr.sin_port = htons(port);
    addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    if (::connect(fd_, reinterpret_cast<sockaddr*>(&addr), sizeof addr) != 0)
      throw std::runtime_error("connect failed");
  }
  ~raw_client() {
    if (fd_ >= 0) ::close(fd_);
  }
  raw_client(const raw_client&) = delete;
  raw_client& operator=(const raw_client&) = delete;

  void send(std::string_view bytes) {
    while (!bytes.empty()) {
      const auto n = ::send(fd_, bytes.data(), bytes.size(), MSG_NOSIGNAL);
      if (n <= 0) throw std::runtime_error("send failed");
      bytes.remove_prefix(static_cast<std::size_t>(n));
    }
  }

  // Reads more bytes into the buffer; false at the end of the stream (or a reset) and on the deadline.
  bool fill(std::chrono::milliseconds deadline = kDeadline) {
    pollfd p{fd_, POLLIN, 0};
    if (::poll(&p, 1, static_cast<int>(deadline.count())) <= 0) {
      timed_out_ = true;
      return false;
    }
    char buf[65536];
    const auto n = ::recv(fd_, buf, sizeof buf, 0);
    if (n <= 0) {
      closed_ = true;
      return false;
    }
    received_ += static_cast<std::size_t>(n);
    buffer_.append(buf, static_cast<std::size_t>(n));
    return true;
  }

  // The next response; `head_request` when it answers HEAD (no body whatever Content-Length says).
  wire_response read_response(bool head_request = false) {
    wire_response r;
    std::size_t end;
    while ((end = buffer_.find("\r\n\r\n")) == std::string::npos)
      if (!fill()) throw std::runtime_error("no complete response head; got: " + buffer_);
    const std::string head = buffer_.substr(0, end + 2);
    r.head_bytes = end + 4;
    std::size_t line_end = head.find("\r\n");
    r.status_line = head.substr(0, line_end);
    r.status = static_cast<unsigned>(std::stoul(r.status_line.substr(9, 3)));
    for (std::size_t pos = line_end + 2; pos < head.size();) {
      const auto eol = head.find("\r\n", pos);
      const auto line = head.substr(pos, eol - pos);
      const auto colon = line.find(':');
      std::string name = line.substr(0, colon);
      for (auto& ch : name) ch = static_cast<char>(std::tolower(static_cast<unsigned char>(ch)));
      auto value = line.substr(colon + 1);
      while (!value.empty() && value.front() == ' ') value.erase(0, 1);
      r.headers.emplace(name, value);
      pos = eol + 2;
    }
    buffer_.erase(0, r.head_bytes);
    std::size_t length = 0;
    if (!head_request && r.status != 304 && r.status / 100 != 1 && r.has("content-length"))
      length = std::stoull(r.header("content-length"));
    while (buffer_.size() < length)
      if (!fill()) break;  // a short body: the caller sees it as such
    r.body = buffer_.substr(0, std::min(length, buffer_.size()));
    buffer_.erase(0, r.body.size());
    return r;
  }

  // True when the server closes the connection (before the deadline) with no further bytes.
  bool closed_quietly(std::chrono::milliseconds deadline = kDeadline) {
    while (fill(deadline)) {
    }
    return closed_ && buffer_.empty();
  }
  // Everything until the server closes (or the deadline).
  std::string read_to_close() {
    while (fill()) {
    }
    std::string out = std::move(buffer_);
    buffer_.clear();
    return out;
  }

  std::size_t received() const { return received_; }
  bool timed_out() const { return timed_out_; }
  const std::string& pending() const { return buffer_; }
  int fd() const { return fd_; }

 private:
  int fd_ = -1;
  std::string buffer_;
  std::size_t received_ = 0;
  bool closed_ = false;
  bool timed_out_ = false;
};

}  // namespace mediagate::testing_support
