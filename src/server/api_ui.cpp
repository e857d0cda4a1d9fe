// The web page: embedded files served with a strong ETag, revalidated on every load (no-cache), so that
// a new binary's page is picked up at once and an unchanged one costs a 304.
#include "http/preconditions.hpp"
#include "server/api.hpp"
#include "ui/assets.hpp"

namespace mediagate::server {

response serve_ui_asset(const request& req, std::string_view name) {
  const auto* a = ui::find_asset(name);
  if (!a) return text_response(404, "not found");
  http::header_list headers;
  headers.emplace_back("Cache-Control", "no-cache");
  if (name.ends_with(".html")) {
    // The page loads only its own files; media, posters and the API are on this origin too.
    headers.emplace_back("Content-Security-Policy",
                         "default-src 'self'; img-src 'self' data: blob:; media-src 'self' blob:; "
                         "style-src 'self'; script-src 'self'; frame-ancestors 'none'");
    headers.emplace_back("Referrer-Policy", "same-origin");
  }
  return conditional_bytes(req, a->etag, a->content_type, std::string(a->bytes), std::move(headers));
}

response conditional_bytes(const request& req, const std::string& etag, std::string_view content_type,
                           std::string bytes, http::header_list headers) {
  headers.emplace_back("ETag", etag);
  // Entity tags only: these resources carry no Last-Modified, so date validators have nothing to compare
  // with.
  http::conditional_headers conditions;
  const auto if_none_match = req.list_field("If-None-Match");
  const auto if_match = req.list_field("If-Match");
  if (if_none_match) conditions.if_none_match = *if_none_match;
  if (if_match) conditions.if_match = *if_match;
  const auto m = req.head() ? http::method::head : http::method::get;
  switch (http::evaluate_preconditions(m, conditions, {etag, 0})) {
    case http::precondition_outcome::not_modified: {
      response r;
      r.status = 304;
      r.headers = std::move(headers);
      return r;
    }
    case http::precondition_outcome::precondition_failed:
      return text_response(412, "precondition failed", std::move(headers));
    case http::precondition_outcome::proceed:
      break;
  }
  return make_response(200, content_type, std::move(bytes), std::move(headers));
}

}  // namespace mediagate::server
