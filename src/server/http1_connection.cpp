#include "server/http1_connection.hpp"

#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <openssl/ssl.h>
#include <spdlog/spdlog.h>
#include <sys/sendfile.h>
#include <sys/socket.h>
#include <unistd.h>

#include <boost/asio/as_tuple.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/ssl/error.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <boost/asio/write.hpp>
#include <boost/beast/http/buffer_body.hpp>
#include <boost/beast/http/error.hpp>
#include <boost/beast/http/parser.hpp>
#include <boost/beast/http/read.hpp>
#include <cerrno>
#include <cstring>
#include <ctime>
#include <type_traits>

#include "http/http_date.hpp"
#include "http/https_redirect.hpp"
#include "http/media_key.hpp"
#include "http/response_head.hpp"
#include "http/signed_link.hpp"
#include "http/token.hpp"
#include "server/drained_read.hpp"
#include "server/h2_connection.hpp"
#include "server/metrics.hpp"
#include "server/router.hpp"
#include "server/tls_io.hpp"
#include "storage/storage.hpp"

namespace mediagate::server {
namespace {

namespace beast = boost::beast;
namespace bhttp = beast::http;
// Beast allocates every field of a request head on its own: the fields of one head come from one block kept
// by the connection instead, emptied before each request (a third of a small request's allocations went to
// them). A head that does not fit takes the rest from the heap. Hand-written: Beast takes any allocator, and
// std::pmr's monotonic resource would not give a full block back for the next request.
struct head_arena {
  alignas(std::max_align_t) char block[2048];
  std::size_t used = 0;
};

template <class T>
struct arena_allocator {
  using value_type = T;
  head_arena* arena;

  explicit arena_allocator(head_arena* a) noexcept : arena(a) {}
  template <class U>
  arena_allocator(const arena_allocator<U>& other) noexcept : arena(other.arena) {}

