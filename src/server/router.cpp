#include "server/router.hpp"

#include <openssl/crypto.h>

#include "http/token.hpp"
#include "server/access.hpp"
#include "server/api.hpp"
#include "server/hls.hpp"
#include "server/media.hpp"
#include "server/metrics.hpp"

namespace mediagate::server {
namespace {

bool is_loopback(std::string_view peer) {
  return peer.starts_with("127.") || peer.starts_with("::1:") || peer.starts_with("::ffff:127.");
}

// Counters tell an outsider what is stored and how it is used: loopback clients only, unless a token is set.
bool metrics_allowed(const request& req, const server_config& cfg) {
  if (cfg.metrics_token.empty()) return is_loopback(req.peer);
  const auto value = req.single_field("Authorization");
  return value && value->size() == 7 + cfg.metrics_token.size() &&
         http::iequals(value->substr(0, 7), "Bearer ") &&
         CRYPTO_memcmp(value->data() + 7, cfg.metrics_token.data(), cfg.metrics_token.size()) == 0;
}

}  // namespace

boost::asio::awaitable<response> route(const request& req, services& svc);

boost::asio::awaitable<response> handle_request(const request& req, services& svc) {
  // Media first, without route()'s frame: most requests are for media.
  response r;
  if (req.path.starts_with("/media/") && req.verb != method::options)
    r = co_await serve_media(req, svc, req.path.substr(7));
  else
    r = co_await route(req, svc);
  if (req.verb != method::options) add_cors_headers(req, svc.config, r);  // a preflight has its own
  co_return r;
}

// Everything but media (handle_request serves /media/ itself, OPTIONS excepted).
boost::asio::awaitable<response> route(const request& req, services& svc) {
  if (req.verb == method::options) co_return answer_options(req, svc.config);
  const auto path = req.path;
  if (path.empty() || path.front() != '/')
    co_return text_response(400, "bad request: the target must be an absolute path");
  if (path.starts_with("/hls/") || path.starts_with("/dash/")) {
    const auto prefix = path.starts_with("/hls/") ? 5 : 6;  // bound first: GCC 12 and ?: in co_await
    co_return co_await serve_hls(req, svc, path.substr(prefix));
  }
  if (svc.api) {  // the library: JSON API, uploads, /v/{id} and the web page
    if (auto r = co_await route_api(req, svc)) co_return std::move(*r);
  }
  if (!req.read_only()) {
    auto r = text_response(405, "method not allowed", {{"Allow", "GET, HEAD"}});
    r.close = req.has_body();
    co_return r;
  }
  if (path == "/healthz") co_return text_response(200, "ok", {{"Cache-Control", "no-store"}});
  if (path == "/readyz") {
    // A load balancer takes a draining node out of its pool before it stops.
    if (svc.draining && svc.draining->load())
      co_return text_response(503, "draining", {{"Cache-Control", "no-store"}});
    co_return text_response(200, "ready", {{"Cache-Control", "no-store"}});
  }
  if (path == "/metrics") {
    if (!metrics_allowed(req, svc.config)) co_return text_response(404, "not found");
    auto text = svc.stats.render();
    for (const auto& source : svc.metrics_sources) text += source();
    co_return make_response(200, "text/plain; version=0.0.4; charset=utf-8", std::move(text),
                            {{"Cache-Control", "no-store"}});
  }
  co_return text_response(404, "not found");
}

}  // namespace mediagate::server
