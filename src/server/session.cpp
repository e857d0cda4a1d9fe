#include "server/session.hpp"

#include <spdlog/spdlog.h>
#include <sys/sendfile.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sys/socket.h>

#include <boost/asio/as_tuple.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <boost/asio/write.hpp>
#include <boost/beast/http/error.hpp>
#include <boost/beast/http/read.hpp>
#include <cerrno>
#include <ctime>

#include "http/http_date.hpp"
#include "http/response_head.hpp"

namespace mediagate::server {
namespace {

constexpr auto kTuple = net::as_tuple(net::use_awaitable);
constexpr std::uint64_t kSendfileChunk = 4u << 20;
constexpr std::size_t kFirstRead = 4096;  // most request heads fit; the parser reads on for longer ones
constexpr std::uint64_t kYieldEvery = 16u << 20;  // let other connections of this loop run
constexpr std::uint64_t kWholeRangeMax = 128u << 10;  // ranges up to this size get a buffer that holds them

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

// Moves one range from the reader to the socket: file chunks by sendfile, others through one buffer per
// connection, refilled only once the client took the previous one (bounded memory, backpressure).
// `pending` holds bytes to send first (the response head, multipart framing).
net::awaitable<bool> send_range(connection& c, worker_context& ctx, storage::range_reader& reader,
                                std::uint64_t length, std::string& pending, std::uint64_t& sent) {
  if (reader.needs_buffer()) {
    // A short range (Safari's 64 KiB reads) goes through in one piece: one storage read and one send instead
    // of several. Long ranges keep the configured size, which bounds the memory of each playing stream.
    const std::size_t bound = ctx.config.stream_buffer_bytes;
    if (length <= kWholeRangeMax) {
      const auto want = std::max<std::size_t>(bound, static_cast<std::size_t>(length));
      if (c.stream_buffer.size() < want) c.stream_buffer.resize(want);
    } else if (c.stream_buffer.size() != bound) {  // also a long stream after short ranges: back to the bound
      c.stream_buffer.resize(bound);
      c.stream_buffer.shrink_to_fit();
    }
  }
  while (length > 0) {
    auto got = co_await reader.next(c.stream_buffer, true);
    if (!got || got->bytes == 0 || got->bytes > length) {
      if (!got)
        ctx.log.warn("{}: storage failed mid-response after {} bytes: {}", c.peer, sent, got.err().message);
      co_return false;
    }
    if (got->file) {
      if (!co_await write_all(c, ctx.config, pending)) co_return false;
      pending.clear();
      if (!co_await send_file_region(c, ctx.config, *got->file, got->bytes)) co_return false;
    } else {
      if (!c.low_water_set) {
        // Bytes that pass through the buffer were read from storage for this client: let the kernel hold only
        // a few chunks of them unsent, so that a client who leaves (a seek) has cost little more storage
        // reading than it took. Files and cached slices go zero-copy and keep the kernel's own limits.
        c.low_water_set = true;
        const int low_water = static_cast<int>(4 * ctx.config.stream_buffer_bytes);
        ::setsockopt(c.socket.native_handle(), IPPROTO_TCP, TCP_NOTSENT_LOWAT, &low_water, sizeof low_water);
      }
      if (!co_await write_all(c, ctx.config, pending, {c.stream_buffer.data(), got->bytes})) co_return false;
      pending.clear();
    }
    length -= got->bytes;
    sent += got->bytes;
  }
  co_await reader.finish(c.stream_buffer);
  co_return true;
}

}  // namespace

std::string http_date_now() {
  thread_local std::time_t cached_second = 0;
  thread_local std::string cached;
  const std::time_t now = std::time(nullptr);
  if (now != cached_second) {
    cached_second = now;
    cached = http::format_http_date(now);
  }
  return cached;
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

net::awaitable<bool> write_all(connection& c, const server_config& cfg, std::string_view head,
                               std::span<const char> body) {
  c.set_deadline(cfg.send_timeout);
  std::array<net::const_buffer, 2> parts = {net::buffer(head), net::buffer(body.data(), body.size())};
  // First a non-blocking send of everything: an asynchronous write that completes at once still costs a
  // trip through the event loop (a posted completion and an epoll_wait), measured on every small response.
  boost::system::error_code ec;
  std::size_t sent = c.socket.write_some(parts, ec);
  if (ec && ec != net::error::would_block && ec != net::error::try_again) co_return false;
  if (sent == head.size() + body.size()) co_return true;
  // The socket buffer is full: wait for the client to take the rest.
  for (auto& part : parts) {
    const auto skip = std::min(sent, part.size());
    part += skip;
    sent -= skip;
  }
  auto [wec, n] = co_await net::async_write(c.socket, parts, kTuple);
  co_return !wec && !c.timed_out;
}

net::awaitable<request_outcome> send_simple(connection& c, worker_context& ctx, unsigned status,
                                            std::string_view content_type, std::string body,
                                            http::header_list headers, bool keep_alive, bool head_only) {
  if (!content_type.empty()) headers.emplace_back("Content-Type", std::string(content_type));
  headers.emplace_back("Content-Length", std::to_string(body.size()));
  headers.emplace_back("X-Content-Type-Options", "nosniff");
  auto message = http::serialize_head(status, headers, http_date_now(), !keep_alive);
  if (!head_only) message += body;
  const bool ok = co_await write_all(c, ctx.config, message);
  co_return request_outcome{status, head_only ? 0 : body.size(), !keep_alive || !ok};
}

net::awaitable<request_outcome> send_plan(connection& c, worker_context& ctx, const http::response_plan& plan,
                                          const std::string& key, const storage::object_meta& meta,
                                          std::unique_ptr<storage::range_reader> reader, bool keep_alive) {
  request_outcome out{plan.status, 0, !keep_alive};
  std::string pending = http::serialize_head(plan.status, plan.headers, http_date_now(), !keep_alive);
  bool first = true;
  for (const auto& segment : plan.body) {
    pending += segment.literal;
    out.body_bytes += segment.literal.size();
    if (!segment.range) continue;
    if (!first || !reader) {
      auto opened = co_await ctx.store.open(key, meta, *segment.range);
      if (!opened) {
        ctx.log.warn("{}: cannot read {} range {}-{}: {}", c.peer, key, segment.range->first,
                     segment.range->last, opened.err().message);
        out.close = true;  // the head is out: the only honest signal left is closing the connection
        co_return out;
      }
      reader = std::move(*opened);
    }
    first = false;
    std::uint64_t sent = 0;
    const bool ok = co_await send_range(c, ctx, *reader, segment.range->length(), pending, sent);
    out.body_bytes += sent;
    if (!ok) {
      out.close = true;
      co_return out;
    }
    reader.reset();
  }
  if (!pending.empty() && !co_await write_all(c, ctx.config, pending)) out.close = true;
  co_return out;
}

net::awaitable<void> run_session(std::shared_ptr<connection> c, worker_context& ctx) {
  const auto& cfg = ctx.config;
  ctx.stats.connection_opened();
  boost::system::error_code ec;
  c->socket.set_option(tcp::no_delay(true), ec);  // no Nagle stalls on small responses
  c->socket.native_non_blocking(true, ec);
  c->socket.non_blocking(true, ec);  // synchronous sends return would_block instead of waiting
  if (auto ep = c->socket.remote_endpoint(ec); !ec) c->peer = ep.address().to_string() + ":" + std::to_string(ep.port());

  bool first_request = true;
  try {
    while (true) {
      if (!first_request && c->buffer.size() == 0) {
        // Keep-alive: wait for the next request's first bytes; an idle connection is closed quietly. A read,
        // not async_wait: Asio re-arms epoll (epoll_ctl) for every wait, but not for a read.
        c->set_deadline(cfg.idle_timeout);
        auto [wait_ec, got] = co_await c->socket.async_read_some(c->buffer.prepare(kFirstRead), kTuple);
        if (wait_ec || c->timed_out || got == 0) break;
        c->buffer.commit(got);
      }
      first_request = false;
      c->set_deadline(cfg.header_timeout);  // slowloris: the whole header must arrive within this time
      request_parser parser;
      parser.header_limit(static_cast<std::uint32_t>(cfg.max_header_bytes));
      parser.body_limit(std::numeric_limits<std::uint64_t>::max());
      auto [read_ec, n] = co_await beast::http::async_read_header(c->socket, c->buffer, parser, kTuple);
      const auto started = clock::now();
      c->clear_deadline();  // the header is in: handlers and storage waits have deadlines of their own
      // Nothing more buffered (no pipelined request): give the read buffer back while the response streams,
      // which can take hours for a video; the next request's read allocates it again.
      if (!read_ec && c->buffer.size() == 0) c->buffer.shrink_to_fit();
      if (read_ec) {
        request_outcome out;
        if (c->timed_out) {
          c->timed_out = false;
          if (c->buffer.size() > 0 || parser.got_some()) {
            ctx.log.info("{}: request header not received within {} ms: 408", c->peer, cfg.header_timeout.count());
            out = co_await send_simple(*c, ctx, 408, "text/plain; charset=utf-8",
                                       "request timeout: the request header took too long\n", http::header_list(), false, false);
          }
        } else if (read_ec == beast::http::error::header_limit || read_ec == beast::http::error::buffer_overflow) {
          ctx.log.info("{}: request header larger than {} bytes: 431", c->peer, cfg.max_header_bytes);
          out = co_await send_simple(*c, ctx, 431, "text/plain; charset=utf-8",
                                     "request header fields too large\n", http::header_list(), false, false);
        } else if (read_ec != beast::http::error::end_of_stream && read_ec != net::error::eof &&
                   read_ec != net::error::connection_reset && read_ec != net::error::operation_aborted &&
                   (c->buffer.size() > 0 || parser.got_some())) {
          ctx.log.info("{}: malformed request ({}): 400", c->peer, read_ec.message());
          out = co_await send_simple(*c, ctx, 400, "text/plain; charset=utf-8",
                                     "bad request: " + read_ec.message() + "\n", http::header_list(), false, false);
        }
        if (out.status) ctx.stats.record_request(out.status, out.body_bytes, 0);
        break;
      }
      const auto& req = parser.get();
      bool keep_alive = req.keep_alive();
      if (!parser.is_done()) keep_alive = false;  // a body we do not read: close after answering
      request_outcome out;
      const auto field_count = static_cast<std::size_t>(std::distance(req.begin(), req.end()));
      if (field_count > cfg.max_header_fields) {
        ctx.log.info("{}: {} header fields, more than {}: 431", c->peer, field_count, cfg.max_header_fields);
        out = co_await send_simple(*c, ctx, 431, "text/plain; charset=utf-8", "too many header fields\n",
                                   http::header_list(), false, false);
      } else if (const auto hosts = req.count(beast::http::field::host); hosts > 1 || (req.version() >= 11 && hosts == 0)) {
        // RFC 9112 §3.2: a request without a Host (HTTP/1.1) or with more than one gets 400.
        out = co_await send_simple(*c, ctx, 400, "text/plain; charset=utf-8",
                                   "bad request: a request needs exactly one Host header\n", http::header_list(), false,
                                   false);
      } else {
        out = co_await route_request(*c, ctx, parser, keep_alive);
      }
      c->clear_deadline();
      const double seconds = std::chrono::duration<double>(clock::now() - started).count();
      ctx.stats.record_request(out.status, out.body_bytes, seconds);
      if (ctx.access_log) {
        auto range = req[beast::http::field::range];
        ctx.access_log->info("{} \"{} {}\" range=\"{}\" {} {} {:.3f}ms", c->peer,
                             std::string_view(req.method_string()), std::string_view(req.target()),
                             std::string_view(range), out.status, out.body_bytes, seconds * 1000);
      }
      if (out.close || !keep_alive) break;
    }
  } catch (const std::exception& e) {
    ctx.log.error("{}: connection failed: {}", c->peer, e.what());
  }
  boost::system::error_code ignored;
  c->socket.shutdown(tcp::socket::shutdown_send, ignored);
  c->socket.close(ignored);
  c->timer.cancel();
  ctx.stats.connection_closed();
}

}  // namespace mediagate::server