  T* allocate(std::size_t n) {
    const std::size_t bytes = n * sizeof(T);
    const std::size_t at = (arena->used + alignof(T) - 1) / alignof(T) * alignof(T);
    if (at <= sizeof arena->block && bytes <= sizeof arena->block - at) {
      arena->used = at + bytes;
      return reinterpret_cast<T*>(arena->block + at);
    }
    return static_cast<T*>(::operator new(bytes));
  }
  void deallocate(T* p, std::size_t) noexcept {
    const auto* bytes = reinterpret_cast<const char*>(p);
    if (bytes >= arena->block && bytes < arena->block + sizeof arena->block) return;  // freed with the block
    ::operator delete(p);
  }
  template <class U>
  friend bool operator==(const arena_allocator& a, const arena_allocator<U>& b) noexcept {
    return a.arena == b.arena;
  }
};

using parser_type = bhttp::request_parser<bhttp::buffer_body, arena_allocator<char>>;

constexpr auto kTuple = net::as_tuple(net::use_awaitable);
constexpr std::uint64_t kSendfileChunk = 4u << 20;
constexpr std::size_t kFirstRead = 4096;  // most request heads fit; the parser reads on for longer ones
constexpr std::uint64_t kYieldEvery = 16u << 20;      // let other connections of this loop run
constexpr std::uint64_t kWholeRangeMax = 128u << 10;  // ranges up to this size get a buffer that holds them
constexpr std::size_t kTlsFileBuffer = 128u << 10;    // a file's bytes over TLS
constexpr std::size_t kLingerBytes = 16u << 20;
constexpr std::chrono::milliseconds kLingerTime{2000};
constexpr std::size_t kPendingMost = 16u << 10;  // the head and bytes from memory held back for the pipe's

// Every function that moves bytes takes the stream it moves them on: the connection's socket, or the TLS
// stream over it. Zero-copy (sendfile) and the non-blocking first write are for plain TCP only.
template <class Stream>
constexpr bool is_plain = std::is_same_v<Stream, tcp::socket>;

}  // namespace

std::string_view http_date_now() {
  thread_local std::time_t cached_second = 0;
  thread_local http::http_date_text cached;
  const std::time_t now = std::time(nullptr);
  if (now != cached_second) {
    cached_second = now;
    cached = http::http_date(now);
  }
  return cached.view();
}

namespace {

using send_parts = std::array<net::const_buffer, 2>;

// A non-blocking send on plain TCP of what the socket takes now; `parts` is advanced past it. False when the
// connection is broken. An asynchronous write that completes at once still costs a trip through the event
// loop (a posted completion and an epoll_wait), measured on every small response. (Not over TLS: a
// synchronous SSL_write on a non-blocking socket could leave a record half sent.)
bool send_now(connection& c, tcp::socket& s, send_parts& parts, int flags = 0) {
  boost::system::error_code ec;
  std::size_t sent = s.send(parts, flags, ec);
  if (ec && ec != net::error::would_block && ec != net::error::try_again) return false;
  c.bytes_written += sent;
  for (auto& part : parts) {
    const auto skip = std::min(sent, part.size());
    part += skip;
    sent -= skip;
  }
  return true;
}

bool all_sent(const send_parts& parts) { return parts[0].size() == 0 && parts[1].size() == 0; }

// What send_now left: waits for the client to take it.
template <class Stream>
net::awaitable<bool> send_rest(connection& c, Stream& s, send_parts parts) {
  auto [wec, n] = co_await net::async_write(s, parts, kTuple);
  c.bytes_written += n;
  co_return !wec && !c.timed_out;
}

// Writes all of `head` then `body` before the send deadline; false when the client is gone or too slow.
template <class Stream>
net::awaitable<bool> write_all(connection& c, Stream& s, const server_config& cfg, std::string_view head,
                               std::span<const char> body = {}) {
  c.set_deadline(cfg.send_timeout);
  send_parts parts = {net::buffer(head), net::buffer(body.data(), body.size())};
  if constexpr (is_plain<Stream>) {
    if (!send_now(c, s, parts)) co_return false;
    if (all_sent(parts)) co_return true;
  }
  co_return co_await send_rest(c, s, parts);
}

// One sendfile() of at most a chunk without waiting: `region` and `length` are advanced past what the socket
// took. False when the connection is broken or the file became shorter than planned.
bool sendfile_now(connection& c, storage::file_region& region, std::uint64_t& length) {
  off_t offset = static_cast<off_t>(region.offset);
  ssize_t n;
  do {
    n = ::sendfile(c.socket.native_handle(), region.fd, &offset,
                   static_cast<std::size_t>(std::min(length, kSendfileChunk)));
  } while (n < 0 && errno == EINTR);
  if (n > 0) {
    region.offset += static_cast<std::uint64_t>(n);
    length -= static_cast<std::uint64_t>(n);
    c.bytes_written += static_cast<std::uint64_t>(n);
    return true;
  }
  return n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK);
}

// Zero-copy: the kernel moves the file's pages to the socket.
net::awaitable<bool> send_file_region(connection& c, const server_config& cfg, storage::file_region region,
                                      std::uint64_t length) {
  std::uint64_t since_yield = 0;
  off_t offset = static_cast<off_t>(region.offset);
  while (length > 0) {
    const auto n = ::sendfile(c.socket.native_handle(), region.fd, &offset,
                              static_cast<std::size_t>(std::min(length, kSendfileChunk)));
    if (n > 0) {
      const auto moved = static_cast<std::uint64_t>(n);
      length -= moved;
      since_yield += moved;
      c.bytes_written += moved;
      c.set_deadline(cfg.send_timeout);
      if (since_yield >= kYieldEvery) {
        since_yield = 0;
        co_await net::post(c.socket.get_executor(), net::use_awaitable);
      }
      continue;
    }
    if (n == 0) co_return false;  // the file became shorter than planned: never send fewer bytes silently
    if (errno == EINTR) continue;
    if (errno != EAGAIN && errno != EWOULDBLOCK) co_return false;
    since_yield = 0;
    auto [ec] = co_await c.socket.async_wait(tcp::socket::wait_write, kTuple);
    if (ec || c.timed_out) co_return false;
  }
  co_return true;
}

// The connection's pipe for splice, made on first use. False when none can be made (descriptors): the
// bytes then go through memory.
bool ensure_pipe(connection& c) {
  if (c.pipe_in >= 0) return true;
  if (c.pipe_failed) return false;
  int fds[2];
  if (::pipe2(fds, O_NONBLOCK | O_CLOEXEC) != 0) {
    c.pipe_failed = true;
    return false;
  }
  c.pipe_out = fds[0];
  c.pipe_in = fds[1];
  return true;
}

// One splice() of the pipe's `left` bytes to the socket without waiting; `left` is advanced past what the
// socket took. False when the connection is broken.
bool splice_now(connection& c, std::size_t& left) {
  ssize_t n;
  do {
    n = ::splice(c.pipe_out, nullptr, c.socket.native_handle(), nullptr, left,
                 SPLICE_F_MOVE | SPLICE_F_NONBLOCK);
  } while (n < 0 && errno == EINTR);
  if (n > 0) {
    left -= static_cast<std::size_t>(n);
    c.bytes_written += static_cast<std::uint64_t>(n);
    return true;
  }
  return n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK);
}

