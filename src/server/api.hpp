#pragma once
// The library's HTTP surface: the JSON API under /api/, uploads, /v/{id} and the web page (GET /, /ui/*).
// Handlers run on the event loops; the catalog is synchronous (SQLite answers in microseconds, PostgreSQL in
// one round trip) and thread-safe; probing runs on the library's own threads.
#include <boost/asio/awaitable.hpp>
#include <cstdint>
#include <exception>
#include <memory>
#include <mutex>
#include <optional>
#include <set>
#include <string>
#include <string_view>
#include <unordered_map>
#include <utility>
#include <vector>

#include "server/request.hpp"
#include "server/response.hpp"
#include "server/services.hpp"

namespace mediagate::catalog {
class catalog;
class library;
}  // namespace mediagate::catalog

namespace mediagate::server {

// Storage keys that form uploads in progress have chosen (shared by every event loop).
struct reserved_keys {
  std::mutex mutex;
  std::set<std::string> keys;
};

// Holds one reserved key until destroyed.
class key_reservation {
 public:
  explicit key_reservation(reserved_keys& owner) : owner_(owner) {}
  ~key_reservation() { release(); }
  key_reservation(const key_reservation&) = delete;
  key_reservation& operator=(const key_reservation&) = delete;
  bool take(const std::string& key);  // false when another upload holds it
  void release();

 private:
  reserved_keys& owner_;
  std::string key_;
};

struct api_services {
  std::shared_ptr<catalog::catalog> items;
  std::shared_ptr<catalog::library> lib;  // null: uploads are catalogued but not probed
  std::string admin_token;                // empty: every write is refused (403)
  std::uint64_t max_upload_bytes = 10ull << 30;
  reserved_keys uploads_in_progress;
  // Items whose visibility is not "inherit", by key (the catalog's copy, read on every media request).
  mutable std::mutex visibility_mutex;
  std::unordered_map<std::string, std::string> visibility_by_key;
  void set_visibility(const std::string& key, const std::string& visibility);
  std::string visibility_of(const std::string& key) const;  // "inherit" when not overridden
  // Replaces every override (the catalog's visibility_overrides(), read again after changes were missed).
  void replace_visibilities(const std::vector<std::pair<std::string, std::string>>& overrides);
};

// The response when the request's path belongs to the library (nullopt otherwise, for the router to go on).
boost::asio::awaitable<std::optional<response>> route_api(const request& req, services& svc);

// -- shared by the api_*.cpp files --------------------------------------------------------------------

// Checks `Authorization: Bearer TOKEN`: nullopt when allowed, else the refusal (403 when no token is
// configured, 401 when it is missing or wrong).
std::optional<response> check_admin(const api_services& api, const request& req);
bool is_admin(const api_services& api, const request& req);

// The answer when a catalog call threw `e` (logged): 503 with the reason when the catalog cannot be reached
// (catalog_unavailable: PostgreSQL down), else 500 with the reason in the log only.
response catalog_failure(const request& req, services& svc, const std::exception& e);

// Uploads: PUT /api/media/<key> (raw body) and POST /api/media (multipart/form-data).
boost::asio::awaitable<response> handle_put_upload(const request& req, services& svc, std::string key);
boost::asio::awaitable<response> handle_form_upload(const request& req, services& svc);

// Reads a small request body whole (JSON for PATCH): the body, or the error to answer (413, 400).
boost::asio::awaitable<result<std::string>> read_small_body(const request& req, std::size_t limit);

// The web page's assets: "/" and "/ui/<name>".
response serve_ui_asset(const request& req, std::string_view name);
// A resource made in memory with a strong `etag` (sent with it): If-None-Match gives 304, If-Match 412, else
// 200 with `bytes` (HEAD: the head only).
response conditional_bytes(const request& req, const std::string& etag, std::string_view content_type,
                           std::string bytes, http::header_list headers = {});

}  // namespace mediagate::server
