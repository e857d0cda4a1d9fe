#pragma once
// Internal to src/server: one HTTP/1.1 client connection, over plain TCP or TLS. It alone reads, frames,
// writes, applies deadlines and limits, counts and logs; what to answer comes from handle_request
// (server/router.hpp).
#include <atomic>
#include <boost/asio/awaitable.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/ssl/stream.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/beast/core/flat_buffer.hpp>
#include <chrono>
#include <functional>
#include <memory>
#include <string>
#include <unordered_set>
#include <vector>

#include "server/response.hpp"
#include "server/services.hpp"

namespace spdlog {
class logger;
}

namespace mediagate::server {

namespace net = boost::asio;
using tcp = net::ip::tcp;
using clock = std::chrono::steady_clock;

struct connection;

// What the connections of one event loop share beside the handlers' services. Only touched from that loop.
struct connection_context {
  services& svc;
  spdlog::logger* access_log;            // null when off
  std::unordered_set<connection*> open;  // every connection of this loop, for draining and eviction
  bool draining = false;                 // shutting down: answer what is in flight, then close
  std::atomic<std::size_t> fresh{0};     // connections that never sent a request (read by other loops)
};

// One client connection. A watchdog coroutine cancels the socket's operations when `deadline` passes;
// moving the deadline later costs an assignment, so it can be refreshed on every write.
struct connection {
  explicit connection(tcp::socket s) : socket(std::move(s)), timer(socket.get_executor()) {
    timer.expires_at(clock::time_point::max());
  }
  ~connection();
  connection(const connection&) = delete;
  connection& operator=(const connection&) = delete;
  void set_deadline(std::chrono::milliseconds d) {
    deadline = clock::now() + d;
    if (deadline < timer.expiry()) timer.expires_at(deadline);
  }
  void clear_deadline() { deadline = clock::time_point::max(); }

  tcp::socket socket;
  // A TLS listener's connection: the context its SSL is made with (its callbacks' data live in it).
  std::shared_ptr<net::ssl::context> tls_context;
  std::uint16_t redirect_port = 0;  // --redirect-http: every request is sent to https on this port
  net::steady_timer timer;
  clock::time_point deadline = clock::time_point::max();
  bool timed_out = false;
  std::string peer;
  boost::beast::flat_buffer buffer;
  std::vector<char> stream_buffer;  // allocated on first use: most requests stream from files
  bool low_water_set = false;       // TCP_NOTSENT_LOWAT set for bytes streamed through stream_buffer
  std::uint64_t bytes_written = 0;  // every byte the kernel accepted on this connection
  // A pipe that S3 bodies pass through to the socket (splice): made on first use, kept with the connection.
  int pipe_in = -1, pipe_out = -1;
  bool pipe_failed = false;      // none could be made (descriptors): bodies go through memory
  bool awaiting_request = true;  // between requests (or before the first): nothing in flight
  std::uint64_t requests = 0;    // requests whose head arrived
  clock::time_point opened_at = clock::now();
  // An HTTP/2 connection: how close_if_idle ends it (GOAWAY, its open streams finish). Null for HTTP/1.1.
  std::function<void()> drain;
};

net::awaitable<void> run_session(std::shared_ptr<connection> c, connection_context& ctx);
net::awaitable<void> run_watchdog(std::shared_ptr<connection> c);

// Closes a connection that waits for a request (draining, or evicted to make room); in-flight ones finish.
void close_if_idle(connection& c);

// The status line and header fields of `r` (with Date, Server and, when `close`, Connection: close).
std::string serialize_response_head(const response& r, bool close);

// Shared with server/h2_connection.cpp: the Date of now (cached per second), a log field with quotes and
// control bytes escaped, and the answer of a --redirect-http listener.
std::string_view http_date_now();
std::string log_escape(std::string_view s);
struct request;
response redirect_response(const request& req, std::uint16_t port);

}  // namespace mediagate::server