// Empties the pipe into the socket: what splice_now() left waits for the client to take it.
net::awaitable<bool> splice_rest(connection& c, const server_config& cfg, std::size_t left) {
  while (left > 0) {
    auto [ec] = co_await c.socket.async_wait(tcp::socket::wait_write, kTuple);
    if (ec || c.timed_out) co_return false;
    c.set_deadline(cfg.send_timeout);
    if (!splice_now(c, left)) co_return false;
  }
  co_return true;
}

// Bytes that a store moved into the connection's pipe, to the client: the head and any bytes from memory
// first, flagged as more to come (one segment with what follows), then the pipe.
net::awaitable<bool> send_spliced(connection& c, const server_config& cfg, std::string& pending,
                                  std::size_t bytes) {
  c.set_deadline(cfg.send_timeout);
  if (!pending.empty()) {
    send_parts parts = {net::buffer(pending), net::const_buffer()};
    if (!send_now(c, c.socket, parts, MSG_MORE)) co_return false;
    if (!all_sent(parts) && !co_await send_rest(c, c.socket, parts)) co_return false;
    pending.clear();
  }
  std::size_t left = bytes;
  if (!splice_now(c, left)) co_return false;
  co_return left == 0 || co_await splice_rest(c, cfg, left);
}

// Sizes the connection's stream buffer for a range of `length` bytes. A short range (Safari's 64 KiB reads)
// goes through in one piece: one storage read and one send instead of several. Long ranges keep the
// configured size, which bounds the memory of each playing stream.
void size_stream_buffer(connection& c, std::size_t bound, std::uint64_t length) {
  if (length <= kWholeRangeMax) {
    const auto want = std::max<std::size_t>(bound, static_cast<std::size_t>(length));
    if (c.stream_buffer.size() < want) c.stream_buffer.resize(want);
  } else if (c.stream_buffer.size() != bound) {  // also a long stream after short ranges: back to the bound
    c.stream_buffer.resize(bound);
    c.stream_buffer.shrink_to_fit();
  }
}

// Bytes that pass through the buffer were read from storage for this client: let the kernel hold only a few
// chunks of them unsent, so that a client who leaves (a seek) has cost little more storage reading than it
// took. Files and cached slices go zero-copy and keep the kernel's own limits.
void limit_unsent(connection& c, std::size_t chunk) {
  if (c.low_water_set) return;
  c.low_water_set = true;
  const int low_water = static_cast<int>(4 * chunk);
  ::setsockopt(c.socket.native_handle(), IPPROTO_TCP, TCP_NOTSENT_LOWAT, &low_water, sizeof low_water);
}

