#pragma once
// Everything the server is configured with, validated once by the CLI and passed down (no globals).
#include <chrono>
#include <cstddef>
#include <cstdint>
#include <string>
#include <vector>

#include "http/signed_link.hpp"

namespace mediagate::server {

// Which media needs a signed link (http/signed_link.hpp), and the keys that make and check them.
struct access_policy {
  bool signed_by_default = false;            // --access signed
  std::vector<std::string> signed_prefixes;  // --signed-prefix: these need a link (longest match wins)
  std::vector<std::string> public_prefixes;  // --public-prefix: these do not
  std::vector<http::signing_key> keys;       // the first signs, all verify
  std::int64_t clock_skew = 30;              // seconds an expired link is still accepted
  std::string cache_control = "private, max-age=3600";  // for responses to signed requests
};

// HTTPS (server/tls.hpp). With a certificate, --listen speaks TLS; with --listen-tls as well, --listen stays
// plain HTTP beside it (redirecting to HTTPS with --redirect-http).
struct tls_config {
  std::string cert, key, ocsp;  // PEM full chain, PEM key, DER OCSP response (optional); cert empty: no TLS
  bool separate_listener = false;  // --listen-tls given
  std::string listen_host;
  std::uint16_t listen_port = 0;
  bool redirect_http = false;  // the plain listener answers 308 to https://
  std::chrono::milliseconds handshake_timeout{10'000};
  std::chrono::milliseconds reload_poll{5'000};  // how often the files are checked for a change
  bool enabled() const { return !cert.empty(); }
};

// HTTP/2 (server/h2_connection.hpp): offered by ALPN on every TLS listener; --h2c adds prior-knowledge
// cleartext h2 on the plain listener. The header-list limit is max_header_bytes, as for HTTP/1.1.
struct h2_config {
  bool cleartext = false;                      // --h2c
  std::uint32_t max_concurrent_streams = 128;  // SETTINGS_MAX_CONCURRENT_STREAMS
  std::uint32_t stream_window = 128 * 1024;    // what one stream's upload may have in flight (buffered)
  std::uint32_t connection_window = 1 << 20;   // the same for all of a connection's streams together
};

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
  bool splice = true;  // S3 bodies to plain HTTP/1.1 clients through a pipe (splice), not through memory
  std::chrono::milliseconds header_timeout{10'000};  // from the first byte of a request to its last header
  std::chrono::milliseconds idle_timeout{60'000};    // keep-alive connection with no request
  std::chrono::milliseconds send_timeout{60'000};    // a client that reads nothing for this long is dropped
  std::string access_log = "-";                      // "-": standard output; "off"; or a file path
  std::vector<std::string> cors_origins;             // origins allowed to read media and the API ("*": any)
  access_policy access;
  std::chrono::milliseconds drain_timeout{30'000};  // SIGTERM: how long in-flight responses may finish
  std::chrono::milliseconds drain_delay{0};  // SIGTERM: /readyz says 503 this long before accepting stops
  std::string metrics_token;  // /metrics needs "Authorization: Bearer" this; empty: loopback clients only
  // The descriptor budget that sizes the connection cap (set by the CLI from the storage in use).
  std::size_t descriptors_per_connection = 2;  // the socket, a file or an upstream connection
  std::size_t descriptors_per_loop = 48;       // upstream pool, open-file tables
  std::size_t spare_descriptors = 64;          // logs, the catalog, probes, listening sockets
  tls_config tls;
  h2_config h2;
  // HLS and DASH repackaged from MP4 (issue 14).
  double hls_segment_seconds = 6;                      // target segment length (cut at the next keyframe)
  std::uint64_t hls_index_cache_bytes = 256ull << 20;  // parsed MP4 indexes kept in memory (all loops)
  std::uint64_t hls_max_moov_bytes = 64ull << 20;      // a larger moov is refused (422)
  // The indexes kept on disk across restarts (mp4/index_file.hpp): a directory (empty: none; the CLI puts it
  // under --cache-dir by default) and its bound in bytes, least recently used removed first.
  std::string hls_index_dir;
  std::uint64_t hls_index_dir_bytes = 1ull << 30;
  // Sample runs of a segment at most this far apart are fetched with one storage read (the bytes between
  // them, other tracks' samples, are read and dropped) as long as those bytes stay within 10% of the
  // samples': few requests per segment, for a remote store where each costs a round trip. 0 (local
  // storage): one read per run, each by sendfile.
  std::uint64_t hls_read_gap = 0;
  // Storage reads of one segment in flight at once (the next ones start while one streams).
  std::size_t hls_read_parallel = 1;
};

}  // namespace mediagate::server
