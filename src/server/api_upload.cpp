// Uploads that stream: the request body goes to storage in pieces (bounded memory), and the catalog row
// is written only once storage holds the whole object. An upload that is interrupted, too large or
// malformed makes the storage write fail, which leaves no object (see storage::write) and no row.
#include <spdlog/spdlog.h>

#include <boost/asio/as_tuple.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <boost/beast/http/buffer_body.hpp>
#include <boost/beast/http/read.hpp>
#include <boost/json/serialize.hpp>
#include <map>

#include "catalog/catalog.hpp"
#include "catalog/library.hpp"
#include "http/content_type.hpp"
#include "http/media_key.hpp"
#include "http/token.hpp"
#include "server/api.hpp"
#include "server/api_form_data.hpp"
#include "server/api_json.hpp"

namespace mediagate::server {
namespace {

namespace bhttp = beast::http;
namespace json = boost::json;
constexpr auto kTuple = net::as_tuple(net::use_awaitable);
constexpr std::size_t kChunkBytes = 64 * 1024;
constexpr std::size_t kMaxFieldBytes = 4096;
constexpr std::uint64_t kFormOverhead = 1 << 20;  // part headers and small fields around the file

// The request body, piece by piece, into the caller's buffer: a deadline per read (a client that stops
// sending is dropped), a limit on the total, and "100 Continue" sent when the client waits for it.
class body_reader {
 public:
  body_reader(connection& c, worker_context& ctx, request_parser& header, std::uint64_t limit)
      : c_(c), ctx_(ctx), parser_(std::move(header)), limit_(limit) {
    parser_.body_limit(boost::none);  // counted here, to answer 413 rather than fail the parse
    auto expect = parser_.get()[bhttp::field::expect];
    expect_continue_ = http::iequals(http::trim_ows(expect), "100-continue");
  }

  net::awaitable<storage::result<std::size_t>> read(std::span<char> buf) {
    if (expect_continue_) {
      expect_continue_ = false;
      if (!co_await write_all(c_, ctx_.config, "HTTP/1.1 100 Continue\r\n\r\n")) co_return gone("");
    }
    while (!parser_.is_done()) {
      auto& body = parser_.get().body();
      body.data = buf.data();
      body.size = buf.size();
      body.more = true;
      c_.set_deadline(ctx_.config.idle_timeout);
      auto [ec, n] = co_await bhttp::async_read_some(c_.socket, c_.buffer, parser_, kTuple);
      if (ec == bhttp::error::need_buffer) ec = {};
      if (c_.timed_out) co_return gone("timed out");
      if (ec) co_return gone(ec.message());
      const auto got = buf.size() - body.size;
      received_ += got;
      if (received_ > limit_) {
        too_large_ = true;
        co_return storage::error{storage::errc::bad_key, "the upload is larger than the limit"};
      }
      if (got > 0) co_return got;
    }
    co_return std::size_t{0};
  }

  bool too_large() const { return too_large_; }
  bool interrupted() const { return interrupted_; }
  std::uint64_t received() const { return received_; }