// Moves one range from the reader to the socket: file chunks by sendfile (plain TCP), others through one
// buffer per connection, refilled only once the client took the previous one (bounded memory,
// backpressure). Over TLS every byte goes through that buffer. `pending` holds bytes to send first (the
// response head, multipart framing).
template <class Stream>
net::awaitable<bool> send_range(connection& c, Stream& s, services& svc, storage::range_reader& reader,
                                std::uint64_t length, std::string& pending, const std::string& what) {
  if (reader.needs_buffer() || !is_plain<Stream>) {
    // A file's bytes over TLS are copied anyway: read in larger pieces (fewer reads and waits per MB),
    // still a fixed bound per stream. What comes from a remote store keeps the configured buffer, which
    // bounds what a client that leaves made us fetch.
    const auto bound = reader.needs_buffer()
                           ? svc.config.stream_buffer_bytes
                           : std::max<std::size_t>(svc.config.stream_buffer_bytes, kTlsFileBuffer);
    size_stream_buffer(c, bound, length);
  }
  // A store's socket to the client's through a pipe: no copy into memory and out again.
  bool spliced = false;
  if constexpr (is_plain<Stream>) spliced = svc.config.splice && reader.can_splice() && ensure_pipe(c);
  std::uint64_t sent = 0;
  while (length > 0) {
    auto ready = reader.next_ready(is_plain<Stream>);
    result<storage::chunk> got;
    if (ready) {
      got = std::move(*ready);
    } else if (spliced) {
      // In pieces of the stream buffer's size, as through it (size_stream_buffer): a short range in one, a
      // long one in pieces that a store sending in small writes fills as its bytes come.
      got = co_await reader.next_spliced(c.stream_buffer, c.pipe_in);
    } else {
      got = co_await reader.next(c.stream_buffer, is_plain<Stream>);
    }
    if (!got || got->bytes == 0 || got->bytes > length) {
      if (!got)
        svc.log.warn("{}: storage failed mid-response for {} after {} bytes of a range: {}", c.peer, what,
                     sent, got.err().message);
      co_return false;
    }
    if (got->in_pipe) {
      limit_unsent(c, svc.config.stream_buffer_bytes);
      if (!co_await send_spliced(c, svc.config, pending, got->bytes)) co_return false;
    } else if (spliced && pending.size() + got->bytes <= kPendingMost && got->bytes < length) {
      // A few bytes from memory (some came with the store's answer head): sent with the pipe's next ones.
      pending.append(c.stream_buffer.data(), got->bytes);
    } else if (got->file) {
      if constexpr (is_plain<Stream>) {
        // The head and the file at once when the socket takes them (a short range): no coroutine frames for
        // the waits, which only the rest needs. (Not MSG_MORE to send the head in one segment with the file's
        // first bytes: measured, it raised the server's CPU per 64 KiB range from 37 to 55 us.)
        c.set_deadline(svc.config.send_timeout);
        send_parts parts = {net::buffer(pending), net::const_buffer()};
        if (!send_now(c, s, parts)) co_return false;
        if (!all_sent(parts) && !co_await send_rest(c, s, parts)) co_return false;
        pending.clear();
        auto region = *got->file;
        std::uint64_t left = got->bytes;
        if (!sendfile_now(c, region, left)) co_return false;
        if (left > 0 && !co_await send_file_region(c, svc.config, region, left)) co_return false;
      } else {
        co_return false;  // asked for bytes, not a file region
      }
    } else {
      if (!got->from_memory) limit_unsent(c, svc.config.stream_buffer_bytes);
      if (!co_await write_all(c, s, svc.config, pending, {c.stream_buffer.data(), got->bytes}))
        co_return false;
      pending.clear();
    }
    length -= got->bytes;
    sent += got->bytes;
  }
  if (reader.has_finish()) co_await reader.finish(c.stream_buffer);
  co_return true;
}

// The body of a planned response after its head (in `pending`): literal framing and ranges, in order.
// Once the head is out, a failure can only be signalled by closing the connection.
template <class Stream>
net::awaitable<bool> send_media(connection& c, Stream& s, services& svc, media_body& body,
                                std::string pending) {
  auto reader = std::move(body.first);
  bool first = true;
  for (const auto& segment : body.segments) {
    pending += segment.literal;
    if (!segment.range) continue;
    if (!first || !reader) {
      auto opened = co_await body.open(*segment.range);
      if (!opened) {
        svc.log.warn("{}: cannot read {} range {}-{}: {}", c.peer, body.what, segment.range->first,
                     segment.range->last, opened.err().message);
        co_return false;
      }
      reader = std::move(*opened);
    }
    first = false;
    if (!co_await send_range(c, s, svc, *reader, segment.range->length(), pending, body.what))
      co_return false;
    reader.reset();
  }
  co_return pending.empty() || co_await write_all(c, s, svc.config, pending);
}

// What happened to one request, for the access log and the keep-alive decision.
struct request_outcome {
  unsigned status = 0;
  std::uint64_t body_bytes = 0;  // what the kernel accepted of the body, also when the client left early
  bool close = false;            // the connection must close after this response (or was already broken)
  bool close_quietly = false;    // the response could not be written: nothing to linger for
};

template <class Stream>
net::awaitable<request_outcome> write_response(connection& c, Stream& s, services& svc, response r,
                                               bool head_only, bool close) {
  close = close || r.close;
  auto head = serialize_response_head(r, close);
  const auto head_size = head.size();
  const auto before = c.bytes_written;
  bool ok = false;
  if (r.media)
    ok = co_await send_media(c, s, svc, *r.media, std::move(head));
  else
    ok = co_await write_all(c, s, svc.config, head,
                            head_only ? std::span<const char>() : std::span<const char>(r.body));
  const auto written = c.bytes_written - before;
  co_return request_outcome{r.status, written > head_size ? written - head_size : 0, close || !ok, !ok};
}

// The request body as handlers read it: a deadline per read (a client that stops sending is dropped), the
// handler's limit on the total, and "100 Continue" sent when an HTTP/1.1 client waits for it.
template <class Stream>
class h1_body final : public request_body {
 public:
  h1_body(connection& c, Stream& s, const server_config& cfg, parser_type& parser)
      : c_(c), s_(s), cfg_(cfg), parser_(parser) {
    // RFC 9110 §10.1.1: a server ignores 100-continue in an HTTP/1.0 request.
    expect_continue_ = parser.get().version() >= 11 &&
                       http::iequals(http::trim_ows(parser.get()[bhttp::field::expect]), "100-continue");
  }

