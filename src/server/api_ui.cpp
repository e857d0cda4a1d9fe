// The web page: embedded files served with a strong ETag, revalidated on every load (no-cache), so that
// a new binary's page is picked up at once and an unchanged one costs a 304.
#include <boost/beast/http/field.hpp>

#include "http/entity_tag.hpp"
#include "http/response_head.hpp"
#include "server/api.hpp"
#include "ui/assets.hpp"

namespace mediagate::server {
namespace {

// If-None-Match (RFC 9110 §13.1.2): "*" or any listed tag that matches weakly.
bool not_modified(const beast::http::request_header<>& req, const std::string& etag) {
  auto it = req.find(beast::http::field::if_none_match);
  if (it == req.end()) return false;
  const std::string_view value = it->value();
  if (value == "*") return true;
  auto ours = http::parse_entity_tag(etag);
  auto tags = http::parse_entity_tags(value);
  if (!ours || !tags) return false;
  for (const auto& t : *tags)
    if (http::weak_match(t, *ours)) return true;
  return false;
}

}  // namespace

net::awaitable<request_outcome> serve_ui_asset(connection& c, worker_context& ctx,
                                               const beast::http::request_header<>& req,
                                               std::string_view name, bool keep_alive) {
  const bool head = req.method() == beast::http::verb::head;
  const auto* a = ui::find_asset(name);
  if (!a)
    co_return co_await send_simple(c, ctx, 404, "text/plain; charset=utf-8", "not found\n",
                                   http::header_list(), keep_alive, head);
  http::header_list headers;
  headers.emplace_back("ETag", a->etag);
  headers.emplace_back("Cache-Control", "no-cache");
  if (name.ends_with(".html")) {
    // The page loads only its own files; media, posters and the API are on this origin too.
    headers.emplace_back("Content-Security-Policy",
                         "default-src 'self'; img-src 'self' data: blob:; media-src 'self' blob:; "
                         "style-src 'self'; script-src 'self'; frame-ancestors 'none'");
    headers.emplace_back("Referrer-Policy", "same-origin");
  }
  if (not_modified(req, a->etag)) {
    auto message = http::serialize_head(304, headers, http_date_now(), !keep_alive);
    const bool ok = co_await write_all(c, ctx.config, message);
    co_return request_outcome{304, 0, !keep_alive || !ok};
  }
  co_return co_await send_simple(c, ctx, 200, a->content_type, std::string(a->bytes), std::move(headers),
                                 keep_alive, head);
}

}  // namespace mediagate::server
