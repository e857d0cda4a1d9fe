#pragma once
// Internal to src/server: one HTTP/2 client connection (RFC 9113), over TLS (ALPN "h2") or cleartext with
// prior knowledge (--h2c). libnghttp2 does the framing, HPACK, flow control and the protocol's checks; this
// code feeds it the bytes read, writes the bytes it returns, and runs each stream as a coroutine of its own
// that builds the same `request`, calls the same handle_request and writes the same `response` as
// HTTP/1.1 (server/http1_connection.hpp): no second set of HTTP rules.
#include <boost/asio/awaitable.hpp>
#include <memory>
#include <string_view>

#include "server/http1_connection.hpp"

namespace mediagate::server {

// Serves HTTP/2 on `s` (the connection's socket, or its TLS after the handshake) until the connection ends.
// `preread`: bytes already read from the client (the start of the preface, when --h2c detected it).
net::awaitable<void> serve_h2(std::shared_ptr<connection> c, tcp::socket& s, connection_context& ctx,
                              std::string_view preread);
class tls_io;
net::awaitable<void> serve_h2(std::shared_ptr<connection> c, tls_io& s, connection_context& ctx,
                              std::string_view preread);

// The client connection preface (RFC 9113 §3.4) starts with these bytes; `first` is what arrived so far.
// True when `first` is the start of it (or all of it): a cleartext client speaking HTTP/2 with prior
// knowledge. No HTTP/1.1 request starts with "PRI * HTTP/2.0".
bool starts_h2_preface(std::string_view first);
inline constexpr std::string_view kH2Preface = "PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n";

}  // namespace mediagate::server