  net::awaitable<result<std::size_t>> read(std::span<char> buf) override {
    if (expect_continue_ && !parser_.is_done()) {
      expect_continue_ = false;
      if (!co_await write_all(c_, s_, cfg_, "HTTP/1.1 100 Continue\r\n\r\n")) co_return gone("");
    }
    while (!parser_.is_done()) {
      auto& body = parser_.get().body();
      body.data = buf.data();
      body.size = buf.size();
      body.more = true;
      c_.set_deadline(cfg_.idle_timeout);
      auto [ec, n] = co_await bhttp::async_read_some(s_, c_.buffer, parser_, kTuple);
      if (ec == bhttp::error::need_buffer) ec = {};
      if (c_.timed_out) co_return gone("timed out");
      if (ec) {
        if (ec.category() == bhttp::make_error_code(bhttp::error::bad_chunk).category() &&
            ec != bhttp::error::partial_message && ec != bhttp::error::end_of_stream)
          co_return error{errc::bad_body, "malformed request body: " + ec.message()};
        co_return gone(ec.message());
      }
      const auto got = buf.size() - body.size;
      received_ += got;
      if (received_ > limit_) co_return error{errc::too_large, "the request body is larger than the limit"};
      if (got > 0) co_return got;
    }
    co_return std::size_t{0};
  }
  void set_limit(std::uint64_t bytes) override { limit_ = bytes; }
  std::uint64_t received() const override { return received_; }

 private:
  error gone(const std::string& why) {
    return {errc::client_gone, "the client stopped sending the body" + (why.empty() ? "" : ": " + why)};
  }
  connection& c_;
  Stream& s_;
  const server_config& cfg_;
  parser_type& parser_;
  std::uint64_t limit_ = 0;
  std::uint64_t received_ = 0;
  bool expect_continue_ = false;
};

// After an early answer to a request whose body we did not read (413, 405), reads and drops what the client
// still sends for a moment, so that its TCP stack sees our response rather than a reset from closing with
// unread data.
template <class Stream>
net::awaitable<void> linger(connection& c, Stream& s) {
  boost::system::error_code ignored;
  c.socket.shutdown(tcp::socket::shutdown_send, ignored);  // the client sees the end of our answer at once
  std::vector<char> scratch(64 * 1024);
  std::size_t total = 0;
  c.set_deadline(kLingerTime);
  while (total < kLingerBytes) {
    auto [ec, n] = co_await s.async_read_some(net::buffer(scratch), kTuple);
    if (ec || c.timed_out) break;
    total += n;
  }
}

}  // namespace

// Log fields come from the client: quotes, backslashes, control and non-ASCII bytes are escaped, so that a
// field can never forge another.
std::string log_escape(std::string_view s) {
  std::string out;
  out.reserve(s.size());
  for (unsigned char ch : s) {
    if (ch == '"' || ch == '\\') {
      out += '\\';
      out += static_cast<char>(ch);
    } else if (ch < 0x20 || ch >= 0x7f) {
      char hex[5];
      std::snprintf(hex, sizeof hex, "\\x%02x", ch);
      out += hex;
    } else {
      out += static_cast<char>(ch);
    }
  }
  return out;
}

