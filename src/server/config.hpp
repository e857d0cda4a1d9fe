#pragma once
// Everything the server is configured with, validated once by the CLI and passed down (no globals).
#include <chrono>
#include <cstddef>
#include <cstdint>
#include <string>

namespace mediagate::server {

struct server_config {
  std::string listen_host = "127.0.0.1";
  std::uint16_t listen_port = 8080;
  unsigned threads = 0;  // 0: one event loop per core
  std::string cache_control = "public, max-age=3600";
  std::size_t max_ranges = 16;
  std::size_t max_header_bytes = 16 * 1024;
  std::size_t max_header_fields = 100;
  std::size_t max_connections = 10000;
  std::size_t stream_buffer_bytes = 32 * 1024;  // per streaming connection when bytes don't come from a file
  std::chrono::milliseconds header_timeout{10'000};  // from the first byte of a request to its last header
  std::chrono::milliseconds idle_timeout{60'000};    // keep-alive connection with no request
  std::chrono::milliseconds send_timeout{60'000};    // a client that reads nothing for this long is dropped
  std::string access_log = "-";                      // "-": standard output; "off"; or a file path
  std::string cors_origin;                           // Access-Control-Allow-Origin for media; empty: none
  std::chrono::milliseconds drain_timeout{30'000};   // SIGTERM: how long in-flight responses may finish
  std::string metrics_token;  // /metrics needs "Authorization: Bearer" this; empty: loopback clients only
  // The descriptor budget that sizes the connection cap (set by the CLI from the storage in use).
  std::size_t descriptors_per_connection = 2;  // the socket, a file or an upstream connection
  std::size_t descriptors_per_loop = 48;       // upstream pool, open-file tables
  std::size_t spare_descriptors = 64;          // logs, the catalog, probes, listening sockets
};

}  // namespace mediagate::server
