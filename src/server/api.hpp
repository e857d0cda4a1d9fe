#pragma once
// The library's HTTP surface: the JSON API under /api/, uploads, /v/{id} and the web page (GET /, /ui/*).
// Handlers run on the event loops; the catalog is synchronous (SQLite answers in microseconds) and
// thread-safe; probing runs on the library's own thread.
#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <string_view>

#include "server/session.hpp"

namespace mediagate::catalog {
class catalog;
class library;
}  // namespace mediagate::catalog

namespace mediagate::server {

struct api_services {
  std::shared_ptr<catalog::catalog> items;
  std::shared_ptr<catalog::library> lib;  // null: uploads are catalogued but not probed
  std::string admin_token;                // empty: every write is refused (403)
  std::uint64_t max_upload_bytes = 10ull << 30;
};

// Handles the request when its path belongs to the library (nullopt otherwise, for the router to go on).
net::awaitable<std::optional<request_outcome>> route_api(connection& c, worker_context& ctx,
                                                         request_parser& parser, std::string_view path,
                                                         std::string_view query, bool keep_alive);

// -- shared by the api_*.cpp files --------------------------------------------------------------------

// {"error": message} with `status`.
net::awaitable<request_outcome> send_json_error(connection& c, worker_context& ctx, unsigned status,
                                                std::string_view message, bool keep_alive, bool head = false);
net::awaitable<request_outcome> send_json(connection& c, worker_context& ctx, unsigned status,
                                          std::string body, bool keep_alive, bool head = false,
                                          http::header_list extra = {});

// Checks `Authorization: Bearer TOKEN`: nullopt when allowed, else the status and message to answer
// (403 when no token is configured, 401 when it is missing or wrong).
std::optional<std::pair<unsigned, std::string>> check_admin(const api_services& api,
                                                            const beast::http::request_header<>& req);

// Uploads: PUT /api/media/<key> (raw body) and POST /api/media (multipart/form-data).
net::awaitable<request_outcome> handle_put_upload(connection& c, worker_context& ctx, request_parser& parser,
                                                  std::string key);
net::awaitable<request_outcome> handle_form_upload(connection& c, worker_context& ctx,
                                                   request_parser& parser);

// Reads a small request body whole (JSON for PATCH); nullopt when it is larger than `limit` or the client
// went away, with `status` set to 413 or 400.
net::awaitable<std::optional<std::string>> read_small_body(connection& c, worker_context& ctx,
                                                           request_parser& parser, std::size_t limit,
                                                           unsigned& status);

// The web page's assets: "/" and "/ui/<name>".
net::awaitable<request_outcome> serve_ui_asset(connection& c, worker_context& ctx,
                                               const beast::http::request_header<>& req,
                                               std::string_view name, bool keep_alive);

}  // namespace mediagate::server
