#include "server/h2_connection.hpp"

#include <nghttp2/nghttp2.h>
#include <spdlog/spdlog.h>

#include <algorithm>
#include <boost/asio/as_tuple.hpp>
#include <boost/asio/co_spawn.hpp>
#include <boost/asio/detached.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <boost/asio/write.hpp>
#include <charconv>
#include <cstring>
#include <unordered_map>
#include <utility>

#include "http/media_key.hpp"
#include "http/signed_link.hpp"
#include "http/token.hpp"
#include "server/metrics.hpp"
#include "server/router.hpp"
#include "server/tls_io.hpp"
#include "storage/storage.hpp"

namespace mediagate::server {
namespace {

constexpr auto kTuple = net::as_tuple(net::use_awaitable);
constexpr std::size_t kReadBuffer = 16 * 1024;   // one TLS record
constexpr std::size_t kWriteBatch = 128 * 1024;  // frames gathered before one write to the socket
// A TLS record's plaintext at most (RFC 8446 §5.1): a DATA frame written from a stream's buffer carries at
// most this less its 9-byte header, so that each such frame is one full record on the wire.
constexpr std::size_t kRecord = 16 * 1024;
constexpr std::size_t kFrameHeader = 9;
// Room before each stream buffer's first byte: the first frame's header goes there, and the control frames
// (HEADERS, WINDOW_UPDATE, ...) queued before it, so that they share its record.
constexpr std::size_t kHeadroom = 1024;
// DATA frames up to this size are copied into the write batch (a record of their own would cost more than
// the copy): the tail of a buffer that did not divide into full records, and complete bodies.
constexpr std::size_t kCopyBelow = 1024;
constexpr std::uint64_t kWholeRangeMax = 128u << 10;

// One request and its response. Owned by the connection's table while nghttp2 knows the stream, and by
// the stream's coroutine while it runs.
struct h2_stream {
  h2_stream(std::int32_t stream_id, const net::any_io_executor& ex) : id(stream_id), wake(ex) {
    wake.expires_at(clock::time_point::max());
  }
  // Wakes the stream's coroutine if it waits (for body bytes, buffer space, the end of the response).
  void notify() { wake.cancel(); }
  char* bytes() const { return buf.get() + kHeadroom; }

  std::int32_t id;
  // The request head: pseudo-header fields, then the others (views into these are built once complete).
  std::string method, path, authority;
  std::vector<std::pair<std::string, std::string>> fields;
  // The response head as nghttp2 reads it: the header_list's text with names in lower case, the Date and
  // the status (submit_response).
  std::string response_head;
  std::size_t header_bytes = 0;
  bool header_too_large = false;    // past --max-header-bytes or --max-header-fields: 431
  bool ended_with_headers = false;  // END_STREAM on HEADERS: no body
  bool request_ended = false;       // END_STREAM received
  // The request body: bytes received and not yet read by the handler (at most the stream's window).
  std::string inbound;
  std::size_t inbound_pos = 0;
  bool handler_done = false;  // later DATA is dropped (and its window given back at once)
  // The response body: a complete body (views the response's string), then the media buffer [head, tail),
  // refilled from storage only once nghttp2 took all of it.
  std::string_view fixed;
  std::unique_ptr<char[]>
      buf;  // kHeadroom, then buf_size bytes; uninitialised: storage overwrites most of it
  std::size_t buf_size = 0;
  std::size_t head = 0, tail = 0;
  bool in_flight = false;  // the writer is writing a DATA frame straight from `buf`: it must stay as it is
  bool body_done = false;  // every byte is in `fixed` or `buf`: the last DATA frame ends the stream
  std::uint64_t sent = 0;  // body bytes handed to nghttp2
  bool response_sent = false;  // the frame with END_STREAM was written out
  bool closed = false;         // nghttp2 closed the stream (done, or reset by either side)
  bool we_reset = false;
  bool abandoned = false;  // the coroutine ended: nothing more can come (nghttp2 must not ask again)
  net::steady_timer wake;
};

// What the streams of one connection share: the nghttp2 session and the table of its streams. Every
// nghttp2 call happens on the connection's event loop.
struct h2_core : std::enable_shared_from_this<h2_core> {
  h2_core(std::shared_ptr<connection> c, connection_context& context)
      : conn(std::move(c)),
        ctx(context),
        svc(context.svc),
        writer_wake(conn->socket.get_executor()),
        idle_timer(conn->socket.get_executor()),
        writer_stopped(conn->socket.get_executor()) {
    writer_wake.expires_at(clock::time_point::max());
    writer_stopped.expires_at(clock::time_point::max());
  }
  ~h2_core() {
    if (session) nghttp2_session_del(session);
  }
  h2_core(const h2_core&) = delete;
  h2_core& operator=(const h2_core&) = delete;

  bool init();
  void wake_writer() { writer_wake.cancel(); }
  h2_stream* find(std::int32_t id) {
    auto it = streams.find(id);
    return it == streams.end() ? nullptr : it->second.get();
  }
  // GOAWAY: no new streams; those in flight finish, then the connection closes.
  void begin_drain() {
    if (draining || dead) return;
    draining = true;
    nghttp2_submit_goaway(session, NGHTTP2_FLAG_NONE, nghttp2_session_get_last_proc_stream_id(session),
                          NGHTTP2_NO_ERROR, nullptr, 0);
    wake_writer();
  }
  void reset(h2_stream& st, std::uint32_t code) {
    if (st.closed || dead) return;
    st.we_reset = true;
    nghttp2_submit_rst_stream(session, NGHTTP2_FLAG_NONE, st.id, code);
    wake_writer();
  }
  // The connection is gone: every stream stops at its next step.
  void stop() {
    dead = true;
    for (auto& [id, st] : streams) st->notify();
    idle_timer.cancel();
    wake_writer();
  }
  bool idle() const { return streams.empty() && live_handlers == 0; }
  void handler_finished() {
    --live_handlers;
    if (dead) writer_stopped.cancel();  // serve() waits for the last stream before the connection ends
    if (idle()) {
      idle_since = clock::now();
      conn->awaiting_request = true;
      if (draining) wake_writer();  // the last stream of a draining connection: close it
    }
  }

