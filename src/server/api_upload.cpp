// Uploads that stream: the request body goes to storage in pieces (bounded memory), and the catalog row
// is written only once storage holds the whole object. An upload that is interrupted, too large or
// malformed makes the storage write fail, which leaves no object (see storage::write) and no row.
#include <spdlog/spdlog.h>

#include <boost/asio/as_tuple.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/this_coro.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <boost/json/serialize.hpp>
#include <chrono>
#include <map>

#include "catalog/catalog.hpp"
#include "catalog/library.hpp"
#include "http/content_type.hpp"
#include "http/media_key.hpp"
#include "http/token.hpp"
#include "server/api.hpp"
#include "server/api_form_data.hpp"
#include "server/api_json.hpp"
#include "server/error_status.hpp"
#include "storage/storage.hpp"

namespace mediagate::server {
namespace {

namespace net = boost::asio;
namespace json = boost::json;
constexpr std::size_t kChunkBytes = 64 * 1024;
constexpr std::size_t kMaxFieldBytes = 4096;
constexpr std::uint64_t kFormOverhead = 1 << 20;  // part headers and small fields around the file

double now_ms() {
  return std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now().time_since_epoch())
      .count();
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

std::string too_large_message(std::uint64_t limit) {
  return "the upload is larger than the limit of " + std::to_string(limit) + " bytes (--max-upload-bytes)";
}

// Answers a failed upload. Nothing was stored; the connection closes afterwards (the body is not read on).
response upload_failed(const request& req, services& svc, const std::string& key, const error& e) {
  response r;
  switch (e.code) {
    case errc::too_large:
      svc.log.info("{}: upload of {} refused after {} bytes: larger than {} bytes", req.peer, key,
                   req.body->received(), svc.api->max_upload_bytes);
      r = json_error(413, too_large_message(svc.api->max_upload_bytes));
      break;
    case errc::client_gone:
      svc.log.info("{}: upload of {} interrupted after {} bytes: nothing stored ({})", req.peer, key,
                   req.body->received(), e.message);
      r = json_error(400, e.message);
      break;
    case errc::bad_body:
    case errc::bad_key:
    case errc::conflict:
      r = json_error(status_for(e.code), e.message);
      break;
    default: {
      const auto status = status_for(e.code);
      svc.log.warn("{}: upload of {} failed: {} ({})", req.peer, key, e.message, status);
      r = json_error(status, "storing the upload failed: " + e.message);
    }
  }
  r.close = true;
  return r;
}

// Adds the stored object to the catalog (or updates its row), queues a probe, and answers with the item.
response upload_done(const request& req, services& svc, const std::string& key, const std::string& type,
                     const storage::object_meta& meta, const std::string& title, bool existed,
                     double started_ms) {
  catalog::media_item item;
  try {
    item = svc.api->items->upsert({key, type, meta.size, meta.etag}, title);
  } catch (const std::exception& e) {
    // The object is stored but has no row: a later scan adds it.
    svc.log.error("{}: upload of {} stored, but the catalog failed", req.peer, key);
    auto r = catalog_failure(req, svc, e);
    r.close = true;
    return r;
  }
  if (svc.api->lib) svc.api->lib->request_probe(item.id);
  svc.log.info("{}: uploaded {} ({} bytes, {}) as {} in {:.0f} ms", req.peer, key, meta.size, type, item.id,
               now_ms() - started_ms);
  auto r = json_response(existed ? 200 : 201, api_json_text(item_json(item)),
                         {{"Location", "/api/media/" + item.id}});
  r.close = true;  // as before the redesign: clients of uploads read the answer to the end of the connection
  return r;
}

// Checks the framing before a byte of the body is read: a length or chunked coding, within the limit.
std::optional<response> check_framing(const request& req, std::uint64_t limit) {
  if (!req.content_length && !req.chunked)
    return json_error(411, "an upload needs Content-Length or chunked transfer coding");
  if (req.content_length && *req.content_length > limit) {
    auto r = json_error(413, too_large_message(limit));
    r.close = true;
    return r;
  }
  req.body->set_limit(limit);
  return std::nullopt;
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

// "name.ext", or "name-2.ext", "name-3.ext", ... when that key is taken in storage, in the catalog or by an
// upload in progress; the key is reserved until `reservation` is destroyed, so that parallel uploads of one
// file name never write the same key.
net::awaitable<std::string> unused_key(services& svc, std::string key, key_reservation& reservation) {
  const auto dot = key.rfind('.');
  const auto stem = dot == std::string::npos || dot == 0 ? key : key.substr(0, dot);
  const auto ext = dot == std::string::npos || dot == 0 ? std::string() : key.substr(dot);
  for (int n = 1; n < 1000; ++n) {
    auto candidate = n == 1 ? key : stem + "-" + std::to_string(n) + ext;
    if (svc.api->items->get_by_key(candidate)) continue;
    if (!reservation.take(candidate)) continue;
    auto existing = co_await svc.store.stat(candidate);
    if (!existing && existing.err().code == errc::not_found) co_return candidate;
    reservation.release();
  }
  auto fallback = stem + "-" + std::to_string(svc.random() % 1000000000) + ext;
  reservation.take(fallback);
  co_return fallback;
}

// The events of a multipart body, read from the client as the parser needs them.
class form_stream {
 public:
  form_stream(request_body& body, std::string boundary) : body_(body), parser_(std::move(boundary)) {}

  // The next event; nullopt once the closing boundary was read.
  net::awaitable<result<std::optional<form_event>>> next() {
    while (!parser_.has_event()) {
      if (parser_.done()) co_return std::optional<form_event>();
      auto n = co_await body_.read(chunk_);
      if (!n) co_return n.err();
      if (*n == 0) co_return error{errc::bad_body, "the form ended before its closing boundary"};
      if (!parser_.feed({chunk_.data(), *n}))
        co_return error{errc::bad_body, "malformed multipart/form-data: " + parser_.error()};
    }
    co_return std::optional<form_event>(parser_.pop_event());
  }

 private:
  request_body& body_;
  form_data_parser parser_;
  std::vector<char> chunk_ = std::vector<char>(kChunkBytes);
};

// The small text fields of a form (title) and the header of its file part, read up to that part.
struct form_head {
  std::map<std::string, std::string> fields;
  form_part_header file;
};

net::awaitable<result<form_head>> read_form_head(form_stream& form) {
  form_head head;
  std::string field;  // the field whose bytes come now; "" for ignored parts
  while (true) {
    auto e = co_await form.next();
    if (!e) co_return e.err();
    if (!*e) co_return error{errc::bad_body, "the form has no file field"};
    auto& ev = **e;
    if (ev.kind == form_event::part_begin) {
      if (ev.header.filename) {
        head.file = ev.header;
        co_return head;
      }
      field = ev.header.name;
    } else if (ev.kind == form_event::data && !field.empty()) {
      auto& value = head.fields[field];
      if (value.size() + ev.bytes.size() > kMaxFieldBytes)
        co_return error{errc::bad_body, "the form field '" + field + "' is too long"};
      value += ev.bytes;
    } else if (ev.kind == form_event::part_end) {
      field.clear();
    }
  }
}

// The file part's bytes as a body source; the source ends only after the closing boundary, so that a body cut
// anywhere fails the write and nothing is stored. Small fields after the file are kept in `fields`.
class form_file_source {
 public:
  form_file_source(form_stream& form, std::map<std::string, std::string>& fields, std::uint64_t limit)
      : form_(form), fields_(fields), limit_(limit) {}

  net::awaitable<result<std::size_t>> read(std::span<char> buf) {
    while (offset_ == carry_.size()) {
      auto e = co_await form_.next();
      if (!e) co_return e.err();
      if (!*e) {
        if (!file_done_) co_return error{errc::bad_body, "the form ended inside the file"};
        co_return std::size_t{0};
      }
      take(std::move(**e));
    }
    const auto n = std::min(buf.size(), carry_.size() - offset_);
    std::copy_n(carry_.data() + offset_, n, buf.data());
    offset_ += n;
    bytes_ += n;
    if (bytes_ > limit_) co_return error{errc::too_large, too_large_message(limit_)};
    co_return n;
  }

 private:
  void take(form_event ev) {
    if (file_done_) {  // after the file: keep small fields, skip anything else
      if (ev.kind == form_event::part_begin)
        after_field_ = ev.header.filename ? "" : ev.header.name;
      else if (ev.kind == form_event::data && !after_field_.empty() &&
               fields_[after_field_].size() < kMaxFieldBytes)
        fields_[after_field_] += ev.bytes.substr(0, kMaxFieldBytes - fields_[after_field_].size());
      return;
    }
    if (ev.kind == form_event::data) {
      carry_ = std::move(ev.bytes);
      offset_ = 0;
    } else if (ev.kind == form_event::part_end) {
      file_done_ = true;
    }
  }

  form_stream& form_;
  std::map<std::string, std::string>& fields_;
  std::uint64_t limit_;
  std::string carry_;
  std::size_t offset_ = 0;
  std::uint64_t bytes_ = 0;
  bool file_done_ = false;
  std::string after_field_;
};

}  // namespace

bool key_reservation::take(const std::string& key) {
  release();
  std::lock_guard lock(owner_.mutex);
  if (!owner_.keys.insert(key).second) return false;
  key_ = key;
  return true;
}

void key_reservation::release() {
  if (key_.empty()) return;
  std::lock_guard lock(owner_.mutex);
  owner_.keys.erase(key_);
  key_.clear();
}

namespace {

// Uploads to one key take turns: a PUT holds the key (in the registry that form uploads reserve their keys
// in) from before its write until its catalog row is written. So the row written last describes the object
// stored last, on any storage and with any number of event loops: last writer wins, and the row always
// carries the stored object's ETag (issue 11). Storing the row after a fresh stat would also need the stats
// and row writes ordered, and S3 metadata is cached per loop; taking turns is simpler. Waiting is rare (same
// key only), so it polls; after `patience` the upload is refused rather than held forever behind a stalled
// one.
net::awaitable<bool> take_turn(key_reservation& turn, const std::string& key,
                               std::chrono::milliseconds patience) {
  net::steady_timer timer(co_await net::this_coro::executor);
  const auto until = std::chrono::steady_clock::now() + patience;
  while (!turn.take(key)) {
    if (std::chrono::steady_clock::now() >= until) co_return false;
    timer.expires_after(std::chrono::milliseconds(10));
    co_await timer.async_wait(net::as_tuple(net::use_awaitable));
  }
  co_return true;
}

}  // namespace

net::awaitable<response> handle_put_upload(const request& req, services& svc, std::string key) {
  const auto started = now_ms();
  if (auto refused = check_framing(req, svc.api->max_upload_bytes)) co_return std::move(*refused);
  const auto type = type_for_upload(req["Content-Type"], key);
  key_reservation turn(svc.api->uploads_in_progress);
  if (!co_await take_turn(turn, key, svc.config.idle_timeout)) {
    auto r = json_error(409, "another upload to this key is still in progress: try again later");
    r.close = true;
    co_return r;
  }
  bool existed = false;  // read in turn: of two first uploads to a key, one answers 201 and the other 200
  try {
    existed = svc.api->items->get_by_key(key).has_value();
  } catch (const std::exception& e) {
    auto r = catalog_failure(req, svc, e);
    r.close = true;
    co_return r;
  }
  storage::body_source source = [&req](std::span<char> buf) { return req.body->read(buf); };
  auto written = co_await svc.store.write(key, type, std::move(source));
  if (!written) co_return upload_failed(req, svc, key, written.err());
  co_return upload_done(req, svc, key, type, *written, "", existed, started);
}

net::awaitable<response> handle_form_upload(const request& req, services& svc) {
  const auto started = now_ms();
  auto boundary = form_data_boundary(req["Content-Type"]);
  if (!boundary) {
    auto r = json_error(
        400, "POST /api/media takes multipart/form-data with a file field (or PUT /api/media/<key>)");
    r.close = req.has_body();
    co_return r;
  }
  if (auto refused = check_framing(req, svc.api->max_upload_bytes + kFormOverhead))
    co_return std::move(*refused);

  form_stream form(*req.body, *boundary);
  auto head = co_await read_form_head(form);
  if (!head) co_return upload_failed(req, svc, "(form)", head.err());

  key_reservation reservation(svc.api->uploads_in_progress);
  std::string key;
  try {
    key = co_await unused_key(svc, key_from_filename(*head->file.filename), reservation);
  } catch (const std::exception& e) {
    auto r = catalog_failure(req, svc, e);
    r.close = true;
    co_return r;
  }
  const auto type = type_for_upload(head->file.content_type, key);
  auto file = std::make_shared<form_file_source>(form, head->fields, svc.api->max_upload_bytes);
  storage::body_source source = [file](std::span<char> buf) { return file->read(buf); };
  auto written = co_await svc.store.write(key, type, std::move(source));
  if (!written) co_return upload_failed(req, svc, key, written.err());
  std::string title(http::trim_ows(head->fields["title"]));
  if (title.size() > 300) title.resize(300);
  co_return upload_done(req, svc, key, type, *written, title, false, started);
}

net::awaitable<result<std::string>> read_small_body(const request& req, std::size_t limit) {
  if (!req.has_body()) co_return std::string();
  if (req.content_length && *req.content_length > limit)
    co_return error{errc::too_large, "the JSON body is too large"};
  req.body->set_limit(limit);
  std::string body;
  std::vector<char> chunk(16 * 1024);
  while (true) {
    auto n = co_await req.body->read(chunk);
    if (!n) {
      if (n.err().code == errc::too_large) co_return error{errc::too_large, "the JSON body is too large"};
      co_return error{n.err().code, "the request body did not arrive: " + n.err().message};
    }
    if (*n == 0) break;
    body.append(chunk.data(), *n);
  }
  co_return body;
}

}  // namespace mediagate::server