namespace {

// The answer to a request head that could not be read, if it deserves one (not a quiet close).
std::optional<response> head_error_response(connection& c, services& svc, const parser_type& parser,
                                            boost::system::error_code ec) {
  const bool got_some = c.buffer.size() > 0 || parser.got_some();
  if (c.timed_out) {
    c.timed_out = false;
    if (!got_some) return std::nullopt;
    svc.log.info("{}: request header not received within {} ms: 408", c.peer,
                 svc.config.header_timeout.count());
    return text_response(408, "request timeout: the request header took too long");
  }
  if (ec == bhttp::error::header_limit || ec == bhttp::error::buffer_overflow) {
    svc.log.info("{}: request header larger than {} bytes: 431", c.peer, svc.config.max_header_bytes);
    return text_response(431, "request header fields too large");
  }
  if (ec == bhttp::error::end_of_stream || ec == net::error::eof || ec == net::error::connection_reset ||
      ec == net::error::operation_aborted || ec == net::ssl::error::stream_truncated || !got_some)
    return std::nullopt;
  svc.log.info("{}: malformed request ({}): 400", c.peer, ec.message());
  return text_response(400, "bad request: " + ec.message());
}

// Checks of the head that no handler should have to repeat; the refusal, if any.
std::optional<response> check_head(const parser_type& parser, const server_config& cfg) {
  const auto& req = parser.get();
  const auto field_count = static_cast<std::size_t>(std::distance(req.begin(), req.end()));
  if (field_count > cfg.max_header_fields) return text_response(431, "too many header fields");
  // RFC 9112 §3.2: a request without a Host (HTTP/1.1) or with more than one gets 400.
  const auto hosts = req.count(bhttp::field::host);
  if (hosts > 1 || (req.version() >= 11 && hosts == 0))
    return text_response(400, "bad request: a request needs exactly one Host header");
  // RFC 9112 §6.3: a request whose Transfer-Encoding does not end in chunked has no reliable length: 400 and
  // close, since the bytes after the head could be taken for the next request.
  if (req.count(bhttp::field::transfer_encoding) > 0 && !parser.chunked())
    return text_response(400, "bad request: a request's Transfer-Encoding must end in chunked");
  return std::nullopt;
}

request make_request(const parser_type& parser, connection& c, request_body& body) {
  const auto& h = parser.get();
  request req;
  req.method_name = h.method_string();
  req.verb = method_from(req.method_name);
  req.target = h.target();
  const auto [path, query] = http::split_target(req.target);  // origin-form, or absolute-form reduced to it
  req.path = path;
  req.query = query;
  req.fields.reserve(16);
  for (const auto& f : h) req.fields.push_back({f.name_string(), f.value()});
  req.peer = c.peer;
  if (auto length = parser.content_length()) req.content_length = *length;
  req.chunked = parser.chunked();
  req.body = &body;
  return req;
}

void log_access(connection_context& ctx, const connection& c, const request& req, const request_outcome& out,
                double seconds) {
  if (!ctx.access_log) return;
  ctx.access_log->info("{} \"{} {}\" range=\"{}\" {} {} {:.3f}ms", c.peer, log_escape(req.method_name),
                       log_escape(http::redact_signature(req.target)), log_escape(req["Range"]), out.status,
                       out.body_bytes, seconds * 1000);
}

}  // namespace

// --redirect-http: the same target on the HTTPS port, for a Host that is a plain host name or address.
response redirect_response(const request& req, std::uint16_t port) {
  if (auto location = http::https_location(req["Host"], req.target, port))
    return make_response(308, "text/plain", "moved to " + *location + "\n",
                         {{"Location", *location}, {"Cache-Control", "no-store"}});
  return text_response(400,
                       "bad request: this address answers over HTTPS only, and the Host header is unusable");
}

namespace {

// Answers one request whose head has been read.
template <class Stream>
net::awaitable<request_outcome> serve_one(connection& c, Stream& s, connection_context& ctx,
                                          parser_type& parser) {
  auto& svc = ctx.svc;
  const auto started = clock::now();
  h1_body<Stream> body(c, s, svc.config, parser);
  const auto req = make_request(parser, c, body);
  const bool keep_alive = parser.get().keep_alive();
  std::optional<response> r = check_head(parser, svc.config);
  const bool refused = r.has_value();
  if (!r && c.redirect_port != 0) r = redirect_response(req, c.redirect_port);
  if (!r) {
    try {
      r = co_await handle_request(req, svc);
    } catch (const std::exception& e) {
      svc.log.error("{}: \"{} {}\" failed: {}", c.peer, log_escape(req.method_name),
                    log_escape(http::redact_signature(req.target)), e.what());
      r = text_response(500, "internal server error: see the server log");
    }
  }
  // A body the handler did not read to its end: answer, then close (after a linger, so the answer is seen).
  const bool body_left = !parser.is_done();
  auto out = co_await write_response(c, s, svc, std::move(*r), req.head(),
                                     refused || body_left || !keep_alive || ctx.draining);
  c.clear_deadline();
  if (body_left && out.status >= 400 && req.has_body()) co_await linger(c, s);
  const double seconds = std::chrono::duration<double>(clock::now() - started).count();
  svc.stats.record_request(out.status, out.body_bytes, seconds);
  log_access(ctx, c, req, out, seconds);
  co_return out;
}

void prepare_socket(connection& c) {
  boost::system::error_code ec;
  c.socket.set_option(tcp::no_delay(true), ec);  // no Nagle stalls on small responses
  c.socket.native_non_blocking(true, ec);
  c.socket.non_blocking(true, ec);  // synchronous sends return would_block instead of waiting
  if (auto ep = c.socket.remote_endpoint(ec); !ec)
    c.peer = ep.address().to_string() + ":" + std::to_string(ep.port());
}

}  // namespace

