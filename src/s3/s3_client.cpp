#include "s3/s3_client.hpp"

#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sys/socket.h>

#include <algorithm>
#include <array>
#include <boost/asio/as_tuple.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/ssl.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <boost/beast/core/flat_buffer.hpp>
#include <boost/beast/core/tcp_stream.hpp>
#include <boost/beast/http.hpp>
#include <boost/beast/ssl/ssl_stream.hpp>
#include <charconv>
#include <cstring>
#include <tuple>

#include "common/prometheus_text.hpp"
#include "http/token.hpp"
#include "s3/answer_parser.hpp"
#include "s3/s3_error.hpp"

namespace mediagate::s3 {
namespace net = boost::asio;
namespace beast = boost::beast;
namespace bhttp = beast::http;
using tcp = net::ip::tcp;

namespace {

constexpr auto kTuple = net::as_tuple(net::use_awaitable);
// What splice_some() reads into memory when it has to wait for the store: the wait's own read, kept small.
constexpr std::size_t kWaitRead = 2048;

// One connection to the store, plain or TLS.
struct connection {
  std::optional<beast::tcp_stream> plain;
  std::optional<beast::ssl_stream<beast::tcp_stream>> secure;
  // Response headers land here, and are parsed from here; kept with the connection (4 KiB), not allocated
  // for every request.
  beast::flat_buffer buffer;
  std::string head;         // the request head being sent, written anew for each request in the same memory
  bool ack_pushed = false;  // push_ack() since the request was sent
  // Answers on this connection that were not there yet when first looked for. After one, the next requests
  // wait for theirs at once (the stream's read looks first anyway) rather than make a read that finds
  // nothing; one in 8 looks first again. (A busy store, or many requests in flight, answers later than we
  // look: under wrk -c16 over the fast S3 stand-in nearly every answer did.)
  std::uint8_t late_answers = 0;

  beast::tcp_stream& lowest() { return secure ? beast::get_lowest_layer(*secure) : *plain; }
  template <class F>
  auto visit(F&& f) {
    return secure ? f(*secure) : f(*plain);
  }
};

// Before waiting for the store's answer: acknowledges at once what has arrived, and leaves Linux's
// delayed-ACK
// ("pingpong") mode that sending the request entered. A store that writes its header and body in pieces
// without TCP_NODELAY (radosgw's beast frontend by default) otherwise waits for our delayed ACK, 40 ms per
// request on a reused connection (a new one starts in quick-ack mode). Once per request, and only when about
// to wait: an answer that is all here already needs nothing pushed (one setsockopt per request less).
void push_ack(connection& c) {
  if (c.ack_pushed) return;
  c.ack_pushed = true;
#ifdef TCP_QUICKACK
  const int on = 1;
  ::setsockopt(c.lowest().socket().native_handle(), IPPROTO_TCP, TCP_QUICKACK, &on, sizeof on);
#endif
}

error io_error_of(const boost::system::error_code& ec, std::string_view what, const endpoint& ep) {
  if (ec == beast::error::timeout)
    return {errc::upstream_timeout,
            "storage at " + ep.host_header() + " did not answer in time (" + std::string(what) + ")"};
  return {errc::upstream_unavailable, "storage at " + ep.host_header() + " is unreachable (" +
                                          std::string(what) + ": " + ec.message() + ")"};
}

}  // namespace

struct client::pool {
  endpoint ep;  // for error messages of responses (which may outlive their client)
  std::vector<std::unique_ptr<connection>> idle;
  std::size_t max_idle = 32;
  std::unique_ptr<net::ssl::context> tls;
  SSL_SESSION* session =
      nullptr;  // the latest session the store gave (TLS 1.3: a ticket after the handshake)

  ~pool() {
    if (tls) SSL_CTX_set_ex_data(tls->native_handle(), ex_index(), nullptr);  // connections may outlive us
    if (session) SSL_SESSION_free(session);
  }
  // The slot of the SSL_CTX that points back at its pool (asio keeps its verify callback in the app data).
  static int ex_index() {
    static const int index = SSL_CTX_get_ex_new_index(0, nullptr, nullptr, nullptr, nullptr);
    return index;
  }
  // OpenSSL's new-session callback: keeps a copy of the newest session (the connection's own is marked not
  // resumable when the connection closes without a TLS shutdown). Returns 0: OpenSSL keeps ownership of `s`.
  static int on_new_session(SSL* ssl, SSL_SESSION* s) {
    auto* self = static_cast<pool*>(SSL_CTX_get_ex_data(SSL_get_SSL_CTX(ssl), ex_index()));
    if (!self) return 0;
    SSL_SESSION* copy = SSL_SESSION_dup(s);
    if (!copy) return 0;
    if (self->session) SSL_SESSION_free(self->session);
    self->session = copy;
    return 0;
  }

