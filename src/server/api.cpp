// The JSON API and /v/{id}: listing, reading, renaming and deleting catalog items.
#include "server/api.hpp"

#include <openssl/crypto.h>
#include <spdlog/spdlog.h>

#include <boost/json/parse.hpp>
#include <boost/json/serialize.hpp>
#include <ctime>
#include <variant>

#include "catalog/catalog.hpp"
#include "catalog/library.hpp"
#include "catalog/scan.hpp"
#include "catalog/sql.hpp"
#include "catalog/thumbnails.hpp"
#include "common/crypto.hpp"
#include "http/media_key.hpp"
#include "http/signed_link.hpp"
#include "http/token.hpp"
#include "server/access.hpp"
#include "server/api_json.hpp"
#include "server/hls.hpp"
#include "server/media.hpp"
#include "storage/storage.hpp"

namespace mediagate::server {
namespace {

namespace net = boost::asio;
namespace json = boost::json;

constexpr std::size_t kMaxPerPage = 200;
constexpr std::size_t kMaxTitleBytes = 300;
constexpr std::size_t kMaxJsonBody = 64 * 1024;

bool is_item_id(std::string_view s) {
  if (s.empty() || s.size() > 32) return false;
  for (char c : s)
    if (!std::isalnum(static_cast<unsigned char>(c))) return false;
  return true;
}

response method_not_allowed(const request& req, std::string_view methods) {
  auto r = json_error(405, "method not allowed", {{"Allow", std::string(methods)}});
  r.close = req.has_body();  // a body we will not read
  return r;
}

// Runs a catalog operation; the answer to give when it failed, or nullopt.
template <class F>
std::optional<response> catalog_call(const request& req, services& svc, F&& f) {
  try {
    f();
    return std::nullopt;
  } catch (const std::exception& e) {
    return catalog_failure(req, svc, e);
  }
}

// The listing's query (page, per_page, type, q, missing); an error message when a parameter is bad.
std::variant<catalog::list_query, std::string> parse_list_query(std::string_view query) {
  catalog::list_query q;
  if (auto v = http::query_param(query, "page")) {
    auto n = http::parse_decimal(*v);
    if (!n || *n < 1 || *n > 1'000'000) return std::string("page must be a whole number from 1");
    q.page = static_cast<std::size_t>(*n);
  }
  if (auto v = http::query_param(query, "per_page")) {
    auto n = http::parse_decimal(*v);
    if (!n || *n < 1 || *n > kMaxPerPage) return std::string("per_page must be a whole number from 1 to 200");
    q.per_page = static_cast<std::size_t>(*n);
  }
  if (auto v = http::query_param(query, "type"); v && !v->empty()) {
    if (*v != "video" && *v != "audio" && *v != "image")
      return std::string("type must be video, audio or image");
    q.kind = *v;
  }
  if (auto v = http::query_param(query, "q")) {
    if (v->size() > kMaxTitleBytes) return std::string("q is too long");
    q.title_contains = *v;
  }
  if (auto v = http::query_param(query, "missing")) q.include_missing = *v == "1" || *v == "true";
  return q;
}

response list_items(const request& req, services& svc) {
  auto parsed = parse_list_query(req.query);
  if (auto* problem = std::get_if<std::string>(&parsed)) return json_error(400, *problem);
  auto& q = std::get<catalog::list_query>(parsed);
  // Private items are listed to the admin only.
  if (!is_admin(*svc.api, req))
    q.visible = [&svc](const catalog::media_item& item) { return !needs_link(svc, item.key); };
  catalog::list_page page;
  if (auto failed = catalog_call(req, svc, [&] { page = svc.api->items->list(q); }))
    return std::move(*failed);
  json::array items;
  for (const auto& item : page.items) items.push_back(item_json(item));
  json::object body;
  body["items"] = std::move(items);
  body["page"] = q.page;
  body["per_page"] = q.per_page;
  body["total"] = page.total;
  body["pages"] = (page.total + q.per_page - 1) / q.per_page;
  return json_response(200, api_json_text(body));
}

response info(services& svc) {
  json::object body;
  body["uploads"] = !svc.api->admin_token.empty();
  body["max_upload_bytes"] = svc.api->max_upload_bytes;
  // What kind of storage, never where: server paths and bucket names are not the client's business.
  body["storage"] = svc.store.describe().find("s3://") != std::string::npos ? "s3" : "local";
  return json_response(200, api_json_text(body));
}

// What a PATCH body changes: the title, the visibility, or both.
struct item_change {
  std::optional<std::string> title, visibility;
};

std::variant<item_change, response> change_from_patch(std::string_view body) {
  boost::system::error_code ec;
  auto doc = json::parse(body, ec);
  if (ec || !doc.is_object()) return json_error(400, "the body must be a JSON object");
  item_change change;
  for (const auto& [name, value] : doc.as_object()) {
    if (name != "title" && name != "visibility")
      return json_error(400, "unknown field '" + std::string(name) + "': title and visibility can change");
    if (!value.is_string()) return json_error(400, std::string(name) + " must be a string");
    const auto text = std::string(http::trim_ows(std::string_view(value.as_string())));
    if (name == "title")
      change.title = text;
    else
      change.visibility = text;
  }
  if (!change.title && !change.visibility)
    return json_error(400, "nothing to change: send {\"title\": \"...\"} or {\"visibility\": \"private\"}");
  if (change.title && (change.title->empty() || change.title->size() > kMaxTitleBytes))
    return json_error(400, "title must have 1 to 300 bytes");
  if (change.visibility && !catalog::is_visibility(*change.visibility))
    return json_error(400, "visibility must be public, private or inherit");
  return change;
}

net::awaitable<response> patch_item(const request& req, services& svc, std::string id) {
  auto body = co_await read_small_body(req, kMaxJsonBody);
  if (!body) co_return json_error(body.err().code == errc::too_large ? 413 : 400, body.err().message);
  auto parsed = change_from_patch(*body);
  if (auto* refused = std::get_if<response>(&parsed)) co_return std::move(*refused);
  const auto& change = std::get<item_change>(parsed);
  std::optional<catalog::media_item> item;
  if (auto failed = catalog_call(req, svc, [&] {
        bool found = true;
        if (change.title) found = svc.api->items->set_title(id, *change.title);
        if (found && change.visibility) found = svc.api->items->set_visibility(id, *change.visibility);
        if (found) item = svc.api->items->get(id);
      }))
    co_return std::move(*failed);
  if (!item) co_return json_error(404, "no item with id " + id);
  if (change.visibility) svc.api->set_visibility(item->key, item->visibility);
  auto r = json_response(200, api_json_text(item_json(*item)));
  r.close = true;  // as before the redesign
  co_return r;
}

// POST /api/media/{id}/links {"ttl": seconds, "ip": "CIDR"}: a signed link to the item (admin).
net::awaitable<response> make_link(const request& req, services& svc, const std::string& id) {
  const auto& keys = svc.config.access.keys;
  if (keys.empty())
    co_return json_error(409, "links need --signing-keys: the server has no key to sign with");
  auto body = co_await read_small_body(req, kMaxJsonBody);
  if (!body) co_return json_error(body.err().code == errc::too_large ? 413 : 400, body.err().message);
  std::int64_t ttl = 3600;
  std::string ip;
  if (!body->empty()) {
    boost::system::error_code ec;
    auto doc = json::parse(*body, ec);
    if (ec || !doc.is_object()) co_return json_error(400, "the body must be a JSON object");
    for (const auto& [name, value] : doc.as_object()) {
      if (name == "ttl" && value.is_int64() && value.as_int64() >= 1 && value.as_int64() <= 366 * 86400)
        ttl = value.as_int64();
      else if (name == "ip" && value.is_string() && !value.as_string().empty())
        ip = std::string(value.as_string());
      else
        co_return json_error(400, "fields: ttl (1 second to 366 days) and ip (a CIDR)");
    }
  }
  std::optional<catalog::media_item> item;
  if (auto failed = catalog_call(req, svc, [&] { item = svc.api->items->get(id); }))
    co_return std::move(*failed);
  if (!item) co_return json_error(404, "no item with id " + id);
  http::link_grant grant{item->key, static_cast<std::int64_t>(std::time(nullptr)) + ttl, false, ip};
  const auto query = http::sign_link(grant, keys.front());
  const auto host = req["Host"];
  json::object out;
  out["url"] =
      (host.empty() ? std::string() : "http://" + std::string(host)) + "/v/" + item->id + "?" + query;
  out["path"] = "/v/" + item->id + "?" + query;
  out["media_path"] = "/media/" + http::encode_key_for_url(item->key) + "?" + query;
  out["expires"] = iso8601_utc(grant.expires);
  co_return json_response(200, api_json_text(out));
}

net::awaitable<response> delete_item(const request& req, services& svc, std::string id) {
  std::optional<catalog::media_item> item;
  if (auto failed = catalog_call(req, svc, [&] { item = svc.api->items->get(id); }))
    co_return std::move(*failed);
  if (!item) co_return json_error(404, "no item with id " + id);
  // The object first: if storage refuses, the row stays and the client can try again.
  auto removed = co_await svc.store.remove(item->key);
  if (!removed && removed.err().code != errc::not_found) {
    svc.log.warn("{}: cannot delete {}: {}", req.peer, item->key, removed.err().message);
    co_return json_error(502, "storage refused to delete the object: " + removed.err().message);
  }
  if (!item->poster_key.empty()) {
    auto poster = co_await svc.store.remove(item->poster_key);
    if (!poster)
      svc.log.warn("{}: cannot delete poster {}: {}", req.peer, item->poster_key, poster.err().message);
  }
  if (item->kind() == "video") co_await catalog::remove_thumbnails(svc.store, item->id);
  if (auto failed = catalog_call(req, svc, [&] { svc.api->items->remove(id); })) co_return std::move(*failed);
  svc.api->set_visibility(item->key, "inherit");
  svc.log.info("{}: deleted {} ({})", req.peer, item->key, id);
  json::object body;
  body["deleted"] = id;
  co_return json_response(200, api_json_text(body));
}

response get_item(const request& req, services& svc, const std::string& id) {
  std::optional<catalog::media_item> item;
  if (auto failed = catalog_call(req, svc, [&] { item = svc.api->items->get(id); }))
    return std::move(*failed);
  if (!item || (needs_link(svc, item->key) && !is_admin(*svc.api, req)))
    return json_error(404, "no item with id " + id);
  return json_response(200, api_json_text(item_json(*item)));
}

// PUT /api/media/<key>: the rest of the path is a storage key.
net::awaitable<response> put_media(const request& req, services& svc, std::string_view rest) {
  if (auto denied = check_admin(*svc.api, req)) co_return std::move(*denied);
  auto key = http::decode_media_key(rest);
  if (!key || catalog::has_hidden_component(*key))  // hidden components are reserved (posters, temporaries)
    co_return json_error(
        400, "the key is not a valid storage key (no '.', '..', hidden or empty path components)");
  co_return co_await handle_put_upload(req, svc, std::move(*key));
}

net::awaitable<response> handle_media_api(const request& req, services& svc, std::string_view rest) {
  if (rest.empty()) {  // /api/media
    if (req.read_only()) co_return list_items(req, svc);
    if (req.verb == method::post) {
      if (auto denied = check_admin(*svc.api, req)) co_return std::move(*denied);
      co_return co_await handle_form_upload(req, svc);
    }
    co_return method_not_allowed(req, "GET, HEAD, POST");
  }
  if (req.verb == method::put) co_return co_await put_media(req, svc, rest);
  if (rest.ends_with("/links")) {
    const std::string id(rest.substr(0, rest.size() - 6));
    if (req.verb != method::post) co_return method_not_allowed(req, "POST");
    if (auto denied = check_admin(*svc.api, req)) co_return std::move(*denied);
    if (!is_item_id(id)) co_return json_error(404, "no item with id " + id);
    co_return co_await make_link(req, svc, id);
  }
  const std::string id(rest);
  if (!is_item_id(id)) co_return json_error(404, "no item with id " + id);
  if (req.read_only()) co_return get_item(req, svc, id);
  if (req.verb == method::patch || req.verb == method::delete_) {
    if (auto denied = check_admin(*svc.api, req)) co_return std::move(*denied);
    if (req.verb == method::patch) co_return co_await patch_item(req, svc, id);
    co_return co_await delete_item(req, svc, id);
  }
  co_return method_not_allowed(req, "GET, HEAD, PUT, PATCH, DELETE");
}

// /v/{id}/thumbs.vtt: the WebVTT track of the item's seek thumbnails, made from its probed duration when the
// probe stored the sprites (thumbnails.hpp); its image URLs carry the request's query (a private item's
// link).
net::awaitable<response> serve_thumbnails_vtt(const request& req, services& svc,
                                              const catalog::media_item& item) {
  const auto plan = catalog::plan_thumbnails(item.duration);
  if (!plan || item.kind() != "video") co_return text_response(404, "this item has no thumbnails");
  auto first = co_await svc.store.stat(catalog::thumbnail_key(item.id, 0));
  if (!first) {
    if (first.err().code == errc::not_found) co_return text_response(404, "this item has no thumbnails");
    co_return storage_error_response(req, svc, "thumbnails", first.err());
  }
  const auto query = req.query.empty() ? std::string() : "?" + std::string(req.query);
  auto vtt = catalog::thumbnails_vtt(*plan, "", query);
  const auto etag = "\"" + sha256_hex(item.etag + "\n" + first->etag + "\n" + vtt).substr(0, 32) + "\"";
  http::header_list headers{{"Cache-Control", "no-cache"}};
  co_return conditional_bytes(req, etag, "text/vtt; charset=utf-8", std::move(vtt), std::move(headers));
}

// "thumbs-N.jpg" -> N, when N is a sprite a plan can have.
std::optional<std::size_t> thumbnail_row(std::string_view name) {
  if (!name.starts_with("thumbs-") || !name.ends_with(".jpg")) return std::nullopt;
  name = name.substr(7, name.size() - 11);
  if (name.size() != 1 || name[0] < '0' || name[0] > '9') return std::nullopt;
  const std::size_t row = name[0] - '0';
  if (row * catalog::thumbnail_plan::per_row >= catalog::kMaxThumbnails) return std::nullopt;
  return row;
}

// /v/{id} streams the item's object, /v/{id}/poster its poster, /v/{id}/thumbs.vtt and thumbs-N.jpg its seek
// thumbnails: the same code and rules as /media/.
net::awaitable<response> serve_view(const request& req, services& svc, std::string_view rest) {
  // /v/{id}/hls/... and /v/{id}/dash/...: the item's object repackaged (server/hls.hpp).
  std::string_view hls_resource;
  bool hls = false;
  if (const auto slash = rest.find('/'); slash != std::string_view::npos) {
    const auto tail = rest.substr(slash);
    if (tail.starts_with("/hls/") || tail.starts_with("/dash/")) {
      hls = true;
      hls_resource = tail.substr(tail.find('/', 1) + 1);
      rest = rest.substr(0, slash);
    }
  }
  bool poster = false, vtt = false;
  std::optional<std::size_t> sprite;
  if (rest.ends_with("/poster")) {
    poster = true;
    rest.remove_suffix(7);
  } else if (rest.ends_with("/thumbs.vtt")) {
    vtt = true;
    rest.remove_suffix(11);
  } else if (const auto slash = rest.rfind('/'); slash != std::string_view::npos) {
    sprite = thumbnail_row(rest.substr(slash + 1));
    if (!sprite) co_return text_response(404, "no such resource of an item");
    rest = rest.substr(0, slash);
  }
  const std::string id(rest);
  std::optional<catalog::media_item> item;
  if (is_item_id(id)) {
    if (auto failed = catalog_call(req, svc, [&] { item = svc.api->items->get(id); }))
      co_return std::move(*failed);
  }
  if (!item) co_return text_response(404, "no item with this id");
  // A private item's object and poster open with a link signed for the item's key (checked first: without
  // one, nothing about the item is told).
  const bool link_needed = needs_link(svc, item->key);
  if (link_needed) {
    if (auto denied = check_link(req, svc, item->key)) co_return std::move(*denied);
  }
  if (poster && item->poster_key.empty()) co_return text_response(404, "this item has no poster");
  if (hls) co_return co_await serve_hls_key(req, svc, item->key, hls_resource, link_needed);
  if (vtt) co_return co_await serve_thumbnails_vtt(req, svc, *item);
  auto key = item->key;
  if (poster) key = item->poster_key;
  if (sprite) key = catalog::thumbnail_key(item->id, *sprite);
  co_return co_await serve_media_key(req, svc, std::move(key), link_needed);
}

response text_method_not_allowed(const request& req) {
  auto r = text_response(405, "method not allowed", {{"Allow", "GET, HEAD"}});
  r.close = req.has_body();
  return r;
}

}  // namespace

bool is_admin(const api_services& api, const request& req) { return !check_admin(api, req); }

response catalog_failure(const request& req, services& svc, const std::exception& e) {
  svc.log.error("{}: catalog failed: {}", req.peer, e.what());
  // PostgreSQL down or unreachable: the client may try again, and the reason (no password in it) says what an
  // operator must look at. Other failures are not the client's business: the reason goes to the log only.
  if (dynamic_cast<const catalog::catalog_unavailable*>(&e))
    return json_error(503, "the catalog is unavailable, try again later: " + std::string(e.what()),
                      {{"Retry-After", "5"}});
  return json_error(500, "the catalog failed: see the server log");
}

void api_services::set_visibility(const std::string& key, const std::string& visibility) {
  std::lock_guard lock(visibility_mutex);
  if (visibility == "inherit")
    visibility_by_key.erase(key);
  else
    visibility_by_key[key] = visibility;
}

void api_services::replace_visibilities(const std::vector<std::pair<std::string, std::string>>& overrides) {
  std::unordered_map<std::string, std::string> fresh;
  for (const auto& [key, visibility] : overrides)
    if (visibility != "inherit") fresh[key] = visibility;
  std::lock_guard lock(visibility_mutex);
  visibility_by_key.swap(fresh);
}

std::string api_services::visibility_of(const std::string& key) const {
  std::lock_guard lock(visibility_mutex);
  if (visibility_by_key.empty()) return "inherit";
  auto it = visibility_by_key.find(key);
  return it == visibility_by_key.end() ? "inherit" : it->second;
}

std::optional<response> check_admin(const api_services& api, const request& req) {
  if (api.admin_token.empty())
    return json_error(
        403,
        "writes are disabled: start the server with --admin-token or MEDIAGATE_ADMIN_TOKEN to allow them");
  const auto value = req.single_field("Authorization");
  if (!value || value->size() < 7 || !http::iequals(value->substr(0, 7), "Bearer "))
    return json_error(401, "this needs the admin token: Authorization: Bearer TOKEN");
  const auto given = http::trim_ows(value->substr(7));
  // Constant time, so that the token cannot be guessed byte by byte from response times.
  if (given.size() != api.admin_token.size() ||
      CRYPTO_memcmp(given.data(), api.admin_token.data(), given.size()) != 0)
    return json_error(401, "the admin token is wrong");
  return std::nullopt;
}

net::awaitable<std::optional<response>> route_api(const request& req, services& svc) {
  const auto path = req.path;
  if (path == "/" || path.starts_with("/ui/")) {
    if (!req.read_only()) co_return text_method_not_allowed(req);
    co_return serve_ui_asset(req, path == "/" ? std::string_view("index.html") : path.substr(4));
  }
  if (path.starts_with("/v/")) {
    if (!req.read_only()) co_return text_method_not_allowed(req);
    co_return co_await serve_view(req, svc, path.substr(3));
  }
  if (path == "/api/info") {
    if (!req.read_only()) co_return method_not_allowed(req, "GET, HEAD");
    co_return info(svc);
  }
  if (path == "/api/media" || path.starts_with("/api/media/")) {
    // Computed before co_await: GCC 12 evaluates both arms of a ?: inside a co_await's arguments.
    std::string_view rest;
    if (path.size() > 11) rest = path.substr(11);
    co_return co_await handle_media_api(req, svc, rest);
  }
  if (path.starts_with("/api/")) {
    auto r = json_error(404, "no such API endpoint");
    r.close = req.has_body();
    co_return r;
  }
  co_return std::nullopt;
}

}  // namespace mediagate::server