connection::~connection() {
  if (pipe_in >= 0) ::close(pipe_in);
  if (pipe_out >= 0) ::close(pipe_out);
}

std::string serialize_response_head(const response& r, bool close) {
  return http::serialize_head(r.status, r.headers, http_date_now(), close);
}

net::awaitable<void> run_watchdog(std::shared_ptr<connection> c) {
  while (c->socket.is_open()) {
    co_await c->timer.async_wait(kTuple);  // woken by expiry or by a re-arm; both re-check below
    if (!c->socket.is_open()) break;
    if (c->deadline <= clock::now()) {
      c->timed_out = true;
      c->deadline = clock::time_point::max();
      boost::system::error_code ignored;
      c->socket.cancel(ignored);
    }
    c->timer.expires_at(c->deadline);
  }
}

void close_if_idle(connection& c) {
  if (c.drain) {
    c.drain();
    return;
  }
  if (!c.awaiting_request) return;
  boost::system::error_code ignored;
  c.socket.cancel(ignored);
  c.socket.close(ignored);
}

namespace {

// Requests and responses on one connection until it closes (keep-alive, pipelining), on `s`.
template <class Stream>
net::awaitable<void> serve_requests(connection& c, Stream& s, connection_context& ctx) {
  auto& svc = ctx.svc;
  const auto& cfg = svc.config;
  bool first_request = true;
  head_arena arena;  // in this coroutine's frame: one per connection
  while (true) {
    c.awaiting_request = true;
    if (ctx.draining) break;
    if (!first_request && c.buffer.size() == 0) {
      // Keep-alive: wait for the next request's first bytes; an idle connection is closed quietly. A read,
      // not async_wait: Asio re-arms epoll (epoll_ctl) for every wait, but not for a read. On plain TCP one
      // that waits for epoll when the last read left the socket empty (drained_read.hpp).
      c.set_deadline(cfg.idle_timeout);
      auto [wait_ec, got] = co_await async_read_drained(s, c.buffer.prepare(kFirstRead), kTuple);
      if (wait_ec || c.timed_out || got == 0) break;
      c.buffer.commit(got);
    }
    first_request = false;
    c.set_deadline(cfg.header_timeout);  // slowloris: the whole header must arrive within this time
    arena.used = 0;                      // the previous request's parser is gone
    parser_type parser(std::piecewise_construct, std::make_tuple(),
                       std::make_tuple(arena_allocator<char>(&arena)));
    parser.header_limit(static_cast<std::uint32_t>(cfg.max_header_bytes));
    parser.body_limit(boost::none);  // the handler that reads a body sets its limit (request_body)
    // A keep-alive request's head is usually all in the buffer already (the read above): parsed here, since
    // Beast's composed read would complete through the event loop (a post) even when it reads nothing.
    boost::system::error_code read_ec;
    if (c.buffer.size() > 0) {
      c.buffer.consume(parser.put(c.buffer.data(), read_ec));
      if (read_ec == bhttp::error::need_more) read_ec = {};
    }
    if (!read_ec && !parser.is_header_done()) {
      auto [ec, n] = co_await bhttp::async_read_header(s, c.buffer, parser, kTuple);
      read_ec = ec;
    }
    c.clear_deadline();
    c.awaiting_request = false;
    if (!read_ec && c.requests++ == 0)
      ctx.fresh.fetch_sub(1, std::memory_order_relaxed);  // the header is in: handlers and storage waits
                                                          // have deadlines of their own
    if (read_ec) {
      if (auto r = head_error_response(c, svc, parser, read_ec)) {
        auto out = co_await write_response(c, s, svc, std::move(*r), false, true);
        svc.stats.record_request(out.status, out.body_bytes, 0);
        // Over TLS a client still sending a head that is too long cannot finish its write once the
        // connection is reset, and loses our answer with it: read and drop the rest for a moment first.
        if (!is_plain<Stream> && !out.close_quietly && out.status != 408) co_await linger(c, s);
      }
      break;
    }
    // Nothing more buffered (no pipelined request): a read buffer that grew past one first read (a long
    // head) is given back while the response streams, which can take hours for a video. One of the first
    // read's size stays: the next request reads into it without an allocation.
    if (c.buffer.size() == 0 && parser.is_done() && c.buffer.capacity() > kFirstRead)
      c.buffer.shrink_to_fit();
    const auto out = co_await serve_one(c, s, ctx, parser);
    if (out.close) break;
  }
}

// The TLS handshake within the handshake deadline; false (counted, logged at debug) when it failed.
net::awaitable<bool> handshake(connection& c, services& svc, tls_io& io) {
  c.set_deadline(svc.config.tls.handshake_timeout);
  const auto ec = co_await io.handshake();
  c.clear_deadline();
  if (!ec && !c.timed_out) {
    svc.stats.tls_handshake(metrics::handshake::ok);
    co_return true;
  }
  svc.stats.tls_handshake(c.timed_out ? metrics::handshake::timed_out : metrics::handshake::failed);
  svc.log.debug("{}: TLS handshake {}: {}", c.peer, c.timed_out ? "timed out" : "failed", ec.message());
  co_return false;
}

// The protocol the TLS handshake chose by ALPN is HTTP/2.
bool negotiated_h2(SSL* ssl) {
  const unsigned char* name = nullptr;
  unsigned int length = 0;
  SSL_get0_alpn_selected(ssl, &name, &length);
  return length == 2 && std::memcmp(name, "h2", 2) == 0;
}

// A TLS connection: the handshake, then HTTP/2 or HTTP/1.1, all on our own driver (tls_io: SSL_read and
// SSL_write straight on the socket). Ends with one attempt at a close_notify, never waiting for the client's,
// also when serving ended by an exception (logged by run_session).
net::awaitable<void> serve_tls(std::shared_ptr<connection> c, connection_context& ctx) {
  auto& svc = ctx.svc;
  tls_io io(c->socket, c->tls_context->native_handle());
  if (!co_await handshake(*c, svc, io)) co_return;
  std::exception_ptr failure;
  try {
    if (negotiated_h2(io.native_handle())) {
      // Many streams keep an HTTP/2 connection busy: OpenSSL's buffers are kept rather than allocated and
      // freed for every read and write.
      io.keep_buffers();
      co_await serve_h2(c, io, ctx, {});
    } else {
      co_await serve_requests(*c, io, ctx);
    }
  } catch (...) {
    failure = std::current_exception();
  }
  if (c->socket.is_open() && !c->timed_out) io.shutdown_now();
  if (failure) std::rethrow_exception(failure);
}

// --h2c: reads the first bytes of a plain connection into its buffer until they either are the HTTP/2
// preface (1) or cannot be (0: HTTP/1.1, whose parser takes the buffer as it is); -1 when the client left
// or was too slow.
net::awaitable<int> sniff_preface(connection& c, const server_config& cfg) {
  c.set_deadline(cfg.header_timeout);
  int verdict = -1;
  while (true) {
    const std::string_view got(static_cast<const char*>(c.buffer.data().data()), c.buffer.size());
    if (!starts_h2_preface(got)) {
      verdict = 0;
      break;
    }
    if (got.size() >= kH2Preface.size()) {
      verdict = 1;
      break;
    }
    auto [ec, n] = co_await c.socket.async_read_some(c.buffer.prepare(kFirstRead), kTuple);
    if (ec || c.timed_out || n == 0) break;
    c.buffer.commit(n);
  }
  c.clear_deadline();
  co_return verdict;
}

}  // namespace

