#include "server/access.hpp"

#include <ctime>

#include "http/token.hpp"
#include "server/api.hpp"
#include "server/metrics.hpp"

namespace mediagate::server {
namespace {

constexpr std::string_view kExposed = "Content-Range, Content-Length, Accept-Ranges, ETag, Last-Modified";
constexpr std::string_view kMediaHeaders =
    "Range, If-Range, If-None-Match, If-Match, If-Modified-Since, If-Unmodified-Since";

// The client's address without its port ("127.0.0.1:5000" → "127.0.0.1", "::1:5000" → "::1").
std::string_view address_of(std::string_view peer) {
  const auto colon = peer.rfind(':');
  return colon == std::string_view::npos ? peer : peer.substr(0, colon);
}

// The allowed origin to name in the answer, or nullopt (no CORS headers at all).
std::optional<std::string> allowed_origin(const request& req, const server_config& cfg) {
  if (cfg.cors_origins.empty()) return std::nullopt;
  const auto origin = req.single_field("Origin");
  for (const auto& allowed : cfg.cors_origins) {
    if (allowed == "*") return origin ? std::string(*origin) : std::string("*");
    if (origin && *origin == allowed) return allowed;
  }
  return std::nullopt;
}

bool is_api(std::string_view path) { return path.starts_with("/api/"); }

}  // namespace

bool needs_signature(const access_policy& policy, std::string_view key) {
  // The longest matching prefix decides; none: the default.
  std::size_t best = 0;
  bool found = false, signed_needed = policy.signed_by_default;
  auto consider = [&](const std::vector<std::string>& prefixes, bool needs) {
    for (const auto& p : prefixes)
      if (key.starts_with(p) && (!found || p.size() > best)) {
        best = p.size();
        found = true;
        signed_needed = needs;
      }
  };
  consider(policy.signed_prefixes, true);
  consider(policy.public_prefixes, false);
  return signed_needed;
}

bool needs_link(const access_policy& policy, const api_services* api, const std::string& key) {
  if (api) {
    const auto v = api->visibility_of(key);
    if (v == "private") return true;
    if (v == "public") return false;
  }
  return needs_signature(policy, key);
}

bool needs_link(const services& svc, const std::string& key) {
  return needs_link(svc.config.access, svc.api, key);
}

std::optional<response> check_link(const request& req, services& svc, std::string_view key) {
  const auto& policy = svc.config.access;
  http::link_request lr{req.query, key, req.read_only(), address_of(req.peer)};
  const auto verdict =
      http::verify_link(lr, policy.keys, static_cast<std::int64_t>(std::time(nullptr)), policy.clock_skew);
  if (verdict == http::link_verdict::ok) return std::nullopt;
  svc.stats.link_refused(verdict);
  return text_response(
      403,
      "forbidden: this media needs a valid signed link (" + std::string(http::verdict_reason(verdict)) + ")",
      {{"Cache-Control", "no-store"}});
}

void add_cors_headers(const request& req, const server_config& cfg, response& r) {
  auto origin = allowed_origin(req, cfg);
  if (cfg.cors_origins.empty()) return;
  r.headers.emplace_back("Vary", "Origin");  // the answer depends on the Origin: caches must key on it
  if (!origin) return;
  r.headers.emplace_back("Access-Control-Allow-Origin", std::move(*origin));
  r.headers.emplace_back("Access-Control-Expose-Headers", std::string(kExposed));
}

response answer_options(const request& req, const server_config& cfg) {
  const std::string methods =
      is_api(req.path) ? "GET, HEAD, POST, PUT, PATCH, DELETE, OPTIONS" : "GET, HEAD, OPTIONS";
  const bool preflight = req.count("Origin") > 0 && req.count("Access-Control-Request-Method") > 0;
  response r;
  r.status = 204;
  r.headers.emplace_back("Allow", methods);
  if (!preflight) return r;
  auto origin = allowed_origin(req, cfg);
  if (!cfg.cors_origins.empty()) r.headers.emplace_back("Vary", "Origin");
  if (!origin) return r;  // not allowed: no CORS headers, so the browser refuses the real request
  r.headers.emplace_back("Access-Control-Allow-Origin", std::move(*origin));
  r.headers.emplace_back("Access-Control-Allow-Methods", methods);
  std::string headers(kMediaHeaders);
  if (is_api(req.path)) headers += ", Authorization, Content-Type";
  r.headers.emplace_back("Access-Control-Allow-Headers", headers);
  r.headers.emplace_back("Access-Control-Max-Age", "86400");
  return r;
}

}  // namespace mediagate::server
