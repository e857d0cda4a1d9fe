#pragma once
// Internal to src/server: one client connection, its deadlines and the byte-moving primitives.
#include <boost/asio/awaitable.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/beast/core/flat_buffer.hpp>
#include <boost/beast/http/empty_body.hpp>
#include <boost/beast/http/parser.hpp>
#include <chrono>
#include <memory>
#include <random>
#include <span>
#include <string>
#include <unordered_map>
#include <vector>

#include "http/response_plan.hpp"
#include "server/config.hpp"
#include "server/metrics.hpp"
#include "storage/storage.hpp"

namespace spdlog {
class logger;
}

namespace mediagate::server {

namespace net = boost::asio;
namespace beast = boost::beast;
using tcp = net::ip::tcp;
using clock = std::chrono::steady_clock;

struct api_services;  // server/api.hpp: the catalog, uploads and the web page

// Shared by all connections of one event loop; only touched from that loop's thread.
struct worker_context {
  const server_config& config;
  storage::storage& store;
  metrics& stats;
  spdlog::logger& log;
  spdlog::logger* access_log;  // null when access logging is off
  const std::vector<std::function<std::string()>>& metrics_sources;
  std::mt19937_64 random{std::random_device{}()};
  std::unordered_map<std::string, std::string> sniffed_types;  // key + ETag → type sniffed from its bytes
  api_services* api = nullptr;  // shared by every loop (thread-safe); null: no catalog, API or web page
};

// One client connection. A watchdog coroutine cancels the socket's operations when `deadline` passes;
// moving the deadline later costs an assignment, so it can be refreshed on every write.
struct connection {
  connection(tcp::socket s) : socket(std::move(s)), timer(socket.get_executor()) {
    timer.expires_at(clock::time_point::max());
  }
  void set_deadline(std::chrono::milliseconds d) {
    deadline = clock::now() + d;
    if (deadline < timer.expiry()) timer.expires_at(deadline);
  }
  void clear_deadline() { deadline = clock::time_point::max(); }

  tcp::socket socket;
  net::steady_timer timer;
  clock::time_point deadline = clock::time_point::max();
  bool timed_out = false;
  std::string peer;
  beast::flat_buffer buffer;
  std::vector<char> stream_buffer;  // allocated on first use: most requests stream from files
  bool low_water_set = false;       // TCP_NOTSENT_LOWAT set for bytes streamed through stream_buffer
};

// What happened to one request, for the access log and the keep-alive decision.
struct request_outcome {
  unsigned status = 0;
  std::uint64_t body_bytes = 0;
  bool close = false;  // the connection must close after this response (or was already broken)
};

net::awaitable<void> run_session(std::shared_ptr<connection> c, worker_context& ctx);
net::awaitable<void> run_watchdog(std::shared_ptr<connection> c);

// Writes all of `head` then `body` before the send deadline; false when the client is gone or too slow.
net::awaitable<bool> write_all(connection& c, const server_config& cfg, std::string_view head,
                               std::span<const char> body = {});

// A complete small response (error text, JSON, health checks).
net::awaitable<request_outcome> send_simple(connection& c, worker_context& ctx, unsigned status,
                                            std::string_view content_type, std::string body,
                                            http::header_list headers, bool keep_alive, bool head_only);

// Streams a planned response whose ranges come from `store` (the object's key and metadata).
net::awaitable<request_outcome> send_plan(connection& c, worker_context& ctx, const http::response_plan& plan,
                                          const std::string& key, const storage::object_meta& meta,
                                          std::unique_ptr<storage::range_reader> first_reader, bool keep_alive);

// Routes one request whose header has been read. `body_pending` is true when a body follows the header
// that no handler has consumed.
using request_parser = beast::http::request_parser<beast::http::empty_body>;
net::awaitable<request_outcome> route_request(connection& c, worker_context& ctx, request_parser& parser,
                                              bool keep_alive);

// Serves the object at `key` (decoded and validated) with every rule of /media/ (GET and HEAD).
net::awaitable<request_outcome> serve_media_key(connection& c, worker_context& ctx,
                                                const beast::http::request_header<>& req, const std::string& key,
                                                bool keep_alive);

std::string http_date_now();

}  // namespace mediagate::server