  std::shared_ptr<connection> conn;
  connection_context& ctx;
  services& svc;
  nghttp2_session* session = nullptr;
  std::unordered_map<std::int32_t, std::shared_ptr<h2_stream>> streams;
  std::size_t live_handlers = 0;  // stream coroutines still running (also after their stream closed)
  std::string* batch = nullptr;   // the writer's batch while it calls nghttp2_session_mem_send
  // A DATA frame send_data left for the writer to send from the stream's buffer (no copy): the writer then
  // writes the batch, the frame's header in the bytes before the payload, and the payload as one region.
  struct zero_copy_frame {
    std::shared_ptr<h2_stream> st;  // null: none
    std::uint8_t header[kFrameHeader];
    std::size_t offset = 0, length = 0;  // of the payload in st->bytes()
  } frame;
  // Buffers of the configured size that finished streams left: the next streams take them instead of
  // allocating (measured: allocating and zeroing one per small response cost ~8% of the CPU).
  std::vector<std::unique_ptr<char[]>> spare_buffers;
  net::steady_timer writer_wake, idle_timer, writer_stopped;
  bool dead = false;             // stop everything
  bool draining = false;         // GOAWAY sent
  bool flush_and_close = false;  // a protocol error: write what nghttp2 queued (its GOAWAY), then close
  bool writer_done = false;
  clock::time_point idle_since = clock::now();
};

// --- the request side ----------------------------------------------------------------------------------

// Waits until the stream is notified (true) or `timeout` passes (false).
net::awaitable<bool> wait_a_while(h2_stream& st, std::chrono::milliseconds timeout) {
  st.wake.expires_after(timeout);
  auto [ec] = co_await st.wake.async_wait(kTuple);
  co_return ec == net::error::operation_aborted;
}

// The request body as handlers read it: the bytes nghttp2 delivered for this stream. The window given back
// to the client is what the handler read, so a stream buffers at most its window (flow control).
class h2_body final : public request_body {
 public:
  h2_body(h2_core& core, h2_stream& st) : core_(core), st_(st) {}

  net::awaitable<result<std::size_t>> read(std::span<char> buf) override {
    while (st_.inbound_pos == st_.inbound.size()) {
      if (st_.request_ended) co_return std::size_t{0};
      if (st_.closed || core_.dead)
        co_return error{errc::client_gone, "the client stopped sending the body (stream reset)"};
      const bool woken = co_await wait_a_while(st_, core_.svc.config.idle_timeout);
      if (!woken && st_.inbound_pos == st_.inbound.size() && !st_.request_ended)
        co_return error{errc::client_gone, "the client stopped sending the body: timed out"};
    }
    const auto n = std::min(buf.size(), st_.inbound.size() - st_.inbound_pos);
    std::memcpy(buf.data(), st_.inbound.data() + st_.inbound_pos, n);
    st_.inbound_pos += n;
    if (st_.inbound_pos == st_.inbound.size()) {
      st_.inbound.clear();
      st_.inbound_pos = 0;
    }
    received_ += n;
    if (!st_.closed && !core_.dead) {
      nghttp2_session_consume(core_.session, st_.id, n);  // WINDOW_UPDATE: the client may send more
      core_.wake_writer();
    }
    if (received_ > limit_) co_return error{errc::too_large, "the request body is larger than the limit"};
    co_return n;
  }
  void set_limit(std::uint64_t bytes) override { limit_ = bytes; }
  std::uint64_t received() const override { return received_; }