  std::unique_ptr<connection> acquire() {
    while (!idle.empty()) {
      auto c = std::move(idle.back());
      idle.pop_back();
      if (c->lowest().socket().is_open()) return c;
    }
    return nullptr;
  }
  void release(std::unique_ptr<connection> c) {
    if (idle.size() < max_idle && c->buffer.size() == 0) idle.push_back(std::move(c));
  }
};

namespace {

class response_impl final : public response {
 public:
  response_impl(std::unique_ptr<connection> conn, std::shared_ptr<client::pool> pool,
                client_counters& counters, std::chrono::milliseconds timeout)
      : conn_(std::move(conn)), pool_(std::move(pool)), counters_(counters), timeout_(timeout) {}
  ~response_impl() override {
    if (conn_ && !cancelled_ && body_complete() && parser_.keep_alive()) pool_->release(std::move(conn_));
  }

  // Responses are made and dropped once per request: their memory (about half a KiB, mostly the parser) goes
  // back to a small per-thread list instead of the heap.
  static void* operator new(std::size_t size);
  static void operator delete(void* p, std::size_t size) noexcept;

  answer_parser& parser() { return parser_; }
  connection& conn() { return *conn_; }

  // Called once the header is in. A body framed by Content-Length (every GetObject answer) is then read
  // straight from the socket into the caller's buffer: no copy through the parser, and no buffer of the
  // connection's own beyond the few bytes that came with the header.
  void header_done() {
    if (parser_.is_done()) {
      remaining_ = 0;
      direct_ = true;
    } else if (!parser_.chunked() && parser_.content_length()) {
      remaining_ = *parser_.content_length();
      direct_ = true;
    }
  }

  void cancel() override {
    if (!conn_) return;
    cancelled_ = true;
    boost::system::error_code ec;
    conn_->lowest().socket().cancel(ec);
  }

  unsigned status() const override { return parser_.status(); }
  std::string header(std::string_view name) const override { return std::string(field(name)); }
  std::string_view field(std::string_view name) const override { return parser_.field(name); }
  std::optional<std::uint64_t> content_length() const override {
    auto n = parser_.content_length();
    return n ? std::optional<std::uint64_t>(*n) : std::nullopt;
  }

  // Body bytes that are already here (some arrive with the header; a plain socket may hold more), taken
  // without waiting and without a coroutine frame. nullopt when none are: read_some() then waits.
  std::optional<result<std::size_t>> try_read_some(std::span<char> buf) override {
    if (!conn_ || !direct_) return std::nullopt;  // read_some() reports the closed connection, or parses
    const auto want = static_cast<std::size_t>(std::min<std::uint64_t>(buf.size(), remaining_));
    if (want == 0) return std::size_t{0};
    std::size_t got = 0;
    if (auto& pending = conn_->buffer; pending.size() > 0) {
      got = net::buffer_copy(net::buffer(buf.data(), want), pending.data());
      pending.consume(got);
    }
    if (got < want && conn_->plain) {
      boost::system::error_code ec;
      const auto n = conn_->plain->socket().read_some(net::buffer(buf.data() + got, want - got), ec);
      if (ec == net::error::would_block || ec == net::error::try_again) {
        if (got == 0) {
          would_block_ = true;  // read_some() goes straight to waiting
          return std::nullopt;
        }
      } else if (n == 0 && got == 0) {
        conn_.reset();  // never reuse a connection in an unknown state
        return io_error_of(ec ? ec : net::error::eof, "reading the body", pool_->ep);
      }
      got += n;  // bytes that arrived before an error are good; the next read reports the error
    }
    if (got == 0) return std::nullopt;  // TLS, nothing decrypted yet
    remaining_ -= got;
    counters_.bytes_received.fetch_add(got, std::memory_order_relaxed);
    return got;
  }