net::awaitable<void> run_session(std::shared_ptr<connection> c, connection_context& ctx) {
  auto& svc = ctx.svc;
  svc.stats.connection_opened();
  ctx.open.insert(c.get());
  ctx.fresh.fetch_add(1, std::memory_order_relaxed);
  prepare_socket(*c);

  try {
    if (c->tls_context) {
      co_await serve_tls(c, ctx);
    } else {
      int h2 = 0;
      if (svc.config.h2.cleartext && c->redirect_port == 0) h2 = co_await sniff_preface(*c, svc.config);
      if (h2 == 1) {
        const std::string_view preread(static_cast<const char*>(c->buffer.data().data()), c->buffer.size());
        co_await serve_h2(c, c->socket, ctx, preread);
      } else if (h2 == 0) {
        co_await serve_requests(*c, c->socket, ctx);
      }
    }
  } catch (const std::exception& e) {
    svc.log.error("{}: connection failed: {}", c->peer, e.what());
  }
  boost::system::error_code ignored;
  c->socket.shutdown(tcp::socket::shutdown_send, ignored);
  c->socket.close(ignored);
  c->timer.cancel();
  ctx.open.erase(c.get());
  if (c->requests == 0) ctx.fresh.fetch_sub(1, std::memory_order_relaxed);
  svc.stats.connection_closed();
}

}  // namespace mediagate::server
