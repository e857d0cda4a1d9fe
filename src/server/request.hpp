#pragma once
// A request as its handler sees it, whatever connection carried it (HTTP/1.1 today; HTTP/2 is a second
// connection type, not a second set of handlers): method, target, header fields and the body as a stream.
// Views point into the connection's buffers and stay valid until the handler's response is written.
#include <boost/asio/awaitable.hpp>
#include <cstdint>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "common/result.hpp"

namespace mediagate::server {

enum class method { get, head, post, put, patch, delete_, options, other };

method method_from(std::string_view name);

struct header_field {
  std::string_view name;
  std::string_view value;
};

// The body of a request, read only by the handler that consumes it (uploads, JSON). The connection applies
// the read deadline, sends "100 Continue" when the client waits for it and enforces the limit.
class request_body {
 public:
  virtual ~request_body() = default;
  // The next bytes into `buf`; 0 at the end. Errors: errc::too_large past the limit, errc::bad_body for
  // broken framing (chunked coding), errc::client_gone when the client stopped sending or was too slow.
  virtual boost::asio::awaitable<result<std::size_t>> read(std::span<char> buf) = 0;
  // The most bytes this request may send (default: none allowed beyond what the handler reads).
  virtual void set_limit(std::uint64_t bytes) = 0;
  virtual std::uint64_t received() const = 0;
};

struct request {
  method verb = method::other;
  std::string_view method_name;
  std::string_view target;  // as sent
  std::string_view path;    // origin-form path (absolute-form reduced to it)
  std::string_view query;   // after '?', without it
  std::vector<header_field> fields;
  std::string_view peer;  // "address:port", for logs
  std::optional<std::uint64_t> content_length;
  bool chunked = false;
  request_body* body = nullptr;  // never null while a handler runs; reads 0 bytes when there is no body

  bool has_body() const { return chunked || content_length.value_or(0) > 0; }
  bool read_only() const { return verb == method::get || verb == method::head; }
  bool head() const { return verb == method::head; }
  // How many lines of the field came (names compare case-insensitively).
  std::size_t count(std::string_view name) const;
  // The first line's value, or "" when absent.
  std::string_view operator[](std::string_view name) const;
  // A list field: repeated lines joined into one comma-separated list (RFC 9110 §5.3); nullopt when absent.
  std::optional<std::string> list_field(std::string_view name) const;
  // A singleton field (Range, If-Range, dates): nullopt when absent; `repeated` is set when it came more than
  // once, which makes it invalid (the caller decides what an invalid field means for its rule).
  std::optional<std::string_view> single_field(std::string_view name, bool* repeated = nullptr) const;
};

}  // namespace mediagate::server