  // A body framed by Content-Length on a plain connection goes from the socket into the pipe; the bytes that
  // came with the header first through memory, and so does the read that waits for more (it has the stream's
  // timeout, which a bare wait for readiness would not).
  net::awaitable<result<piece>> splice_some(std::span<char> buf, int pipe_in) override {
    if (!conn_ || !direct_ || !conn_->plain || remaining_ == 0)
      co_return co_await response::splice_some(buf, pipe_in);  // through memory
    if (const auto held = conn_->buffer.size(); held > 0) {    // what came with the header goes first
      auto here = try_read_some(buf.first(std::min(held, buf.size())));
      if (here && *here) co_return piece{**here, false};
    }
    const auto want = static_cast<std::size_t>(std::min<std::uint64_t>(buf.size(), remaining_));
    ssize_t n;
    do {
      n = ::splice(conn_->plain->socket().native_handle(), nullptr, pipe_in, nullptr, want,
                   SPLICE_F_MOVE | SPLICE_F_NONBLOCK);
    } while (n < 0 && errno == EINTR);
    if (n > 0) {
      const auto moved = static_cast<std::size_t>(n);
      remaining_ -= moved;
      counters_.bytes_received.fetch_add(moved, std::memory_order_relaxed);
      counters_.bytes_spliced.fetch_add(moved, std::memory_order_relaxed);
      co_return piece{moved, true};
    }
    if (n < 0 && errno != EAGAIN && errno != EWOULDBLOCK) {
      conn_.reset();  // never reuse a connection in an unknown state
      co_return io_error_of(boost::system::error_code(errno, boost::system::system_category()),
                            "reading the body", pool_->ep);
    }
    // Nothing there yet (or the end of the stream, which read_some() reports): wait for the store with the
    // stream's timeout by reading a little into memory; the next call splices what follows.
    would_block_ = n < 0;
    const auto wait_read = std::min(want, kWaitRead);
    auto got = co_await read_some(buf.first(wait_read));
    if (!got) co_return got.err();
    co_return piece{*got, false};
  }

  // A body framed by Content-Length is read here, in this coroutine (one frame per read, not two); others
  // through the parser (read_framed).
  net::awaitable<result<std::size_t>> read_some(std::span<char> buf) override {
    if (!conn_) co_return error{errc::upstream_unavailable, "the connection to storage was closed"};
    if (!direct_) co_return co_await read_framed(buf);
    // A caller's try_read_some() that just found nothing makes a second look pointless.
    if (!would_block_)
      if (auto here = try_read_some(buf)) co_return std::move(*here);
    // Whoever set it, it was for this read only: never for one after the wait below (a body completed by
    // that wait would then read zero bytes and be taken for a closed connection).
    would_block_ = false;
    if (!conn_) co_return error{errc::upstream_unavailable, "the connection to storage was closed"};
    if (remaining_ == 0) co_return std::size_t{0};
    const auto want = static_cast<std::size_t>(std::min<std::uint64_t>(buf.size(), remaining_));
    push_ack(*conn_);
    conn_->lowest().expires_after(timeout_);
    auto [ec, n] = co_await conn_->visit(
        [&](auto& s) { return s.async_read_some(net::buffer(buf.data(), want), kTuple); });
    if (n == 0) {
      conn_.reset();  // never reuse a connection in an unknown state
      co_return io_error_of(ec ? ec : net::error::eof, "reading the body", pool_->ep);
    }
    remaining_ -= n;  // bytes that arrived before an error are good; the next read reports the error
    counters_.bytes_received.fetch_add(n, std::memory_order_relaxed);
    co_return n;
  }

 private:
  bool body_complete() const { return direct_ ? remaining_ == 0 : parser_.is_done(); }

  net::awaitable<result<std::size_t>> read_framed(std::span<char> buf) {
    if (parser_.is_done() || buf.empty()) co_return std::size_t{0};
    parser_.body_data = buf.data();
    parser_.body_size = buf.size();
    push_ack(*conn_);
    conn_->lowest().expires_after(timeout_);
    auto [ec, n] = co_await conn_->visit(
        [&](auto& s) { return bhttp::async_read_some(s, conn_->buffer, parser_, kTuple); });
    if (ec == bhttp::error::need_buffer) ec = {};
    const std::size_t got = buf.size() - parser_.body_size;
    if (ec && got == 0) {
      conn_.reset();  // never reuse a connection in an unknown state
      co_return io_error_of(ec, "reading the body", pool_->ep);
    }
    counters_.bytes_received.fetch_add(got, std::memory_order_relaxed);
    if (got == 0 && !parser_.is_done()) co_return co_await read_framed(buf);  // only framing was read
    co_return got;
  }