 private:
  h2_core& core_;
  h2_stream& st_;
  std::uint64_t limit_ = 0;
  std::uint64_t received_ = 0;
};

request make_request(h2_stream& st, const connection& c, request_body& body) {
  request req;
  req.method_name = st.method;
  req.verb = method_from(req.method_name);
  req.target = st.path;
  const auto [path, query] = http::split_target(req.target);
  req.path = path;
  req.query = query;
  req.fields.reserve(st.fields.size());
  for (const auto& [name, value] : st.fields) req.fields.push_back({name, value});
  req.peer = c.peer;
  if (auto length = req.single_field("content-length")) {
    std::uint64_t n = 0;
    const auto* end = length->data() + length->size();
    if (auto [p, ec] = std::from_chars(length->data(), end, n); ec == std::errc() && p == end)
      req.content_length = n;
  }
  // A body without Content-Length is delimited by END_STREAM (RFC 9113 §8.1): for the handlers, a body of
  // unknown length, as chunked coding is in HTTP/1.1.
  req.chunked = !req.content_length && !st.ended_with_headers;
  req.body = &body;
  return req;
}

// Once the whole head is in: cookie crumbs joined (RFC 9113 §8.2.3) and :authority as Host (§8.3.1), so
// that handlers see the fields HTTP/1.1 would have given them.
void complete_head(h2_stream& st) {
  std::string cookie;
  bool has_host = false;
  for (auto it = st.fields.begin(); it != st.fields.end();) {
    if (it->first == "cookie") {
      if (!cookie.empty()) cookie += "; ";
      cookie += it->second;
      it = st.fields.erase(it);
      continue;
    }
    has_host = has_host || it->first == "host";
    ++it;
  }
  if (!cookie.empty()) st.fields.emplace_back("cookie", std::move(cookie));
  if (!has_host && !st.authority.empty()) st.fields.emplace_back("host", st.authority);
}

// --- the response side ---------------------------------------------------------------------------------

// nghttp2 asks how many bytes of a response body the next DATA frame carries (within the flow-control
// windows). send_data hands them to the writer (NO_COPY): complete bodies and short frames copied into the
// write batch, others left in the stream's buffer for the writer to send from there.
ssize_t read_body(nghttp2_session*, std::int32_t, std::uint8_t*, std::size_t length, std::uint32_t* flags,
                  nghttp2_data_source* source, void* user_data) {
  auto& st = *static_cast<h2_stream*>(source->ptr);
  const auto& core = *static_cast<const h2_core*>(user_data);
  if (st.abandoned) return NGHTTP2_ERR_TEMPORAL_CALLBACK_FAILURE;  // reset: never a truncated body as whole
  std::size_t n = 0, left = 0;  // this frame's bytes, and what remains after them
  if (!st.fixed.empty()) {
    n = std::min(length, st.fixed.size());
    left = st.fixed.size() - n;
  } else if (st.head < st.tail) {
    n = std::min(length, st.tail - st.head);
    if (n > kCopyBelow) {
      // Written from the buffer with the batch before it: the frame ends where a record does.
      const auto used = (core.batch->size() + kFrameHeader) % kRecord;
      const auto fit = kRecord - used;
      n = std::min(n, fit > kCopyBelow ? fit : fit + kRecord);
    }
    left = st.tail - st.head - n;
  } else if (!st.body_done) {
    st.notify();
    return NGHTTP2_ERR_DEFERRED;  // resumed when storage delivered more
  }
  *flags |= NGHTTP2_DATA_FLAG_NO_COPY;
  if (st.body_done && left == 0) *flags |= NGHTTP2_DATA_FLAG_EOF;
  return static_cast<ssize_t>(n);
}

// The DATA frame read_body sized (no padding is ever asked for). A complete body's bytes, or a few, are
// appended to the write batch with the header; PAUSE once the batch is full, so that one write stays
// bounded. Otherwise the frame stays in the stream's buffer, and PAUSE lets the writer send it from there
// (the buffer is held until then: in_flight).
int send_data(nghttp2_session*, nghttp2_frame* frame, const std::uint8_t* framehd, std::size_t length,
              nghttp2_data_source* source, void* user_data) {
  auto& core = *static_cast<h2_core*>(user_data);
  auto& st = *static_cast<h2_stream*>(source->ptr);
  auto& out = *core.batch;
  st.sent += length;
  if (!st.fixed.empty()) {
    out.append(reinterpret_cast<const char*>(framehd), kFrameHeader);
    out.append(st.fixed.data(), length);
    st.fixed.remove_prefix(length);
  } else if (length <= kCopyBelow) {
    out.append(reinterpret_cast<const char*>(framehd), kFrameHeader);
    out.append(st.bytes() + st.head, length);
    st.head += length;
    if (st.head == st.tail) st.notify();  // the buffer is free: read on from storage
  } else {
    auto it = core.streams.find(frame->hd.stream_id);
    if (it == core.streams.end()) return NGHTTP2_ERR_CALLBACK_FAILURE;  // nghttp2 sends only open streams
    auto& f = core.frame;
    f.st = it->second;
    std::memcpy(f.header, framehd, kFrameHeader);
    f.offset = st.head;
    f.length = length;
    st.head += length;
    st.in_flight = true;
    return NGHTTP2_ERR_PAUSE;
  }
  return out.size() >= kWriteBatch ? NGHTTP2_ERR_PAUSE : 0;
}

// Bytes are in the buffer, or the body is complete: nghttp2 may send.
void publish(h2_core& core, h2_stream& st) {
  nghttp2_session_resume_data(core.session, st.id);
  core.wake_writer();
}

// A stream took nothing for the send timeout. When the connection's own window is shut too, nothing on it
// can move: GOAWAY and close (every stream's read stops); otherwise only this stream is reset.
void stalled(h2_core& core, h2_stream& st) {
  core.svc.stats.h2_refusal();
  if (nghttp2_session_get_remote_window_size(core.session) <= 0) {
    core.svc.log.info("{}: HTTP/2 connection window shut for {} ms: closed", core.conn->peer,
                      core.svc.config.send_timeout.count());
    nghttp2_session_terminate_session(core.session, NGHTTP2_FLOW_CONTROL_ERROR);
    core.flush_and_close = true;
    core.wake_writer();
    return;
  }
  core.svc.log.info("{}: HTTP/2 stream {} took nothing for {} ms: reset", core.conn->peer, st.id,
                    core.svc.config.send_timeout.count());
  core.reset(st, NGHTTP2_CANCEL);
}

// Waits until nghttp2 took every byte of the stream's buffer. False when the stream or connection ended,
// or when the client's window stayed shut for the send timeout (the stream is then reset).
net::awaitable<bool> drained(h2_core& core, h2_stream& st) {
  while (st.head < st.tail || st.in_flight) {
    if (st.closed || core.dead) co_return false;
    const auto before = st.sent;
    const bool woken = co_await wait_a_while(st, core.svc.config.send_timeout);
    if (!woken && st.sent == before && st.head < st.tail && !st.in_flight && !st.closed && !core.dead) {
      stalled(core, st);
      co_return false;
    }
  }
  co_return !st.closed && !core.dead;
}

constexpr std::size_t kSpareBuffers = 2;

// Gives the stream's buffer back to the connection (or frees it). Only once nghttp2 took all of it and the
// writer wrote it (not in_flight).
void release_buffer(h2_core& core, h2_stream& st) {
  if (st.buf && st.buf_size == core.svc.config.stream_buffer_bytes &&
      core.spare_buffers.size() < kSpareBuffers)
    core.spare_buffers.push_back(std::move(st.buf));
  st.buf.reset();
  st.buf_size = 0;
}

// A buffer of exactly `want` bytes for the stream, a spare one when it has the configured size.
void ensure_buffer(h2_core& core, h2_stream& st, std::size_t want) {
  if (st.buf && st.buf_size == want) return;
  release_buffer(core, st);
  if (want == core.svc.config.stream_buffer_bytes && !core.spare_buffers.empty()) {
    st.buf = std::move(core.spare_buffers.back());
    core.spare_buffers.pop_back();
  } else {
    st.buf = std::make_unique_for_overwrite<char[]>(kHeadroom + want);
  }
  st.buf_size = want;
}

// As HTTP/1.1 does: a short range gets a buffer that holds it, a long one the configured size.
void size_buffer(h2_core& core, h2_stream& st, std::uint64_t length) {
  const auto bound = core.svc.config.stream_buffer_bytes;
  ensure_buffer(
      core, st,
      length <= kWholeRangeMax ? std::max<std::size_t>(bound, static_cast<std::size_t>(length)) : bound);
}

// The body of a planned response: literal framing and ranges, in order, through the stream's buffer. A
// reset stream stops here at its next step, and the reader it drops stops its storage read. The last bytes
// are published with body_done set, so that their last DATA frame carries END_STREAM (no empty DATA frame
// after them, nor the wait for the buffer to drain before it), unless the reader still has work to do in
// finish() with the buffer.
net::awaitable<bool> pump_media(h2_core& core, h2_stream& st, media_body& body) {
  auto& svc = core.svc;
  auto reader = std::move(body.first);
  bool first = true;
  for (const auto& segment : body.segments) {
    const bool last_segment = &segment == &body.segments.back();
    if (!segment.literal.empty()) {
      if (!co_await drained(core, st)) co_return false;
      if (st.buf_size < segment.literal.size())
        ensure_buffer(core, st, std::max(svc.config.stream_buffer_bytes, segment.literal.size()));
      std::memcpy(st.bytes(), segment.literal.data(), segment.literal.size());
      st.head = 0;
      st.tail = segment.literal.size();
      if (last_segment && !segment.range) st.body_done = true;
      publish(core, st);
    }
    if (!segment.range) continue;
    if (!first || !reader) {
      auto opened = co_await body.open(*segment.range);
      if (st.closed || core.dead) co_return false;
      if (!opened) {
        svc.log.warn("{}: cannot read {} range {}-{}: {}", core.conn->peer, body.what, segment.range->first,
                     segment.range->last, opened.err().message);
        co_return false;
      }
      reader = std::move(*opened);
    }
    first = false;
    auto length = segment.range->length();
    if (!co_await drained(core, st)) co_return false;
    size_buffer(core, st, length);
    // Each fill of a long range is a whole number of DATA frames that are full TLS records: no short
    // record at the end of every fill.
    const auto fill = length > st.buf_size && st.buf_size >= kRecord
                          ? st.buf_size - st.buf_size % (kRecord - kFrameHeader)
                          : st.buf_size;
    while (length > 0) {
      if (!co_await drained(core, st)) co_return false;
      auto got = co_await reader->next(std::span<char>(st.bytes(), fill), false);
      if (st.closed || core.dead) co_return false;
      if (!got || got->bytes == 0 || got->bytes > length || got->file) {
        if (!got)
          svc.log.warn("{}: storage failed mid-response for {}: {}", core.conn->peer, body.what,
                       got.err().message);
        co_return false;
      }
      st.head = 0;
      st.tail = got->bytes;
      length -= got->bytes;
      if (length == 0 && last_segment && !reader->has_finish()) st.body_done = true;
      publish(core, st);
    }
    if (!st.body_done) {
      if (!co_await drained(core, st)) co_return false;
      if (reader->has_finish()) co_await reader->finish(std::span<char>(st.bytes(), st.buf_size));
    }
    reader.reset();
  }
  co_return true;
}

// RFC 9113 §8.2.2: never sent over HTTP/2. `name` is in lower case.
bool connection_specific(std::string_view name) {
  return name == "connection" || name == "transfer-encoding" || name == "keep-alive" ||
         name == "proxy-connection" || name == "upgrade";
}

nghttp2_nv make_nv(std::string_view name, std::string_view value) {
  // The bytes stay where they are until nghttp2 wrote the HEADERS frame (the stream's response_head,
  // literals): nghttp2 copies neither.
  return {reinterpret_cast<std::uint8_t*>(const_cast<char*>(name.data())),
          reinterpret_cast<std::uint8_t*>(const_cast<char*>(value.data())), name.size(), value.size(),
          NGHTTP2_NV_FLAG_NO_COPY_NAME | NGHTTP2_NV_FLAG_NO_COPY_VALUE};
}

// Submits the response head (and the body's data provider); false when nghttp2 refused it. The fields are
// one copy of the response's "Name: value\r\n" text in the stream, names lowered in place there; nghttp2
// reads them from it when it writes the frame (the stream outlives that: nghttp2 never writes the HEADERS of
// a closed stream, and a closed stream's entry goes only once nghttp2 closed it).
bool submit_response(h2_core& core, h2_stream& st, const response& r, bool with_body) {
  const auto wire = r.headers.wire();
  const auto date = http_date_now();
  st.response_head.reserve(wire.size() + date.size() + 3);
  st.response_head.assign(wire);
  st.response_head.append(date);
  char status[3];
  const auto code = std::min(r.status, 999u);
  status[0] = static_cast<char>('0' + code / 100);
  status[1] = static_cast<char>('0' + code / 10 % 10);
  status[2] = static_cast<char>('0' + code % 10);
  st.response_head.append(status, 3);
  char* text = st.response_head.data();
  constexpr std::size_t kOnStack = 32;
  nghttp2_nv on_stack[kOnStack];
  std::vector<nghttp2_nv> on_heap;  // only past kOnStack fields: all of them, then
  std::size_t count = 0;
  auto add = [&](std::string_view name, std::string_view value) {
    if (count == kOnStack) on_heap.assign(on_stack, on_stack + kOnStack);
    if (count < kOnStack)
      on_stack[count] = make_nv(name, value);
    else
      on_heap.push_back(make_nv(name, value));
    ++count;
  };
  add(":status", {text + wire.size() + date.size(), 3});
  add("server", "mediagate");
  add("date", {text + wire.size(), date.size()});
  for (std::size_t at = 0; at < wire.size();) {
    const auto end = wire.find("\r\n", at);
    const auto colon = wire.find(": ", at);
    for (auto i = at; i < colon; ++i)
      if (text[i] >= 'A' && text[i] <= 'Z') text[i] = static_cast<char>(text[i] + ('a' - 'A'));
    const std::string_view name(text + at, colon - at);
    if (!connection_specific(name)) add(name, {text + colon + 2, end - colon - 2});
    at = end + 2;
  }
  nghttp2_data_provider provider{};
  provider.source.ptr = &st;
  provider.read_callback = read_body;
  const int rv = nghttp2_submit_response(core.session, st.id, count <= kOnStack ? on_stack : on_heap.data(),
                                         count, with_body ? &provider : nullptr);
  core.wake_writer();
  return rv == 0;
}

std::optional<response> refusal(const h2_stream& st) {
  if (st.header_too_large) return text_response(431, "request header fields too large");
  return std::nullopt;
}

void log_access(h2_core& core, const request& req, unsigned status, std::uint64_t bytes, double seconds) {
  if (!core.ctx.access_log) return;
  core.ctx.access_log->info("{} \"{} {}\" range=\"{}\" {} {} {:.3f}ms", core.conn->peer,
                            log_escape(req.method_name), log_escape(http::redact_signature(req.target)),
                            log_escape(req["Range"]), status, bytes, seconds * 1000);
}

// Waits for the end of the response (its last frame written, or the stream closed); resets the stream when
// the client took nothing for the send timeout (a window that never opens).
net::awaitable<void> await_end(h2_core& core, h2_stream& st) {
  while (!st.closed && !st.response_sent && !core.dead) {
    const auto before = st.sent;
    const bool woken = co_await wait_a_while(st, core.svc.config.send_timeout);
    if (!woken && st.sent == before && !st.closed && !st.response_sent && !core.dead) {
      stalled(core, st);
      co_return;
    }
  }
}

// One stream: the request to the router, the response to nghttp2, then a log line.
net::awaitable<void> run_stream(std::shared_ptr<h2_core> core, std::shared_ptr<h2_stream> st) {
  auto& svc = core->svc;
  const auto started = clock::now();
  unsigned status = 0;
  h2_body body(*core, *st);
  const auto req = make_request(*st, *core->conn, body);
  try {
    std::optional<response> r = refusal(*st);
    if (!r && core->conn->redirect_port != 0) r = redirect_response(req, core->conn->redirect_port);
    if (!r) {
      try {
        r = co_await handle_request(req, svc);
      } catch (const std::exception& e) {
        svc.log.error("{}: \"{} {}\" failed: {}", core->conn->peer, log_escape(req.method_name),
                      log_escape(http::redact_signature(req.target)), e.what());
        r = text_response(500, "internal server error: see the server log");
      }
    }
    status = r->status;
    if (!st->closed && !core->dead) {
      const bool with_body = !req.head() && (r->media || !r->body.empty());
      if (!with_body) st->body_done = true;
      if (!r->media) st->fixed = r->body;
      if (!submit_response(*core, *st, *r, with_body)) {
        core->reset(*st, NGHTTP2_INTERNAL_ERROR);
      } else {
        bool ok = true;
        if (with_body && r->media) ok = co_await pump_media(*core, *st, *r->media);
        if (ok) {
          st->body_done = true;
          publish(*core, *st);
          co_await await_end(*core, *st);
        } else {
          core->reset(*st, NGHTTP2_INTERNAL_ERROR);  // no-op when the stream or connection already ended
        }
      }
      // RFC 9113 §8.1: a complete response to a request whose body we did not read to its end: ask the
      // client to stop sending it, without error.
      if (st->response_sent && !st->request_ended && !st->closed) core->reset(*st, NGHTTP2_NO_ERROR);
    }
  } catch (const std::exception& e) {
    svc.log.error("{}: HTTP/2 stream {} failed: {}", core->conn->peer, st->id, e.what());
    core->reset(*st, NGHTTP2_INTERNAL_ERROR);
  }
  // What the handler left unread is given back to the connection's window, and later DATA at once.
  st->handler_done = true;
  if (const auto unread = st->inbound.size() - st->inbound_pos; unread > 0 && !st->closed && !core->dead) {
    nghttp2_session_consume(core->session, st->id, unread);
    core->wake_writer();
  }
  st->abandoned = true;
  st->inbound.clear();
  st->inbound.shrink_to_fit();
  st->fixed = {};
  st->head = st->tail = 0;
  if (!st->in_flight) release_buffer(*core, *st);  // else freed with the stream, once the writer let it go
  const double seconds = std::chrono::duration<double>(clock::now() - started).count();
  svc.stats.record_request(status, st->sent, seconds);
  log_access(*core, req, status, st->sent, seconds);
  core->handler_finished();
}

// --- nghttp2's callbacks -------------------------------------------------------------------------------

h2_core& core_of(void* user_data) { return *static_cast<h2_core*>(user_data); }

int on_begin_headers(nghttp2_session*, const nghttp2_frame* frame, void* user_data) {
  auto& core = core_of(user_data);
  if (frame->hd.type != NGHTTP2_HEADERS || frame->headers.cat != NGHTTP2_HCAT_REQUEST) return 0;
  // Streams the client reset still run until their handler notices: bounded too (rapid reset).
  if (core.live_handlers >= 2 * std::size_t{core.svc.config.h2.max_concurrent_streams}) {
    core.svc.stats.h2_refusal();
    nghttp2_submit_rst_stream(core.session, NGHTTP2_FLAG_NONE, frame->hd.stream_id, NGHTTP2_REFUSED_STREAM);
    return 0;
  }
  core.streams.emplace(frame->hd.stream_id,
                       std::make_shared<h2_stream>(frame->hd.stream_id, core.conn->socket.get_executor()));
  return 0;
}

int on_header(nghttp2_session*, const nghttp2_frame* frame, const std::uint8_t* name, std::size_t namelen,
              const std::uint8_t* value, std::size_t valuelen, std::uint8_t, void* user_data) {
  auto& core = core_of(user_data);
  if (frame->hd.type != NGHTTP2_HEADERS || frame->headers.cat != NGHTTP2_HCAT_REQUEST) return 0;
  auto* st = core.find(frame->hd.stream_id);
  if (!st || st->header_too_large) return 0;
  const std::string_view n(reinterpret_cast<const char*>(name), namelen);
  const std::string_view v(reinterpret_cast<const char*>(value), valuelen);
  // The size of a header list as SETTINGS_MAX_HEADER_LIST_SIZE counts it (RFC 9113 §6.5.2).
  st->header_bytes += namelen + valuelen + 32;
  if (st->header_bytes > core.svc.config.max_header_bytes ||
      st->fields.size() >= core.svc.config.max_header_fields) {
    st->header_too_large = true;
    st->fields.clear();
    return 0;
  }
  if (n == ":method")
    st->method = v;
  else if (n == ":path")
    st->path = v;
  else if (n == ":authority")
    st->authority = v;
  else if (!n.starts_with(':'))
    st->fields.emplace_back(n, v);
  return 0;
}

int on_frame_recv(nghttp2_session*, const nghttp2_frame* frame, void* user_data) {
  auto& core = core_of(user_data);
  if (frame->hd.type != NGHTTP2_HEADERS && frame->hd.type != NGHTTP2_DATA) return 0;
  auto it = core.streams.find(frame->hd.stream_id);
  if (it == core.streams.end()) return 0;
  auto& st = *it->second;
  const bool end = (frame->hd.flags & NGHTTP2_FLAG_END_STREAM) != 0;
  if (end) {
    st.request_ended = true;
    st.notify();
  }
  if (frame->hd.type == NGHTTP2_HEADERS && frame->headers.cat == NGHTTP2_HCAT_REQUEST) {
    st.ended_with_headers = end;
    complete_head(st);
    auto& c = *core.conn;
    c.awaiting_request = false;
    if (c.requests++ == 0) core.ctx.fresh.fetch_sub(1, std::memory_order_relaxed);
    ++core.live_handlers;
    core.svc.stats.h2_stream();
    net::co_spawn(c.socket.get_executor(), run_stream(core.shared_from_this(), it->second), net::detached);
  }
  return 0;
}

int on_data_chunk_recv(nghttp2_session* session, std::uint8_t, std::int32_t stream_id,
                       const std::uint8_t* data, std::size_t len, void* user_data) {
  auto& core = core_of(user_data);
  auto* st = core.find(stream_id);
  if (!st || st->handler_done) {
    nghttp2_session_consume(session, stream_id, len);  // nobody reads it: the window opens again at once
    return 0;
  }
  st->inbound.append(reinterpret_cast<const char*>(data), len);
  st->notify();
  return 0;
}

int on_frame_send(nghttp2_session*, const nghttp2_frame* frame, void* user_data) {
  auto& core = core_of(user_data);
  if ((frame->hd.type == NGHTTP2_DATA || frame->hd.type == NGHTTP2_HEADERS) &&
      (frame->hd.flags & NGHTTP2_FLAG_END_STREAM))
    if (auto* st = core.find(frame->hd.stream_id)) {
      st->response_sent = true;
      st->notify();
    }
  return 0;
}

int on_stream_close(nghttp2_session* session, std::int32_t stream_id, std::uint32_t error_code,
                    void* user_data) {
  auto& core = core_of(user_data);
  auto it = core.streams.find(stream_id);
  if (it == core.streams.end()) return 0;
  auto& st = *it->second;
  st.closed = true;
  if (error_code != NGHTTP2_NO_ERROR && !st.we_reset && !st.response_sent) core.svc.stats.h2_stream_reset();
  // Body bytes nobody will read: the connection's window opens again.
  if (const auto unread = st.inbound.size() - st.inbound_pos; unread > 0 && !st.handler_done)
    nghttp2_session_consume_connection(session, unread);
  st.inbound.clear();
  st.inbound_pos = 0;
  st.handler_done = true;
  st.notify();
  core.streams.erase(it);
  if (core.idle()) core.idle_since = clock::now();
  return 0;
}

bool h2_core::init() {
  nghttp2_session_callbacks* callbacks = nullptr;
  if (nghttp2_session_callbacks_new(&callbacks) != 0) return false;
  nghttp2_session_callbacks_set_on_begin_headers_callback(callbacks, on_begin_headers);
  nghttp2_session_callbacks_set_on_header_callback(callbacks, on_header);
  nghttp2_session_callbacks_set_on_frame_recv_callback(callbacks, on_frame_recv);
  nghttp2_session_callbacks_set_on_data_chunk_recv_callback(callbacks, on_data_chunk_recv);
  nghttp2_session_callbacks_set_on_frame_send_callback(callbacks, on_frame_send);
  nghttp2_session_callbacks_set_on_stream_close_callback(callbacks, on_stream_close);
  nghttp2_session_callbacks_set_send_data_callback(callbacks, send_data);
  nghttp2_option* options = nullptr;
  if (nghttp2_option_new(&options) != 0) {
    nghttp2_session_callbacks_del(callbacks);
    return false;
  }
  // The window given back is what handlers read (h2_body): a stream buffers at most its window.
  nghttp2_option_set_no_auto_window_update(options, 1);
  // Attacks as nginx and Envoy bound them since 2023: queued SETTINGS/PING acknowledgements of a client
  // that does not read, SETTINGS entries per frame, streams reset faster than a sustained rate (rapid
  // reset, CVE-2023-44487), CONTINUATION frames per header block; our HPACK encoder's table stays small.
  nghttp2_option_set_max_outbound_ack(options, 1000);
  nghttp2_option_set_max_settings(options, 32);
  nghttp2_option_set_stream_reset_rate_limit(options, 1000, 33);
  nghttp2_option_set_max_continuations(options, 8);
  nghttp2_option_set_max_deflate_dynamic_table_size(options, 4096);
  const int rv = nghttp2_session_server_new2(&session, callbacks, this, options);
  nghttp2_option_del(options);
  nghttp2_session_callbacks_del(callbacks);
  if (rv != 0) return false;
  const auto& cfg = svc.config;
  const nghttp2_settings_entry settings[] = {
      {NGHTTP2_SETTINGS_MAX_CONCURRENT_STREAMS, cfg.h2.max_concurrent_streams},
      {NGHTTP2_SETTINGS_INITIAL_WINDOW_SIZE, cfg.h2.stream_window},
      {NGHTTP2_SETTINGS_MAX_HEADER_LIST_SIZE, static_cast<std::uint32_t>(cfg.max_header_bytes)},
  };
  if (nghttp2_submit_settings(session, NGHTTP2_FLAG_NONE, settings, std::size(settings)) != 0) return false;
  return nghttp2_session_set_local_window_size(session, NGHTTP2_FLAG_NONE, 0,
                                               static_cast<std::int32_t>(cfg.h2.connection_window)) == 0;
}

// --- the connection's coroutines -----------------------------------------------------------------------

// The connection's bytes: the socket itself (--h2c), or TLS on it by our own driver (tls_io: SSL_write and
// SSL_read straight on the socket, no second buffer).
net::awaitable<std::pair<boost::system::error_code, std::size_t>> write_all(tcp::socket& s,
                                                                            std::string_view bytes) {
  auto [ec, n] = co_await net::async_write(s, net::buffer(bytes.data(), bytes.size()), kTuple);
  co_return std::pair{ec, n};
}
net::awaitable<tls_io::result> write_all(tls_io& s, std::string_view bytes) { return s.write(bytes); }
net::awaitable<std::pair<boost::system::error_code, std::size_t>> read_some(tcp::socket& s,
                                                                            std::vector<char>& buf) {
  auto [ec, n] = co_await s.async_read_some(net::buffer(buf), kTuple);
  co_return std::pair{ec, n};
}
net::awaitable<tls_io::result> read_some(tls_io& s, std::vector<char>& buf) { return s.read_some(buf); }

// Writes `bytes` within the send deadline; false when the connection cannot go on.
template <class Stream>
net::awaitable<bool> send(h2_core& core, Stream& s, std::string_view bytes) {
  auto& c = *core.conn;
  c.set_deadline(core.svc.config.send_timeout);
  auto [ec, n] = co_await write_all(s, bytes);
  c.clear_deadline();
  c.bytes_written += n;
  co_return !ec && !c.timed_out;
}

// What of `bytes` the connection takes without waiting, with no coroutine (OpenSSL on the non-blocking
// socket; none on a cleartext socket), is dropped from `bytes`: send() writes the rest. False when the
// connection failed.
bool send_now(h2_core& core, tls_io& s, std::string_view& bytes) {
  const auto [ec, n] = s.write_now(bytes);
  core.conn->bytes_written += n;
  bytes.remove_prefix(n);
  return !ec;
}
bool send_now(h2_core&, tcp::socket&, std::string_view&) { return true; }

// Where the DATA frame send_data left in a stream's buffer goes out from: its header in the bytes before its
// payload (the buffer's headroom, or the end of the frame before it, already written), and the batch before
// that when it fits, so that one SSL_write takes all of it without a copy of the payload. `before`: the
// batch, when it does not fit there and goes first.
struct frame_regions {
  std::string_view before, frame;
};
frame_regions place_frame(h2_core& core, std::string& out) {
  auto& f = core.frame;
  char* payload = f.st->bytes() + f.offset;
  const auto room = kHeadroom + f.offset;  // bytes before the payload that are free
  frame_regions r;
  if (!out.empty() && out.size() + kFrameHeader > room) {
    r.before = out;
  } else {
    char* start = payload - kFrameHeader - out.size();
    std::memcpy(start, out.data(), out.size());
  }
  char* start = payload - kFrameHeader - (r.before.empty() ? out.size() : 0);
  std::memcpy(payload - kFrameHeader, f.header, kFrameHeader);
  r.frame = std::string_view(start, static_cast<std::size_t>(payload + f.length - start));
  return r;
}

// Writes what nghttp2 has to send, in batches, until the connection ends. A write the socket takes at once
// (nearly all of them) costs no coroutine of its own.
template <class Stream>
net::awaitable<void> write_loop(std::shared_ptr<h2_core> core, Stream& s) {
  std::string out;
  core->batch = &out;
  while (!core->dead) {
    out.clear();
    while (out.size() < kWriteBatch && !core->frame.st) {
      const std::uint8_t* data = nullptr;
      const auto n = nghttp2_session_mem_send(core->session, &data);
      if (n < 0) {
        core->dead = true;
        break;
      }
      if (n == 0) break;
      out.append(reinterpret_cast<const char*>(data), static_cast<std::size_t>(n));
    }
    if (core->frame.st) {
      if (core->dead) break;
      const auto regions = place_frame(*core, out);
      std::string_view rest = regions.before;
      bool ok = send_now(*core, s, rest);
      if (ok && !rest.empty()) ok = co_await send(*core, s, rest);
      rest = regions.frame;
      if (ok) ok = send_now(*core, s, rest);
      if (ok && !rest.empty()) ok = co_await send(*core, s, rest);
      // The stream's buffer is its own again.
      const auto st = std::move(core->frame.st);
      st->in_flight = false;
      if (st->head == st->tail) st->notify();  // the buffer is free: read on from storage
      if (!ok) break;
      continue;
    }
    if (!out.empty() && !core->dead) {
      std::string_view rest = out;
      bool ok = send_now(*core, s, rest);
      if (ok && !rest.empty()) ok = co_await send(*core, s, rest);
      if (!ok) break;
      continue;
    }
    if (core->dead || core->flush_and_close) break;
    if (!nghttp2_session_want_read(core->session) && !nghttp2_session_want_write(core->session)) break;
    if (core->draining && core->idle()) break;  // GOAWAY written, every stream done
    co_await core->writer_wake.async_wait(kTuple);
    core->writer_wake.expires_at(clock::time_point::max());
  }
  if (auto st = std::move(core->frame.st)) {  // a frame never written: its stream ends with the connection
    st->in_flight = false;
    st->notify();
  }
  core->batch = nullptr;
  core->writer_done = true;
  core->stop();
  boost::system::error_code ignored;
  core->conn->socket.cancel(ignored);  // the reader stops
  core->writer_stopped.cancel();
}

// Closes a connection without streams once it has been idle for the idle timeout (the header timeout
// before its first request), with a GOAWAY.
net::awaitable<void> idle_loop(std::shared_ptr<h2_core> core) {
  const auto& cfg = core->svc.config;
  while (!core->dead && !core->draining) {
    const auto limit = core->conn->requests == 0 ? cfg.header_timeout : cfg.idle_timeout;
    if (core->idle()) {
      const auto until = core->idle_since + limit;
      if (clock::now() >= until) {
        core->begin_drain();
        break;
      }
      core->idle_timer.expires_at(until);
    } else {
      core->idle_timer.expires_after(limit);
    }
    co_await core->idle_timer.async_wait(kTuple);
  }
}

template <class Stream>
net::awaitable<void> serve(std::shared_ptr<connection> c, Stream& s, connection_context& ctx,
                           std::string_view preread) {
  auto core = std::make_shared<h2_core>(c, ctx);
  auto& svc = ctx.svc;
  if (!core->init()) {
    svc.log.error("{}: cannot start an HTTP/2 session (out of memory)", c->peer);
    co_return;
  }
  svc.stats.h2_connection();
  c->drain = [weak = std::weak_ptr<h2_core>(core)] {
    if (auto k = weak.lock()) k->begin_drain();
  };
  if (ctx.draining) core->begin_drain();
  std::vector<char> buf(kReadBuffer);
  auto feed = [&](std::string_view bytes) {
    const auto rv = nghttp2_session_mem_recv(
        core->session, reinterpret_cast<const std::uint8_t*>(bytes.data()), bytes.size());
    if (rv >= 0) return true;
    svc.log.debug("{}: HTTP/2 connection error: {}", c->peer, nghttp2_strerror(static_cast<int>(rv)));
    const bool abuse = rv == NGHTTP2_ERR_FLOODED || rv == NGHTTP2_ERR_TOO_MANY_CONTINUATIONS;
    if (abuse) svc.stats.h2_refusal();
    // nghttp2 queued a GOAWAY for protocol errors it found in frames; not for floods: one says why.
    nghttp2_session_terminate_session(core->session,
                                      abuse ? NGHTTP2_ENHANCE_YOUR_CALM : NGHTTP2_PROTOCOL_ERROR);
    core->flush_and_close = true;
    return false;
  };
  const auto executor = c->socket.get_executor();
  net::co_spawn(executor, write_loop(core, s), net::detached);
  net::co_spawn(executor, idle_loop(core), net::detached);
  if (preread.empty() || feed(preread)) {
    core->wake_writer();
    while (!core->dead && !core->flush_and_close) {
      auto [ec, n] = co_await read_some(s, buf);
      if (ec || core->dead) break;
      if (!feed({buf.data(), n})) break;
      core->wake_writer();
    }
  }
  // The reader is done. After a protocol error the writer flushes nghttp2's GOAWAY first (within its send
  // deadline); otherwise the connection is gone.
  if (!core->flush_and_close) core->stop();
  core->wake_writer();
  while (!core->writer_done) {
    co_await core->writer_stopped.async_wait(kTuple);
    core->writer_stopped.expires_at(clock::time_point::max());
  }
  core->stop();
  // Streams stop at their next step (a storage read in flight finishes first): the connection counts as open
  // until then, so that draining waits for them and nothing outlives what it uses.
  while (core->live_handlers > 0) {
    core->writer_stopped.expires_at(clock::time_point::max());
    co_await core->writer_stopped.async_wait(kTuple);
  }
  c->drain = nullptr;
}

}  // namespace

bool starts_h2_preface(std::string_view first) {
  return kH2Preface.starts_with(first.substr(0, kH2Preface.size()));
}

net::awaitable<void> serve_h2(std::shared_ptr<connection> c, tcp::socket& s, connection_context& ctx,
                              std::string_view preread) {
  return serve(std::move(c), s, ctx, preread);
}

net::awaitable<void> serve_h2(std::shared_ptr<connection> c, tls_io& s, connection_context& ctx,
                              std::string_view preread) {
  return serve(std::move(c), s, ctx, preread);
}

}  // namespace mediagate::server
