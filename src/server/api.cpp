// The JSON API and /v/{id}: listing, reading, renaming and deleting catalog items.
#include "server/api.hpp"

#include <openssl/crypto.h>
#include <spdlog/spdlog.h>

#include <boost/json/parse.hpp>
#include <boost/json/serialize.hpp>

#include "catalog/catalog.hpp"
#include "catalog/library.hpp"
#include "catalog/scan.hpp"
#include "http/media_key.hpp"
#include "http/token.hpp"
#include "server/api_json.hpp"

namespace mediagate::server {
namespace {

namespace bhttp = beast::http;
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

http::header_list allow(std::string_view methods) { return {{"Allow", std::string(methods)}}; }

// Runs a catalog operation; its failure's message, or nullopt. (A coroutine cannot co_await in a handler.)
template <class F>
std::optional<std::string> catalog_call(F&& f) {
  try {
    f();
    return std::nullopt;
  } catch (const std::exception& e) {
    return std::string(e.what());
  }
}

// Catalog failures are not the client's fault: a 500 with the reason in the log, not in the answer.
net::awaitable<request_outcome> catalog_failure(connection& c, worker_context& ctx, std::string what,
                                                bool keep_alive) {
  ctx.log.error("{}: catalog failed: {}", c.peer, what);
  co_return co_await send_json_error(c, ctx, 500, "the catalog failed: see the server log", keep_alive);
}

net::awaitable<request_outcome> list_items(connection& c, worker_context& ctx, std::string_view query,
                                           bool keep_alive, bool head) {
  catalog::list_query q;
  std::string problem;
  if (auto v = http::query_param(query, "page")) {
    auto n = http::parse_decimal(*v);
    if (!n || *n < 1 || *n > 1'000'000)
      problem = "page must be a whole number from 1";
    else
      q.page = static_cast<std::size_t>(*n);
  }
  if (auto v = http::query_param(query, "per_page")) {
    auto n = http::parse_decimal(*v);
    if (!n || *n < 1 || *n > kMaxPerPage)
      problem = "per_page must be a whole number from 1 to 200";
    else
      q.per_page = static_cast<std::size_t>(*n);
  }
  if (auto v = http::query_param(query, "type"); v && !v->empty()) {
    if (*v != "video" && *v != "audio" && *v != "image")
      problem = "type must be video, audio or image";
    else
      q.kind = *v;
  }
  if (auto v = http::query_param(query, "q")) {
    if (v->size() > kMaxTitleBytes)
      problem = "q is too long";
    else
      q.title_contains = *v;
  }
  if (auto v = http::query_param(query, "missing")) q.include_missing = *v == "1" || *v == "true";
  if (!problem.empty()) co_return co_await send_json_error(c, ctx, 400, problem, keep_alive, head);
  catalog::list_page page;
  if (auto failed = catalog_call([&] { page = ctx.api->items->list(q); }))
    co_return co_await catalog_failure(c, ctx, *failed, keep_alive);
  json::array items;
  for (const auto& item : page.items) items.push_back(item_json(item));
  json::object body;
  body["items"] = std::move(items);
  body["page"] = q.page;
  body["per_page"] = q.per_page;
  body["total"] = page.total;
  body["pages"] = (page.total + q.per_page - 1) / q.per_page;
  co_return co_await send_json(c, ctx, 200, json::serialize(body), keep_alive, head);
}

net::awaitable<request_outcome> send_info(connection& c, worker_context& ctx, bool keep_alive, bool head) {
  json::object body;
  body["uploads"] = !ctx.api->admin_token.empty();
  body["max_upload_bytes"] = ctx.api->max_upload_bytes;
  body["storage"] = ctx.store.describe();
  co_return co_await send_json(c, ctx, 200, json::serialize(body), keep_alive, head);
}

net::awaitable<request_outcome> patch_item(connection& c, worker_context& ctx, request_parser& parser,
                                           std::string id) {
  unsigned status = 0;
  auto body = co_await read_small_body(c, ctx, parser, kMaxJsonBody, status);
  if (!body) {
    std::string message = "the request body did not arrive";
    if (status == 413) message = "the JSON body is too large";
    co_return co_await send_json_error(c, ctx, status, message, false);
  }
  boost::system::error_code ec;
  auto doc = json::parse(*body, ec);
  if (ec || !doc.is_object())
    co_return co_await send_json_error(c, ctx, 400, "the body must be a JSON object", false);
  std::optional<std::string> title;
  for (const auto& [name, value] : doc.as_object()) {
    if (name != "title")
      co_return co_await send_json_error(
          c, ctx, 400, "unknown field '" + std::string(name) + "': only title can change", false);
    if (!value.is_string()) co_return co_await send_json_error(c, ctx, 400, "title must be a string", false);
    title = std::string(http::trim_ows(std::string_view(value.as_string())));
  }
  if (!title)
    co_return co_await send_json_error(c, ctx, 400, "nothing to change: send {\"title\": \"...\"}", false);
  if (title->empty() || title->size() > kMaxTitleBytes)
    co_return co_await send_json_error(c, ctx, 400, "title must have 1 to 300 bytes", false);
  std::optional<catalog::media_item> item;
  if (auto failed = catalog_call([&] {
        if (ctx.api->items->set_title(id, *title)) item = ctx.api->items->get(id);
      }))
    co_return co_await catalog_failure(c, ctx, *failed, false);
  if (!item) co_return co_await send_json_error(c, ctx, 404, "no item with id " + id, false);
  co_return co_await send_json(c, ctx, 200, json::serialize(item_json(*item)), false);
}

net::awaitable<request_outcome> delete_item(connection& c, worker_context& ctx, std::string id,
                                            bool keep_alive) {
  std::optional<catalog::media_item> item;
  if (auto failed = catalog_call([&] { item = ctx.api->items->get(id); }))
    co_return co_await catalog_failure(c, ctx, *failed, keep_alive);
  if (!item) co_return co_await send_json_error(c, ctx, 404, "no item with id " + id, keep_alive);
  // The object first: if storage refuses, the row stays and the client can try again.
  auto removed = co_await ctx.store.remove(item->key);
  if (!removed && removed.err().code != storage::errc::not_found) {
    ctx.log.warn("{}: cannot delete {}: {}", c.peer, item->key, removed.err().message);
    co_return co_await send_json_error(
        c, ctx, 502, "storage refused to delete the object: " + removed.err().message, keep_alive);
  }
  if (!item->poster_key.empty()) {
    auto poster = co_await ctx.store.remove(item->poster_key);
    if (!poster)
      ctx.log.warn("{}: cannot delete poster {}: {}", c.peer, item->poster_key, poster.err().message);
  }
  if (auto failed = catalog_call([&] { ctx.api->items->remove(id); }))
    co_return co_await catalog_failure(c, ctx, *failed, keep_alive);
  ctx.log.info("{}: deleted {} ({})", c.peer, item->key, id);
  json::object body;
  body["deleted"] = id;
  co_return co_await send_json(c, ctx, 200, json::serialize(body), keep_alive);
}

net::awaitable<request_outcome> handle_media_api(connection& c, worker_context& ctx, request_parser& parser,
                                                 std::string_view rest, std::string_view query,
                                                 bool keep_alive) {
  const auto& req = parser.get();
  const auto method = req.method();
  const bool head = method == bhttp::verb::head;
  if (rest.empty()) {  // /api/media
    if (method == bhttp::verb::get || head) co_return co_await list_items(c, ctx, query, keep_alive, head);
    if (method == bhttp::verb::post) {
      if (auto denied = check_admin(*ctx.api, req))
        co_return co_await send_json_error(c, ctx, denied->first, denied->second, false);
      co_return co_await handle_form_upload(c, ctx, parser);
    }
    co_return co_await send_simple(c, ctx, 405, "application/json", R"({"error":"method not allowed"})",
                                   allow("GET, HEAD, POST"), false, false);
  }
  if (method == bhttp::verb::put) {  // /api/media/<key>: the rest is a storage key
    if (auto denied = check_admin(*ctx.api, req))
      co_return co_await send_json_error(c, ctx, denied->first, denied->second, false);
    auto key = http::decode_media_key(rest);
    if (!key || catalog::has_hidden_component(*key))  // hidden components are reserved (posters, temporaries)
      co_return co_await send_json_error(c, ctx, 400,
                                         "the key is not a valid storage key (no '.', '..', hidden or "
                                         "empty path components)",
                                         false);
    co_return co_await handle_put_upload(c, ctx, parser, std::move(*key));
  }
  const std::string id(rest);
  if (!is_item_id(id))
    co_return co_await send_json_error(c, ctx, 404, "no item with id " + id, keep_alive, head);
  if (method == bhttp::verb::get || head) {
    std::optional<catalog::media_item> item;
    if (auto failed = catalog_call([&] { item = ctx.api->items->get(id); }))
      co_return co_await catalog_failure(c, ctx, *failed, keep_alive);
    if (!item) co_return co_await send_json_error(c, ctx, 404, "no item with id " + id, keep_alive, head);
    co_return co_await send_json(c, ctx, 200, json::serialize(item_json(*item)), keep_alive, head);
  }
  if (method == bhttp::verb::patch || method == bhttp::verb::delete_) {
    if (auto denied = check_admin(*ctx.api, req))
      co_return co_await send_json_error(c, ctx, denied->first, denied->second, false);
    if (method == bhttp::verb::patch) co_return co_await patch_item(c, ctx, parser, id);
    co_return co_await delete_item(c, ctx, id, keep_alive);
  }
  co_return co_await send_simple(c, ctx, 405, "application/json", R"({"error":"method not allowed"})",
                                 allow("GET, HEAD, PUT, PATCH, DELETE"), false, false);
}

// /v/{id} streams the item's object, /v/{id}/poster its poster: the same code and rules as /media/.
net::awaitable<request_outcome> serve_view(connection& c, worker_context& ctx,
                                           const bhttp::request_header<>& req, std::string_view rest,
                                           bool keep_alive) {
  const bool head = req.method() == bhttp::verb::head;
  bool poster = false;
  if (rest.ends_with("/poster")) {
    poster = true;
    rest.remove_suffix(7);
  }
  const std::string id(rest);
  std::optional<catalog::media_item> item;
  if (is_item_id(id)) {
    if (auto failed = catalog_call([&] { item = ctx.api->items->get(id); }))
      co_return co_await catalog_failure(c, ctx, *failed, keep_alive);
  }
  if (!item || (poster && item->poster_key.empty())) {
    std::string message = "no item with this id\n";
    if (item) message = "this item has no poster\n";
    co_return co_await send_simple(c, ctx, 404, "text/plain; charset=utf-8", std::move(message),
                                   http::header_list(), keep_alive, head);
  }
  const std::string key = poster ? item->poster_key : item->key;
  co_return co_await serve_media_key(c, ctx, req, key, keep_alive);
}

}  // namespace

net::awaitable<request_outcome> send_json(connection& c, worker_context& ctx, unsigned status,
                                          std::string body, bool keep_alive, bool head,
                                          http::header_list extra) {
  extra.emplace_back("Cache-Control", "no-store");
  body += '\n';
  co_return co_await send_simple(c, ctx, status, "application/json", std::move(body), std::move(extra),
                                 keep_alive, head);
}

net::awaitable<request_outcome> send_json_error(connection& c, worker_context& ctx, unsigned status,
                                                std::string_view message, bool keep_alive, bool head) {
  json::object o;
  o["error"] = message;
  http::header_list extra;
  if (status == 401) extra.emplace_back("WWW-Authenticate", "Bearer realm=\"mediagate\"");
  co_return co_await send_json(c, ctx, status, json::serialize(o), keep_alive, head, std::move(extra));
}

std::optional<std::pair<unsigned, std::string>> check_admin(const api_services& api,
                                                            const bhttp::request_header<>& req) {
  if (api.admin_token.empty())
    return std::pair<unsigned, std::string>{
        403,
        "writes are disabled: start the server with --admin-token or MEDIAGATE_ADMIN_TOKEN to allow them"};
  auto it = req.find(bhttp::field::authorization);
  if (it == req.end())
    return std::pair<unsigned, std::string>{401, "this needs the admin token: Authorization: Bearer TOKEN"};
  const std::string_view value = it->value();
  if (value.size() < 7 || !http::iequals(value.substr(0, 7), "Bearer "))
    return std::pair<unsigned, std::string>{401, "this needs the admin token: Authorization: Bearer TOKEN"};
  const auto given = http::trim_ows(value.substr(7));
  // Constant time, so that the token cannot be guessed byte by byte from response times.
  if (given.size() != api.admin_token.size() ||
      CRYPTO_memcmp(given.data(), api.admin_token.data(), given.size()) != 0)
    return std::pair<unsigned, std::string>{401, "the admin token is wrong"};
  return std::nullopt;
}

net::awaitable<std::optional<request_outcome>> route_api(connection& c, worker_context& ctx,
                                                         request_parser& parser, std::string_view path,
                                                         std::string_view query, bool keep_alive) {
  const auto& req = parser.get();
  const auto method = req.method();
  const bool read_only = method == bhttp::verb::get || method == bhttp::verb::head;
  if (path == "/" || path.starts_with("/ui/")) {
    if (!read_only)
      co_return co_await send_simple(c, ctx, 405, "text/plain; charset=utf-8", "method not allowed\n",
                                     allow("GET, HEAD"), false, false);
    std::string_view name = "index.html";
    if (path != "/") name = path.substr(4);
    co_return co_await serve_ui_asset(c, ctx, req, name, keep_alive);
  }
  if (path.starts_with("/v/")) {
    if (!read_only)
      co_return co_await send_simple(c, ctx, 405, "text/plain; charset=utf-8", "method not allowed\n",
                                     allow("GET, HEAD"), false, false);
    co_return co_await serve_view(c, ctx, req, path.substr(3), keep_alive);
  }
  if (path == "/api/info") {
    if (!read_only)
      co_return co_await send_simple(c, ctx, 405, "application/json", R"({"error":"method not allowed"})",
                                     allow("GET, HEAD"), false, false);
    co_return co_await send_info(c, ctx, keep_alive, method == bhttp::verb::head);
  }
  if (path == "/api/media" || path.starts_with("/api/media/")) {
    const auto rest = path.size() > 11 ? path.substr(11) : std::string_view();
    co_return co_await handle_media_api(c, ctx, parser, rest, query, keep_alive);
  }
  if (path.starts_with("/api/"))
    co_return co_await send_json_error(c, ctx, 404, "no such API endpoint", read_only && keep_alive,
                                       method == bhttp::verb::head);
  co_return std::nullopt;
}

}  // namespace mediagate::server