  std::unique_ptr<connection> conn_;
  std::shared_ptr<client::pool> pool_;
  client_counters& counters_;
  std::chrono::milliseconds timeout_;
  answer_parser parser_;
  bool direct_ = false;
  bool cancelled_ = false;    // never pooled again
  bool would_block_ = false;  // try_read_some() found nothing to read just now
  std::uint64_t remaining_ = 0;
};

// Freed responses kept for the next ones on this thread (a loop has at most as many at once as requests in
// flight to the store; beyond `keep` they go back to the heap). Once the thread's list is destroyed (thread
// exit), responses still freed afterwards go straight back to the heap.
struct response_memory {
  static constexpr std::size_t keep = 64;
  std::array<void*, keep> free{};
  std::size_t count = 0;
  ~response_memory();
};
thread_local response_memory recycled_responses;
thread_local bool recycled_responses_gone = false;  // trivially destructible: readable after the list's end

response_memory::~response_memory() {
  recycled_responses_gone = true;
  for (std::size_t i = 0; i < count; ++i) ::operator delete(free[i], sizeof(response_impl));
  count = 0;
}

void* response_impl::operator new(std::size_t size) {
  if (!recycled_responses_gone && size == sizeof(response_impl)) {
    auto& r = recycled_responses;
    if (r.count > 0) return r.free[--r.count];
  }
  return ::operator new(size);
}

void response_impl::operator delete(void* p, std::size_t size) noexcept {
  if (!recycled_responses_gone && size == sizeof(response_impl)) {
    auto& r = recycled_responses;
    if (r.count < response_memory::keep) {
      r.free[r.count++] = p;
      return;
    }
  }
  ::operator delete(p, size);
}

// The request head, written by hand into `head` (whose memory is the connection's, reused): every name and
// value comes from this client or the signer, and values are checked for line breaks, so Beast's general
// serializer (and its allocations) is not needed here. False when a value would break a line. Sized once and
// copied into; values scanned 8 bytes per step (a byte per step over ~500 bytes showed in profiles).
bool request_head(std::string& head, std::string_view method, const signed_headers& sig,
                  const header_list& extra, std::size_t body_size) {
  const auto breaks_name = [](std::string_view n) {  // also ':' and ' '
    return std::any_of(n.begin(), n.end(),
                       [](char c) { return c == '\r' || c == '\n' || c == '\0' || c == ':' || c == ' '; });
  };
  char digits[24];
  std::string_view length;
  if (method != "GET" && method != "HEAD")
    length = {digits, static_cast<std::size_t>(
                          std::to_chars(std::begin(digits), std::end(digits), body_size).ptr - digits)};
  constexpr std::string_view version = " HTTP/1.1\r\n", length_name = "content-length";
  std::size_t size = method.size() + 1 + sig.canonical_path.size() + version.size() + 2;
  if (!sig.canonical_query.empty()) size += 1 + sig.canonical_query.size();
  for (const auto& [name, value] : extra) size += name.size() + value.size() + 4;
  for (const auto& [name, value] : sig.headers) size += name.size() + value.size() + 4;
  if (!length.empty()) size += length_name.size() + length.size() + 4;
  head.resize(size);
  char* p = head.data();
  const auto put = [&p](std::string_view text) {
    std::memcpy(p, text.data(), text.size());
    p += text.size();
  };
  const auto field = [&](std::string_view name, std::string_view value) {
    put(name);
    put(": ");
    put(value);
    put("\r\n");
  };
  put(method);
  put(" ");
  put(sig.canonical_path);
  if (!sig.canonical_query.empty()) {
    put("?");
    put(sig.canonical_query);
  }
  put(version);
  for (const auto& [name, value] : extra) {
    if (http::has_line_break(value) || breaks_name(name)) return false;
    field(name, value);
  }
  for (const auto& [name, value] : sig.headers) {  // names the signer's own constants
    if (http::has_line_break(value)) return false;
    field(name, value);
  }
  if (!length.empty()) field(length_name, length);
  put("\r\n");
  return true;
}

class static_credentials final : public credentials_provider {
 public:
  explicit static_credentials(credentials c) : c_(std::move(c)) {}
  credentials current() override { return c_; }
  void current_into(credentials& out) override { out = c_; }