 private:
  storage::error gone(const std::string& why) {
    interrupted_ = true;
    return {storage::errc::io_error, "the client stopped sending the body" + (why.empty() ? "" : ": " + why)};
  }
  connection& c_;
  worker_context& ctx_;
  bhttp::request_parser<bhttp::buffer_body> parser_;
  std::uint64_t limit_;
  std::uint64_t received_ = 0;
  bool expect_continue_ = false;
  bool too_large_ = false;
  bool interrupted_ = false;
};

// After an early answer (413), reads and drops what the client still sends for a moment, so that its
// TCP stack sees our response rather than a reset from closing with unread data.
net::awaitable<void> linger(connection& c) {
  std::vector<char> scratch(kChunkBytes);
  std::size_t total = 0;
  c.set_deadline(std::chrono::milliseconds(2000));
  while (total < (16u << 20)) {
    auto [ec, n] = co_await c.socket.async_read_some(net::buffer(scratch), kTuple);
    if (ec || c.timed_out) break;
    total += n;
  }
}

double now_ms() { return std::chrono::duration<double, std::milli>(clock::now().time_since_epoch()).count(); }

unsigned status_of_write_error(const storage::error& e) {
  switch (e.code) {
    case storage::errc::bad_key:
      return 400;
    case storage::errc::forbidden:
      return 403;
    case storage::errc::upstream_timeout:
      return 504;
    case storage::errc::upstream_rejected:
    case storage::errc::upstream_unavailable:
      return 502;
    default:
      return 500;
  }
}

// The key's extension decides when it is known (clients label raw bodies carelessly: curl sends
// application/x-www-form-urlencoded); otherwise the declared type when it says something.
std::string type_for_upload(std::string_view declared, const std::string& key) {
  if (auto by_ext = http::content_type_for_key(key); !by_ext.empty()) return std::string(by_ext);
  std::string_view type = http::trim_ows(declared);
  if (!type.empty() && !http::is_generic_type(type) &&
      !type.starts_with("application/x-www-form-urlencoded") && !type.starts_with("multipart/") &&
      type.find_first_of("\r\n") == std::string_view::npos)
    return std::string(type);
  return "application/octet-stream";
}

// Answers a failed upload. Nothing was stored; the connection closes afterwards.
net::awaitable<request_outcome> upload_failed(connection& c, worker_context& ctx, const body_reader& reader,
                                              const std::string& key, const storage::error& e,
                                              bool malformed) {
  if (reader.too_large()) {
    ctx.log.info("{}: upload of {} refused after {} bytes: larger than {} bytes", c.peer, key,
                 reader.received(), ctx.api->max_upload_bytes);
    auto out = co_await send_json_error(c, ctx, 413,
                                        "the upload is larger than the limit of " +
                                            std::to_string(ctx.api->max_upload_bytes) +
                                            " bytes (--max-upload-bytes)",
                                        false);
    co_await linger(c);
    co_return out;
  }
  if (reader.interrupted()) {
    ctx.log.info("{}: upload of {} interrupted after {} bytes: nothing stored ({})", c.peer, key,
                 reader.received(), e.message);
    request_outcome out;
    out.status = 400;
    out.close = true;
    co_return out;
  }
  if (malformed) co_return co_await send_json_error(c, ctx, 400, e.message, false);
  const auto status = status_of_write_error(e);
  ctx.log.warn("{}: upload of {} failed: {} ({})", c.peer, key, e.message, status);
  co_return co_await send_json_error(c, ctx, status, "storing the upload failed: " + e.message, false);
}

// Adds the stored object to the catalog (or updates its row), queues a probe, and answers with the item.
net::awaitable<request_outcome> upload_done(connection& c, worker_context& ctx, const std::string& key,
                                            const std::string& type, const storage::object_meta& meta,
                                            const std::string& title, bool existed, double started_ms) {
  catalog::media_item item;
  std::string failed;  // no co_await inside a handler: the answer is sent after it
  try {
    item = ctx.api->items->upsert({key, type, meta.size, meta.etag}, title);
  } catch (const std::exception& e) {
    failed = e.what();
  }
  if (!failed.empty()) {
    // The object is stored but has no row: a later scan adds it.
    ctx.log.error("{}: upload of {} stored, but the catalog failed: {}", c.peer, key, failed);
    co_return co_await send_json_error(
        c, ctx, 500, "the object was stored but the catalog failed: see the server log", false);
  }
  if (ctx.api->lib) ctx.api->lib->request_probe(item.id);
  const auto ms = now_ms() - started_ms;
  ctx.log.info("{}: uploaded {} ({} bytes, {}) as {} in {:.0f} ms", c.peer, key, meta.size, type, item.id,
               ms);
  http::header_list extra;
  extra.emplace_back("Location", "/api/media/" + item.id);
  const unsigned status = existed ? 200 : 201;
  co_return co_await send_json(c, ctx, status, json::serialize(item_json(item)), false, false,
                               std::move(extra));
}

// Checks the framing before a byte of the body is read: a length or chunked coding, within the limit.
std::optional<std::pair<unsigned, std::string>> check_framing(const request_parser& parser,
                                                              std::uint64_t limit) {
  const auto length = parser.content_length();
  if (!length && !parser.chunked())
    return std::pair<unsigned, std::string>{411, "an upload needs Content-Length or chunked transfer coding"};
  if (length && *length > limit)
    return std::pair<unsigned, std::string>{413, "the upload is larger than the limit of " +
                                                     std::to_string(limit) + " bytes (--max-upload-bytes)"};
  return std::nullopt;
}

net::awaitable<request_outcome> refuse_framing(connection& c, worker_context& ctx, unsigned status,
                                               std::string message) {
  auto out = co_await send_json_error(c, ctx, status, message, false);
  if (status == 413) co_await linger(c);
  co_return out;
}

// A file name from a form as a storage key: its last component, without control bytes or leading dots.
std::string key_from_filename(std::string_view name) {
  if (const auto slash = name.find_last_of("/\\"); slash != std::string_view::npos)
    name.remove_prefix(slash + 1);
  std::string out;
  for (unsigned char ch : name)
    if (ch >= 0x20 && ch != 0x7f) out += static_cast<char>(ch);
  while (!out.empty() && (out.front() == '.' || out.front() == ' ')) out.erase(0, 1);
  while (!out.empty() && out.back() == ' ') out.pop_back();
  if (out.size() > 200) out.erase(0, out.size() - 200);  // keep the end: the extension names the type
  if (out.empty() || !http::decode_media_key(http::encode_key_for_url(out))) out = "upload";
  return out;
}

// "name.ext", or "name-2.ext", "name-3.ext", ... when that key is taken in storage or the catalog.
net::awaitable<std::string> unused_key(worker_context& ctx, std::string key) {
  const auto dot = key.rfind('.');
  const auto stem = dot == std::string::npos || dot == 0 ? key : key.substr(0, dot);
  const auto ext = dot == std::string::npos || dot == 0 ? std::string() : key.substr(dot);
  for (int n = 1; n < 1000; ++n) {
    auto candidate = n == 1 ? key : stem + "-" + std::to_string(n) + ext;
    if (ctx.api->items->get_by_key(candidate)) continue;
    auto existing = co_await ctx.store.stat(candidate);
    if (!existing && existing.err().code == storage::errc::not_found) co_return candidate;
  }
  co_return stem + "-" + std::to_string(ctx.random() % 1000000000) + ext;
}

// The events of a multipart body, read from the client as the parser needs them.
class form_stream {
 public:
  form_stream(body_reader& reader, std::string boundary) : reader_(reader), parser_(std::move(boundary)) {}

