// Dispatch of one request to its handler: media, health, metrics and the index page.
#include <spdlog/spdlog.h>

#include <algorithm>

#include <boost/beast/http/field.hpp>
#include <boost/beast/http/verb.hpp>

#include "http/content_type.hpp"
#include "http/media_key.hpp"
#include "http/response_plan.hpp"
#include "server/api.hpp"
#include "server/index_page.hpp"
#include "server/session.hpp"
#include "storage/sniff.hpp"

namespace mediagate::server {
namespace {

namespace bhttp = beast::http;
constexpr std::string_view kText = "text/plain; charset=utf-8";

unsigned status_for(storage::errc e) {
  switch (e) {
    case storage::errc::not_found: return 404;
    case storage::errc::bad_key: return 400;
    case storage::errc::forbidden: return 403;
    case storage::errc::upstream_rejected: return 502;
    case storage::errc::upstream_unavailable: return 502;
    case storage::errc::upstream_timeout: return 504;
    case storage::errc::changed: return 503;
    case storage::errc::io_error: return 500;
  }
  return 500;
}

// A field's value; repeated lines of a list field form one comma-separated list (RFC 9110 §5.3).
std::optional<std::string> field(const bhttp::request_header<>& req, bhttp::field f) {
  auto [first, last] = req.equal_range(f);
  if (first == last) return std::nullopt;
  std::string value(first->value());
  for (auto it = std::next(first); it != last; ++it) value.append(", ").append(it->value());
  return value;
}

// Range is not a list: two Range lines make the request's range invalid, and an invalid one is ignored.
std::optional<std::string> single_field(const bhttp::request_header<>& req, bhttp::field f) {
  return req.count(f) == 1 ? field(req, f) : std::nullopt;
}

http::method method_of(bhttp::verb v) {
  if (v == bhttp::verb::get) return http::method::get;
  if (v == bhttp::verb::head) return http::method::head;
  return http::method::other;
}

// The stored type when it says something, else the extension's, else what the first bytes look like.
net::awaitable<storage::result<std::string>> choose_content_type(worker_context& ctx, const std::string& key,
                                                                 const storage::object_meta& meta) {
  if (!http::is_generic_type(meta.content_type)) co_return meta.content_type;
  if (auto by_ext = http::content_type_for_key(key); !by_ext.empty()) co_return std::string(by_ext);
  if (meta.size == 0) co_return std::string("application/octet-stream");
  const auto cache_key = key + '\n' + meta.etag;  // an ETag names one version: its type never changes
  if (auto it = ctx.sniffed_types.find(cache_key); it != ctx.sniffed_types.end()) co_return it->second;
  const auto n = std::min<std::uint64_t>(meta.size, storage::kSniffBytes);
  const http::byte_range head_range{0, n - 1};
  auto reader = co_await ctx.store.open(key, meta, head_range);
  if (!reader) co_return reader.err();
  std::string head(n, '\0');
  std::size_t got = 0;
  while (got < n) {
    const std::span<char> rest(head.data() + got, head.size() - got);
    auto r = co_await (*reader)->read_some(rest);
    if (!r) co_return r.err();
    if (*r == 0) break;
    got += *r;
  }
  auto type = storage::sniff_content_type({head.data(), got});
  if (ctx.sniffed_types.size() >= 4096) ctx.sniffed_types.clear();
  ctx.sniffed_types.emplace(cache_key, type);
  co_return type;
}

// Named builders: GCC 12 cannot take braced initializer lists as arguments inside co_await expressions.
http::header_list allow_get_head() { return {{"Allow", "GET, HEAD"}}; }
http::header_list no_store() { return {{"Cache-Control", "no-store"}}; }
http::header_list no_cache() { return {{"Cache-Control", "no-cache"}}; }

std::string make_boundary(worker_context& ctx) {
  char buf[40];
  std::snprintf(buf, sizeof buf, "mediagate-%016llx", static_cast<unsigned long long>(ctx.random()));
  return buf;
}

net::awaitable<request_outcome> send_storage_error(connection& c, worker_context& ctx, const std::string& key,
                                                   const storage::error& err, bool keep_alive, bool head) {
  const unsigned status = status_for(err.code);
  if (status >= 500) ctx.log.warn("{}: {}: {} ({})", c.peer, key, err.message, status);
  co_return co_await send_simple(c, ctx, status, kText, err.message + "\n", http::header_list(), keep_alive, head);
}

net::awaitable<request_outcome> serve_media(connection& c, worker_context& ctx, const bhttp::request_header<>& req,
                                            std::string_view encoded_key, bool keep_alive) {
  auto key = http::decode_media_key(encoded_key);
  if (!key && method_of(req.method()) != http::method::other)
    co_return co_await send_simple(c, ctx, 400, kText, "bad request: the media key is not a valid path\n", http::header_list(),
                                   keep_alive, req.method() == bhttp::verb::head);
  co_return co_await serve_media_key(c, ctx, req, key.value_or(std::string()), keep_alive);
}

}  // namespace

net::awaitable<request_outcome> serve_media_key(connection& c, worker_context& ctx, const bhttp::request_header<>& req,
                                                const std::string& key, bool keep_alive) {
  const auto m = method_of(req.method());
  const bool head = m == http::method::head;
  if (m == http::method::other) {
    keep_alive = false;  // the request may carry a body we will not read
    co_return co_await send_simple(c, ctx, 405, kText, "method not allowed: media supports GET and HEAD\n",
                                   allow_get_head(), keep_alive, false);
  }
  for (int attempt = 0;; ++attempt) {
    auto meta = co_await ctx.store.stat(key);
    if (!meta) co_return co_await send_storage_error(c, ctx, key, meta.err(), keep_alive, head);
    auto type = co_await choose_content_type(ctx, key, *meta);
    if (!type) co_return co_await send_storage_error(c, ctx, key, type.err(), keep_alive, head);

    http::request_view view;
    view.m = m;
    // Owned copies: the plan reads views into them.
    const auto range = single_field(req, bhttp::field::range), if_match = field(req, bhttp::field::if_match),
               if_none_match = field(req, bhttp::field::if_none_match),
               if_modified_since = single_field(req, bhttp::field::if_modified_since),
               if_unmodified_since = single_field(req, bhttp::field::if_unmodified_since),
               if_range = single_field(req, bhttp::field::if_range);
    auto view_of = [](const std::optional<std::string>& v) -> std::optional<std::string_view> {
      return v ? std::optional<std::string_view>(*v) : std::nullopt;
    };
    view.range = view_of(range);
    view.conditions = {view_of(if_match), view_of(if_none_match), view_of(if_modified_since),
                       view_of(if_unmodified_since), view_of(if_range)};
    // Only a request with several ranges can get a multipart answer; the others skip making a boundary.
    const auto boundary = range && range->find(',') != std::string::npos ? make_boundary(ctx) : std::string();
    http::plan_options options;
    options.cache_control = ctx.config.cache_control;
    options.limits.max_ranges = ctx.config.max_ranges;
    if (!boundary.empty()) options.boundary = boundary;
    auto plan = http::plan_response(view, {meta->size, meta->etag, meta->last_modified, *type}, options);
    plan.headers.emplace_back("X-Content-Type-Options", "nosniff");
    if (type->starts_with("text/html") || type->starts_with("image/svg"))
      plan.headers.emplace_back("Content-Security-Policy", "sandbox");  // stored documents never script our origin
    if (!ctx.config.cors_origin.empty()) {
      plan.headers.emplace_back("Access-Control-Allow-Origin", ctx.config.cors_origin);
      plan.headers.emplace_back("Access-Control-Expose-Headers",
                                "Content-Range, Content-Length, Accept-Ranges, ETag, Last-Modified");
    }

    // Open the first range before anything is written, so that a failure still gets an honest status.
    std::unique_ptr<storage::range_reader> first;
    for (const auto& segment : plan.body)
      if (segment.range) {
        auto opened = co_await ctx.store.open(key, *meta, *segment.range);
        if (!opened) {
          // Replaced between HEAD and GET: the backends forgot the old metadata, so plan once more.
          if (opened.err().code == storage::errc::changed && attempt == 0) break;
          co_return co_await send_storage_error(c, ctx, key, opened.err(), keep_alive, head);
        }
        first = std::move(*opened);
        break;
      }
    if (!first && attempt == 0 && std::any_of(plan.body.begin(), plan.body.end(), [](auto& s) { return s.range; }))
      continue;
  co_return co_await send_plan(c, ctx, plan, key, *meta, std::move(first), keep_alive);
  }
}

net::awaitable<request_outcome> route_request(connection& c, worker_context& ctx, request_parser& parser,
                                              bool keep_alive) {
  const auto& req = parser.get();
  const std::string_view target = req.target();
  const auto [path, query] = http::split_target(target);  // origin-form, or absolute-form reduced to it
  if (path.empty() || path.front() != '/')
    co_return co_await send_simple(c, ctx, 400, kText, "bad request: the target must be an absolute path\n",
                                   http::header_list(), false, false);
  const bool head = req.method() == bhttp::verb::head;
  const bool read_only = req.method() == bhttp::verb::get || head;

  if (path.starts_with("/media/")) co_return co_await serve_media(c, ctx, req, path.substr(7), keep_alive);
  if (ctx.api) {  // the library: JSON API, uploads, /v/{id} and the web page
    if (auto out = co_await route_api(c, ctx, parser, path, query, keep_alive)) co_return std::move(*out);
  }

  if (!read_only)
    co_return co_await send_simple(c, ctx, 405, kText, "method not allowed\n", allow_get_head(), false, false);
  if (path == "/healthz") co_return co_await send_simple(c, ctx, 200, kText, "ok\n", no_store(),
                                                         keep_alive, head);
  if (path == "/metrics") {
    auto text = ctx.stats.render();
    for (const auto& source : ctx.metrics_sources) text += source();
    co_return co_await send_simple(c, ctx, 200, "text/plain; version=0.0.4; charset=utf-8", std::move(text),
                                   no_store(), keep_alive, head);
  }
  if (path == "/") {
    auto listing = co_await ctx.store.list("");
    if (!listing) co_return co_await send_storage_error(c, ctx, "/", listing.err(), keep_alive, head);
    co_return co_await send_simple(c, ctx, 200, "text/html; charset=utf-8", render_index_page(*listing),
                                   no_cache(), keep_alive, head);
  }
  co_return co_await send_simple(c, ctx, 404, kText, "not found\n", http::header_list(), keep_alive, head);
}

}  // namespace mediagate::server