 private:
  credentials c_;
};

}  // namespace

std::shared_ptr<credentials_provider> static_provider(credentials c) {
  return std::make_shared<static_credentials>(std::move(c));
}

std::string endpoint::host_header() const {
  const bool default_port = (tls && port == 443) || (!tls && port == 80);
  const bool ipv6 = host.find(':') != std::string::npos;
  std::string h = ipv6 ? "[" + host + "]" : host;
  return default_port ? h : h + ":" + std::to_string(port);
}

std::optional<endpoint> parse_endpoint(std::string_view url) {
  endpoint ep;
  if (url.starts_with("http://")) {
    url.remove_prefix(7);
  } else if (url.starts_with("https://")) {
    url.remove_prefix(8);
    ep.tls = true;
    ep.port = 443;
  } else {
    return std::nullopt;
  }
  if (auto slash = url.find('/'); slash != std::string_view::npos) {
    if (url.substr(slash) != "/") return std::nullopt;  // endpoints with a path are not supported
    url = url.substr(0, slash);
  }
  std::string_view host = url, port;
  if (url.starts_with("[")) {
    auto close = url.find(']');
    if (close == std::string_view::npos) return std::nullopt;
    host = url.substr(1, close - 1);
    if (close + 1 < url.size()) {
      if (url[close + 1] != ':') return std::nullopt;
      port = url.substr(close + 2);
    }
  } else if (auto colon = url.rfind(':'); colon != std::string_view::npos) {
    host = url.substr(0, colon);
    port = url.substr(colon + 1);
  }
  if (host.empty()) return std::nullopt;
  ep.host = std::string(host);
  if (!port.empty()) {
    auto p = http::parse_decimal(port);
    if (!p || *p == 0 || *p > 65535) return std::nullopt;
    ep.port = static_cast<std::uint16_t>(*p);
  }
  return ep;
}

std::string client_counters::render() const {
  std::string out;
  auto counter = [&](const char* name, const char* help, std::uint64_t v) {
    append_metric(out, name, "counter", help, v);
  };
  counter("mediagate_s3_requests_total", "Requests sent to S3 (every attempt).", requests.load());
  counter("mediagate_s3_get_requests_total", "GetObject requests sent to S3.", get_requests.load());
  counter("mediagate_s3_head_requests_total", "HeadObject requests sent to S3.", head_requests.load());
  counter("mediagate_s3_received_bytes_total", "Body bytes received from S3.", bytes_received.load());
  counter("mediagate_s3_spliced_bytes_total",
          "Body bytes from S3 moved to clients without a copy through memory (splice).",
          bytes_spliced.load());
  counter("mediagate_s3_retries_total", "Requests to S3 sent again after a retryable failure.",
          retries.load());
  counter("mediagate_s3_resumes_total", "Object reads resumed after a connection broke mid-body.",
          resumes.load());
  counter("mediagate_s3_errors_total", "S3 requests that failed for good.", errors.load());
  counter("mediagate_s3_connections_opened_total", "Connections opened to S3.", connections_opened.load());
  counter("mediagate_s3_tls_handshakes_total", "TLS handshakes with S3.", tls_handshakes.load());
  counter("mediagate_s3_tls_resumed_total", "TLS handshakes with S3 that resumed an earlier session.",
          tls_resumed.load());
  return out;
}

net::awaitable<result<response::piece>> response::splice_some(std::span<char> buf, int) {
  auto n = co_await read_some(buf);
  if (!n) co_return n.err();
  co_return piece{*n, false};
}

net::awaitable<result<std::string>> response::read_all(std::size_t limit) {
  std::string out;
  char buf[8192];
  while (true) {
    auto n = co_await read_some(buf);
    if (!n) co_return n.err();
    if (*n == 0) break;
    if (out.size() + *n > limit)
      co_return error{errc::upstream_unavailable, "storage sent a larger answer than expected"};
    out.append(buf, *n);
  }
  co_return out;
}

namespace {

bool is_ip_literal(const std::string& host) {
  boost::system::error_code ec;
  net::ip::make_address(host, ec);
  return !ec;
}

// The TLS handshake of a new connection to `name` (the endpoint's host, or bucket.host): SNI unless `name` is
// an address, the certificate checked against `name` by OpenSSL itself, and the pool's latest session
// offered.
net::awaitable<std::optional<error>> tls_handshake(connection& conn, const std::string& name,
                                                   client::pool& pool, const client_settings& settings,
                                                   client_counters& counters) {
  SSL* ssl = conn.secure->native_handle();
  const bool ip = is_ip_literal(name);
  if (!ip && !SSL_set_tlsext_host_name(ssl, name.c_str()))
    co_return error{errc::upstream_unavailable, "cannot set the TLS server name " + name};
  if (settings.verify_tls) {
    const int ok = ip ? X509_VERIFY_PARAM_set1_ip_asc(SSL_get0_param(ssl), name.c_str())
                      : SSL_set1_host(ssl, name.c_str());
    if (!ok) co_return error{errc::upstream_unavailable, "cannot check the TLS certificate for " + name};
  }
  if (settings.tls_resume && pool.session) {
    // A copy: OpenSSL marks the session an SSL used as not resumable when that connection is closed without
    // a TLS shutdown (how pooled connections end), which would spoil the pool's one for every later
    // connection.
    SSL_SESSION* copy = SSL_SESSION_dup(pool.session);
    if (copy) {
      SSL_set_session(ssl, copy);
      SSL_SESSION_free(copy);
    }
  }
  auto [hec] = co_await conn.secure->async_handshake(net::ssl::stream_base::client, kTuple);
  if (hec) {
    const long verify = SSL_get_verify_result(ssl);
    if (settings.verify_tls && verify != X509_V_OK)
      co_return error{errc::upstream_rejected,
                      "the TLS certificate of storage at " + settings.ep.host_header() + " (as " + name +
                          ") is not trusted: " + X509_verify_cert_error_string(verify) +
                          " (trust its CA with --s3-ca-file or AWS_CA_BUNDLE)"};
    co_return io_error_of(hec, "TLS handshake", settings.ep);
  }
  counters.tls_handshakes.fetch_add(1, std::memory_order_relaxed);
  if (SSL_session_reused(ssl)) counters.tls_resumed.fetch_add(1, std::memory_order_relaxed);
  co_return std::nullopt;
}

}  // namespace

std::optional<std::pair<std::string, std::uint16_t>> parse_host_port(std::string_view text) {
  std::string_view host, port;
  if (text.starts_with("[")) {
    const auto close = text.find("]:");
    if (close == std::string_view::npos) return std::nullopt;
    host = text.substr(1, close - 1);
    port = text.substr(close + 2);
  } else {
    const auto colon = text.rfind(':');
    if (colon == std::string_view::npos) return std::nullopt;
    host = text.substr(0, colon);
    port = text.substr(colon + 1);
    if (host.find(':') != std::string_view::npos) return std::nullopt;  // a bare IPv6 address needs brackets
  }
  const auto p = http::parse_decimal(port);
  if (host.empty() || !p || *p == 0 || *p > 65535) return std::nullopt;
  return std::pair{std::string(host), static_cast<std::uint16_t>(*p)};
}

client::client(net::any_io_executor ex, client_settings settings, std::shared_ptr<credentials_provider> creds,
               std::shared_ptr<client_counters> counters)
    : ex_(std::move(ex)),
      settings_(std::move(settings)),
      creds_(std::move(creds)),
      counters_(std::move(counters)),
      pool_(std::make_shared<pool>()) {
  pool_->max_idle = settings_.max_idle_connections;
  pool_->ep = settings_.ep;
  const auto& ep = settings_.ep;
  host_header_ = settings_.path_style ? ep.host_header() : settings_.bucket + "." + ep.host_header();
  name_host_ = settings_.path_style ? ep.host : settings_.bucket + "." + ep.host;
  if (settings_.ep.tls) {
    pool_->tls = std::make_unique<net::ssl::context>(net::ssl::context::tls_client);
    pool_->tls->set_default_verify_paths();
    if (!settings_.ca_file.empty()) pool_->tls->load_verify_file(settings_.ca_file);
    pool_->tls->set_verify_mode(settings_.verify_tls ? net::ssl::verify_peer : net::ssl::verify_none);
    SSL_CTX* ctx = pool_->tls->native_handle();
    SSL_CTX_set_ex_data(ctx, pool::ex_index(), pool_.get());
    if (settings_.tls_resume) {
      // Sessions are kept by the pool (one per client, i.e. per event loop), not by OpenSSL's internal cache.
      SSL_CTX_set_session_cache_mode(ctx, SSL_SESS_CACHE_CLIENT | SSL_SESS_CACHE_NO_INTERNAL_STORE);
      SSL_CTX_sess_set_new_cb(ctx, &pool::on_new_session);
    } else {
      SSL_CTX_set_session_cache_mode(ctx, SSL_SESS_CACHE_OFF);
      SSL_CTX_set_options(ctx, SSL_OP_NO_TICKET);
    }
  }
}

client::~client() = default;

net::awaitable<result<std::unique_ptr<response>>> client::send(request_spec spec) {
  bool fresh = false;
  for (int attempt = 1;; ++attempt) {
    auto r = co_await send_once(spec, fresh);
    const bool last = !spec.idempotent || attempt >= settings_.max_attempts;
    if (r) {
      const auto status = (*r)->status();
      if (status < 500 || last) co_return r;
      auto body = co_await (*r)->read_all(64 * 1024);
      auto err = parse_s3_error(status, body ? *body : std::string());
      if (!is_retryable(err)) co_return r;  // callers cannot re-read the body, but status and headers stay
    } else if (last || r.err().code == errc::upstream_timeout || r.err().code == errc::upstream_rejected) {
      counters_->errors.fetch_add(1, std::memory_order_relaxed);
      co_return r;
    }
    counters_->retries.fetch_add(1, std::memory_order_relaxed);
    fresh = true;
    // Exponential backoff: 50 ms, 200 ms, 800 ms ... (ClickHouse's ReadBufferFromS3 does the same).
    net::steady_timer timer(ex_);
    timer.expires_after(settings_.retry_base_delay * (1 << (2 * (attempt - 1))));
    co_await timer.async_wait(kTuple);
  }
}

net::awaitable<result<std::unique_ptr<response>>> client::send_once(const request_spec& spec,
                                                                    bool fresh_connection) {
  const auto& ep = settings_.ep;
  std::unique_ptr<connection> conn = fresh_connection ? nullptr : pool_->acquire();
  const bool reused = conn != nullptr;
  // The name the store is addressed by (Host, SNI, certificate); the address dialled may differ (connect_to).
  const std::string& name_host = name_host_;
  if (!conn) {
    conn = std::make_unique<connection>();
    const std::string& dial_host = settings_.connect_host.empty() ? name_host : settings_.connect_host;
    const std::string dial_port = std::to_string(settings_.connect_port ? settings_.connect_port : ep.port);
    tcp::resolver resolver(ex_);
    auto [rec, results] = co_await resolver.async_resolve(dial_host, dial_port, kTuple);
    if (rec) co_return io_error_of(rec, "resolving " + dial_host, ep);
    if (pool_->tls) {
      conn->secure.emplace(ex_, *pool_->tls);
    } else {
      conn->plain.emplace(ex_);
    }
    conn->lowest().expires_after(settings_.connect_timeout);
    auto [cec, cep] = co_await conn->lowest().async_connect(results, kTuple);
    if (cec) co_return io_error_of(cec, "connecting", ep);
    conn->lowest().socket().set_option(tcp::no_delay(true));
    conn->lowest().socket().non_blocking(true);  // synchronous reads return would_block instead of waiting
    if (conn->secure) {
      auto failed = co_await tls_handshake(*conn, name_host, *pool_, settings_, *counters_);
      if (failed) co_return *failed;
    }
    counters_->connections_opened.fetch_add(1, std::memory_order_relaxed);
  }

  // Signed into the client's scratch strings and written into the connection's head buffer, with no co_await
  // in between (another request of this loop may sign next).
  path_.clear();
  path_ += '/';
  if (settings_.path_style) {
    path_ += settings_.bucket;
    if (!spec.key.empty()) path_ += '/';
  }
  path_ += spec.key;
  request_view to_sign{spec.method, host_header_, path_, spec.query, spec.headers, {}};
  const signed_headers* sig = &sig_;  // or a recent read's, reused
  if (settings_.anonymous) {
    unsigned_request(to_sign, sig_);
  } else {
    // Reads carry no body: UNSIGNED-PAYLOAD (which S3 and radosgw accept for any request) instead of the
    // empty body's hash, which appears twice in what is hashed (the header and the last line): 96 bytes,
    // about 1.5 of the 10 SHA-256 blocks a signed ranged GET cost, and 48 bytes less on the wire.
    const bool read = spec.body.empty() && (spec.method == "GET" || spec.method == "HEAD");
    const std::string body_hash = spec.body.empty() ? std::string() : sha256_hex(spec.body);
    to_sign.payload_sha256 = read                ? unsigned_payload
                             : spec.body.empty() ? empty_payload_sha256
                                                 : std::string_view(body_hash);
    // A read's Range and preconditions go unsigned, so that reads of one object within a second share one
    // signature (a SHA-256 of the canonical request and an HMAC, with their inputs: a third of the client's
    // instructions per ranged GET from a fast store, bench/results/INSTRUCTIONS-2026-12-02.md).
    const bool reusable = read && std::all_of(spec.headers.begin(), spec.headers.end(),
                                              [](const auto& h) { return read_may_leave_unsigned(h.first); });
    creds_->current_into(creds_now_);
    const auto now = std::chrono::system_clock::now();
    if (!reusable) {
      sign_v4(to_sign, creds_now_, settings_.region, "s3", now, keys_, sig_);
    } else if (!(sig = reads_signed_.find(spec.method, path_, spec.query, now, creds_now_))) {
      to_sign.headers = {};
      auto& out = reads_signed_.claim();
      sign_v4(to_sign, creds_now_, settings_.region, "s3", now, keys_, out);
      reads_signed_.remember(spec.method, path_, spec.query, now, creds_now_);
      sig = &out;
    }
  }
  if (!request_head(conn->head, spec.method, *sig, spec.headers, spec.body.size()))
    co_return error{errc::bad_key, "a header value for storage contains a line break"};

  counters_->requests.fetch_add(1, std::memory_order_relaxed);
  if (spec.method == "GET") counters_->get_requests.fetch_add(1, std::memory_order_relaxed);
  if (spec.method == "HEAD") counters_->head_requests.fetch_add(1, std::memory_order_relaxed);

  conn->lowest().expires_after(settings_.response_timeout);
  std::array<net::const_buffer, 2> message = {net::buffer(conn->head), net::buffer(spec.body)};
  boost::system::error_code wec;
  if (conn->plain) {  // a non-blocking send first: the request usually fits the socket buffer at once
    auto sent = conn->plain->socket().write_some(message, wec);
    if (wec == net::error::would_block || wec == net::error::try_again) wec = {};
    for (auto& part : message) {
      const auto skip = std::min(sent, part.size());
      part += skip;
      sent -= skip;
    }
  }
  if (!wec && net::buffer_size(message) > 0)
    std::tie(wec, std::ignore) =
        co_await conn->visit([&](auto& s) { return net::async_write(s, message, kTuple); });
  if (wec) co_return io_error_of(wec, reused ? "sending on a reused connection" : "sending the request", ep);

  // Room for a response header in one recv (bodies are read straight into the caller's buffer); a pooled
  // connection has it from its first request.
  conn->buffer.reserve(4096);
  conn->ack_pushed = false;
  auto res = std::make_unique<response_impl>(std::move(conn), pool_, *counters_, settings_.response_timeout);
  auto& parser = res->parser();
  if (spec.method == "HEAD") parser.skip(true);
  // The head: parsed from what has arrived (a fast store's answer is usually all here by now, with the first
  // body bytes), waiting only for what has not. Beast's async_read_header would go through its composed
  // operations and a trip through the event loop for every answer.
  auto& c = res->conn();
  boost::system::error_code hec;
  bool look = c.late_answers % 8 == 0;
  while (true) {
    if (c.buffer.size() > 0) {
      const auto used = parser.put(c.buffer.data(), hec);
      c.buffer.consume(used);
      if (parser.is_header_done() || (hec && hec != bhttp::error::need_more)) break;
      hec = {};
    }
    const auto space = c.buffer.prepare(std::max<std::size_t>(c.buffer.capacity() - c.buffer.size(), 1024));
    std::size_t n = 0;
    bool wait = true;
    if (c.plain && look) {
      n = c.plain->socket().read_some(space, hec);
      wait = hec == net::error::would_block || hec == net::error::try_again;
      if (c.buffer.size() == 0) c.late_answers = wait ? c.late_answers + 1 : 0;
    }
    look = true;  // the rest of a head that has begun to arrive is likely here or on its way
    if (wait) {
      push_ack(c);
      std::tie(hec, n) = co_await c.visit([&](auto& s) { return s.async_read_some(space, kTuple); });
    }
    c.buffer.commit(n);
    if (hec == net::error::eof && n == 0)
      hec = parser.got_some() ? bhttp::error::partial_message : bhttp::error::end_of_stream;
    if (hec) break;
  }
  if (hec)
    co_return io_error_of(hec, reused ? "reading the answer on a reused connection" : "reading the answer",
                          ep);
  res->header_done();
  co_return std::unique_ptr<response>(std::move(res));
}

}  // namespace mediagate::s3