  // The next event; nullopt once the closing boundary was read.
  net::awaitable<storage::result<std::optional<form_event>>> next() {
    while (!parser_.has_event()) {
      if (parser_.done()) co_return std::optional<form_event>();
      auto n = co_await reader_.read(chunk_);
      if (!n) co_return n.err();
      if (*n == 0) co_return malformed("the form ended before its closing boundary");
      if (!parser_.feed({chunk_.data(), *n}))
        co_return malformed("malformed multipart/form-data: " + parser_.error());
    }
    co_return std::optional<form_event>(parser_.pop_event());
  }
  bool malformed() const { return malformed_; }

 private:
  storage::error malformed(std::string message) {
    malformed_ = true;
    return {storage::errc::bad_key, std::move(message)};
  }
  body_reader& reader_;
  form_data_parser parser_;
  std::vector<char> chunk_ = std::vector<char>(kChunkBytes);
  bool malformed_ = false;
};

}  // namespace

net::awaitable<request_outcome> handle_put_upload(connection& c, worker_context& ctx, request_parser& parser,
                                                  std::string key) {
  const auto started = now_ms();
  if (auto bad = check_framing(parser, ctx.api->max_upload_bytes))
    co_return co_await refuse_framing(c, ctx, bad->first, bad->second);
  const auto type = type_for_upload(parser.get()[bhttp::field::content_type], key);
  bool existed = false;
  std::string failed;
  try {
    existed = ctx.api->items->get_by_key(key).has_value();
  } catch (const std::exception& e) {
    failed = e.what();
  }
  if (!failed.empty()) {
    ctx.log.error("{}: catalog failed: {}", c.peer, failed);
    co_return co_await send_json_error(c, ctx, 500, "the catalog failed: see the server log", false);
  }
  body_reader reader(c, ctx, parser, ctx.api->max_upload_bytes);
  storage::body_source source = [&reader](std::span<char> buf) { return reader.read(buf); };
  auto written = co_await ctx.store.write(key, type, std::move(source));
  if (!written) co_return co_await upload_failed(c, ctx, reader, key, written.err(), false);
  co_return co_await upload_done(c, ctx, key, type, *written, "", existed, started);
}

net::awaitable<request_outcome> handle_form_upload(connection& c, worker_context& ctx,
                                                   request_parser& parser) {
  const auto started = now_ms();
  auto boundary = form_data_boundary(parser.get()[bhttp::field::content_type]);
  if (!boundary)
    co_return co_await send_json_error(
        c, ctx, 400, "POST /api/media takes multipart/form-data with a file field (or PUT /api/media/<key>)",
        false);
  if (auto bad = check_framing(parser, ctx.api->max_upload_bytes + kFormOverhead))
    co_return co_await refuse_framing(c, ctx, bad->first, bad->second);

  body_reader reader(c, ctx, parser, ctx.api->max_upload_bytes + kFormOverhead);
  form_stream form(reader, *boundary);
  std::map<std::string, std::string> fields;  // small text fields (title)
  std::string field;                          // the field whose bytes come now; "" for ignored parts
  std::optional<form_part_header> file;
  // Up to the file part: small fields are kept.
  while (!file) {
    auto e = co_await form.next();
    if (!e) co_return co_await upload_failed(c, ctx, reader, "(form)", e.err(), form.malformed());
    if (!*e) co_return co_await send_json_error(c, ctx, 400, "the form has no file field", false);
    auto& ev = **e;
    if (ev.kind == form_event::part_begin) {
      if (ev.header.filename)
        file = ev.header;
      else
        field = ev.header.name;
    } else if (ev.kind == form_event::data && !field.empty()) {
      auto& value = fields[field];
      if (value.size() + ev.bytes.size() > kMaxFieldBytes)
        co_return co_await send_json_error(c, ctx, 400, "the form field '" + field + "' is too long", false);
      value += ev.bytes;
    } else if (ev.kind == form_event::part_end) {
      field.clear();
    }
  }

  std::string key;
  std::string failed;
  try {
    key = co_await unused_key(ctx, key_from_filename(*file->filename));
  } catch (const std::exception& e) {
    failed = e.what();
  }
  if (!failed.empty()) {
    ctx.log.error("{}: catalog failed: {}", c.peer, failed);
    co_return co_await send_json_error(c, ctx, 500, "the catalog failed: see the server log", false);
  }
  const auto type = type_for_upload(file->content_type, key);

  // The file's bytes, then the rest of the form: the source ends only after the closing boundary, so a
  // body cut anywhere fails the write and nothing is stored.
  struct file_state {
    std::string carry;
    std::size_t offset = 0;
    std::uint64_t bytes = 0;
    bool file_done = false;
    bool too_large = false;
  };
  auto st = std::make_shared<file_state>();
  const auto limit = ctx.api->max_upload_bytes;
  storage::body_source source = [&form, &fields, st,
                                 limit](std::span<char> buf) -> net::awaitable<storage::result<std::size_t>> {
    std::string after_field;
    while (st->offset == st->carry.size()) {
      auto e = co_await form.next();
      if (!e) co_return e.err();
      if (!*e) {
        if (!st->file_done)
          co_return storage::error{storage::errc::bad_key, "the form ended inside the file"};
        co_return std::size_t{0};
      }
      auto& ev = **e;
      if (st->file_done) {  // after the file: keep small fields, skip anything else
        if (ev.kind == form_event::part_begin)
          after_field = ev.header.filename ? "" : ev.header.name;
        else if (ev.kind == form_event::data && !after_field.empty() &&
                 fields[after_field].size() < kMaxFieldBytes)
          fields[after_field] += ev.bytes.substr(0, kMaxFieldBytes - fields[after_field].size());
        continue;
      }
      if (ev.kind == form_event::data) {
        st->carry = std::move(ev.bytes);
        st->offset = 0;
      } else if (ev.kind == form_event::part_end) {
        st->file_done = true;
      }
    }
    const auto n = std::min(buf.size(), st->carry.size() - st->offset);
    std::copy_n(st->carry.data() + st->offset, n, buf.data());
    st->offset += n;
    st->bytes += n;
    if (st->bytes > limit) {
      st->too_large = true;
      co_return storage::error{storage::errc::bad_key, "the upload is larger than the limit"};
    }
    co_return n;
  };
  auto written = co_await ctx.store.write(key, type, std::move(source));
  if (!written) {
    if (st->too_large) {
      ctx.log.info("{}: form upload of {} refused: larger than {} bytes", c.peer, key, limit);
      auto out = co_await send_json_error(
          c, ctx, 413,
          "the upload is larger than the limit of " + std::to_string(limit) + " bytes (--max-upload-bytes)",
          false);
      co_await linger(c);
      co_return out;
    }
    co_return co_await upload_failed(c, ctx, reader, key, written.err(), form.malformed());
  }
  std::string title(http::trim_ows(fields["title"]));
  if (title.size() > 300) title.resize(300);
  co_return co_await upload_done(c, ctx, key, type, *written, title, false, started);
}

net::awaitable<std::optional<std::string>> read_small_body(connection& c, worker_context& ctx,
                                                           request_parser& parser, std::size_t limit,
                                                           unsigned& status) {
  if (parser.is_done()) co_return std::string();
  const auto length = parser.content_length();
  if (length && *length > limit) {
    status = 413;
    co_return std::nullopt;
  }
  body_reader reader(c, ctx, parser, limit);
  std::string body;
  std::vector<char> chunk(16 * 1024);
  while (true) {
    auto n = co_await reader.read(chunk);
    if (!n) {
      status = reader.too_large() ? 413 : 400;
      co_return std::nullopt;
    }
    if (*n == 0) break;
    body.append(chunk.data(), *n);
  }
  co_return body;
}

}  // namespace mediagate::server
