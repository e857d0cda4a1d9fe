#include "s3/sync_http.hpp"

#include <boost/asio/connect.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/ssl.hpp>
#include <boost/beast/core/flat_buffer.hpp>
#include <boost/beast/core/tcp_stream.hpp>
#include <boost/beast/http.hpp>
#include <boost/beast/ssl/ssl_stream.hpp>

#include "s3/s3_client.hpp"

namespace mediagate::s3 {
namespace net = boost::asio;
namespace beast = boost::beast;
namespace bhttp = beast::http;

namespace {

template <class Stream>
sync_response exchange(Stream& stream, bhttp::request<bhttp::string_body>& req) {
  sync_response out;
  beast::error_code ec;
  bhttp::write(stream, req, ec);
  if (ec) return {0, {}, "sending: " + ec.message()};
  beast::flat_buffer buffer;
  bhttp::response_parser<bhttp::string_body> parser;
  parser.body_limit(1 << 20);
  bhttp::read(stream, buffer, parser, ec);
  if (ec) return {0, {}, "reading the answer: " + ec.message()};
  out.status = parser.get().result_int();
  out.body = std::move(parser.get().body());
  return out;
}

}  // namespace

sync_response sync_request(const std::string& method, const std::string& url,
                           const std::vector<std::pair<std::string, std::string>>& headers,
                           const std::string& body, std::chrono::milliseconds timeout) {
  const auto scheme_end = url.find("://");
  const auto path_start = scheme_end == std::string::npos ? std::string::npos : url.find('/', scheme_end + 3);
  auto ep = parse_endpoint(url.substr(0, path_start));
  if (!ep) return {0, {}, "not a URL: " + url};
  const std::string target = path_start == std::string::npos ? "/" : url.substr(path_start);

  net::io_context io;
  bhttp::request<bhttp::string_body> req;
  req.method_string(method);
  req.target(target);
  req.version(11);
  req.set(bhttp::field::host, ep->host_header());
  req.set(bhttp::field::connection, "close");
  for (const auto& [name, value] : headers) req.set(name, value);
  req.body() = body;
  req.prepare_payload();

  beast::error_code ec;
  net::ip::tcp::resolver resolver(io);
  auto results = resolver.resolve(ep->host, std::to_string(ep->port), ec);
  if (ec) return {0, {}, "resolving " + ep->host + ": " + ec.message()};
  if (!ep->tls) {
    beast::tcp_stream stream(io);
    stream.expires_after(timeout);
    stream.connect(results, ec);
    if (ec) return {0, {}, "connecting to " + ep->host_header() + ": " + ec.message()};
    return exchange(stream, req);
  }
  net::ssl::context tls(net::ssl::context::tls_client);
  tls.set_default_verify_paths();
  tls.set_verify_mode(net::ssl::verify_peer);
  beast::ssl_stream<beast::tcp_stream> stream(io, tls);
  beast::get_lowest_layer(stream).expires_after(timeout);
  beast::get_lowest_layer(stream).connect(results, ec);
  if (ec) return {0, {}, "connecting to " + ep->host_header() + ": " + ec.message()};
  SSL_set_tlsext_host_name(stream.native_handle(), ep->host.c_str());
  stream.set_verify_callback(net::ssl::host_name_verification(ep->host));
  stream.handshake(net::ssl::stream_base::client, ec);
  if (ec) return {0, {}, "TLS handshake with " + ep->host_header() + ": " + ec.message()};
  return exchange(stream, req);
}

}  // namespace mediagate::s3
