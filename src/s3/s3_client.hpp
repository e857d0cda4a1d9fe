#pragma once
// An asynchronous S3 client on the caller's event loop: SigV4-signed requests over a keep-alive connection
// pool, responses whose bodies are streamed into the caller's buffer. One client per event loop.
#include <atomic>
#include <boost/asio/any_io_executor.hpp>
#include <boost/asio/awaitable.hpp>
#include <chrono>
#include <cstdint>
#include <memory>
#include <optional>
#include <span>
#include <string>
#include <utility>
#include <vector>

#include "common/body_source.hpp"
#include "common/result.hpp"
#include "s3/sigv4.hpp"

namespace mediagate::s3 {

struct endpoint {
  bool tls = false;
  std::string host;
  std::uint16_t port = 80;
  std::string host_header() const;  // host, with ":port" unless it is the scheme's default
};

// "http://127.0.0.1:9000", "https://s3.eu-west-1.amazonaws.com"; nullopt when malformed.
std::optional<endpoint> parse_endpoint(std::string_view url);

// "HOST:PORT" or "[V6]:PORT" (--s3-connect-to); the port is required. nullopt when malformed.
std::optional<std::pair<std::string, std::uint16_t>> parse_host_port(std::string_view text);

struct client_settings {
  endpoint ep;
  std::string region = "us-east-1";
  std::string bucket;
  bool path_style = true;
  std::string ca_file;  // extra CA bundle for https endpoints
  bool verify_tls = true;
  bool tls_resume = true;  // offer this client's latest TLS session when opening a connection
  // Dial this host and port instead of the endpoint's (like curl's --connect-to); Host, SNI, the certificate
  // check and the signature still name the endpoint (bucket.host when virtual-hosted). Empty/0: the
  // endpoint's.
  std::string connect_host;
  std::uint16_t connect_port = 0;
  std::chrono::milliseconds connect_timeout{5'000};
  std::chrono::milliseconds response_timeout{30'000};  // for the response header, and between body reads
  std::size_t max_idle_connections = 32;
  int max_attempts = 4;  // for idempotent requests failing with a retryable error or a broken connection
  std::chrono::milliseconds retry_base_delay{50};
  bool anonymous = false;  // unsigned requests (a public bucket); no credentials are asked for
};

// Counters shared by every client of the process (relaxed atomics), rendered on /metrics.
struct client_counters {
  std::atomic<std::uint64_t> requests{0};
  std::atomic<std::uint64_t> get_requests{0};
  std::atomic<std::uint64_t> head_requests{0};
  std::atomic<std::uint64_t> bytes_received{0};  // body bytes read from the store
  std::atomic<std::uint64_t> bytes_spliced{0};   // of those, moved to a client without a copy (splice)
  std::atomic<std::uint64_t> retries{0};
  std::atomic<std::uint64_t> resumes{0};  // bodies broken mid-way and continued from the next byte
  std::atomic<std::uint64_t> errors{0};
  std::atomic<std::uint64_t> connections_opened{0};
  std::atomic<std::uint64_t> tls_handshakes{0};
  std::atomic<std::uint64_t> tls_resumed{0};  // handshakes that resumed an earlier session (no certificate)
  std::string render() const;
};

// Supplies the credentials to sign with (refreshing temporary ones is the provider's business).
class credentials_provider {
 public:
  virtual ~credentials_provider() = default;
  virtual credentials current() = 0;
  // The same into `out`, whose strings keep their capacity (the client asks on every request it signs).
  virtual void current_into(credentials& out) { out = current(); }
};
std::shared_ptr<credentials_provider> static_provider(credentials c);

struct request_spec {
  std::string method = "GET";
  std::string key;  // object key without leading '/', empty for the bucket itself
  query_list query;
  header_list headers;  // extra headers to send, signed but for a read's Range and preconditions (sigv4.hpp)
  std::string body;     // small bodies only (parts of multipart uploads are at most a few MiB)
  bool idempotent = true;
};

class response;

class client : public std::enable_shared_from_this<client> {
 public:
  client(boost::asio::any_io_executor ex, client_settings settings,
         std::shared_ptr<credentials_provider> creds, std::shared_ptr<client_counters> counters);
  ~client();

  // Sends the request and reads the response header; retries retryable failures for idempotent requests.
  // Any HTTP status is a value: callers check status() and read the error body.
  boost::asio::awaitable<result<std::unique_ptr<response>>> send(request_spec spec);

  const client_settings& settings() const { return settings_; }
  client_counters& counters() { return *counters_; }
  // The event loop the client's connections belong to.
  const boost::asio::any_io_executor& executor() const { return ex_; }

  struct pool;  // idle connections; internal

 private:
  boost::asio::awaitable<result<std::unique_ptr<response>>> send_once(const request_spec& spec,
                                                                      bool fresh_connection);
  boost::asio::any_io_executor ex_;
  client_settings settings_;
  std::shared_ptr<credentials_provider> creds_;
  std::shared_ptr<client_counters> counters_;
  signing_key_cache keys_;
  std::shared_ptr<pool> pool_;
  // The names the store is addressed by: Host (with the port unless default), and the host for SNI and the
  // certificate check (bucket.host when virtual-hosted).
  std::string host_header_;
  std::string name_host_;
  // Scratch for signing a request, used only between two co_awaits of one send_once (one event loop per
  // client): their capacity stays, so a steady stream of requests allocates nothing for them.
  std::string path_;
  credentials creds_now_;
  signed_headers sig_;
  read_signatures reads_signed_;  // reads signed lately, for reuse within their second
};

// A response whose header has been read; its body is read on demand. Destroying it before the body is
// complete closes the connection (that is how a client that went away cancels its S3 read).
class response {
 public:
  virtual ~response() = default;
  virtual unsigned status() const = 0;
  virtual std::string header(std::string_view name) const = 0;  // "" when absent
  // The same without a copy; valid while the response lives.
  virtual std::string_view field(std::string_view name) const = 0;
  virtual std::optional<std::uint64_t> content_length() const = 0;
  // Up to buf.size() body bytes; 0 at the end of the body.
  virtual boost::asio::awaitable<result<std::size_t>> read_some(std::span<char> buf) = 0;
  // The same when bytes are already here (no waiting, no coroutine); nullopt when read_some() must wait.
  virtual std::optional<result<std::size_t>> try_read_some(std::span<char> /*buf*/) { return std::nullopt; }
  // Zero-copy: moves up to buf.size() body bytes from the store's socket into the pipe `pipe_in` (its write
  // end, empty), waiting for them. Bytes that are only in memory (read with the header, or by the wait) are
  // placed in `buf` instead: `in_pipe` says which. 0 bytes at the end of the body. Answers that cannot be
  // spliced (TLS, a body not framed by Content-Length) read into `buf` every time.
  struct piece {
    std::size_t bytes = 0;
    bool in_pipe = false;
  };
  virtual boost::asio::awaitable<result<piece>> splice_some(std::span<char> buf, int pipe_in);
  // The whole body, when it is at most `limit` bytes (error documents, listings).
  boost::asio::awaitable<result<std::string>> read_all(std::size_t limit);
  // Ends a read_some() that waits for the store (it fails); the connection is not reused. For a reader that
  // another coroutine abandons (a client that left a parallel download).
  virtual void cancel() = 0;
};

}  // namespace mediagate::s3
