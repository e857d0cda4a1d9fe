#include "server/router.hpp"

#include "server/api.hpp"
#include "server/media.hpp"
#include "server/metrics.hpp"

namespace mediagate::server {

boost::asio::awaitable<response> handle_request(const request& req, services& svc) {
  const auto path = req.path;
  if (path.empty() || path.front() != '/')
    co_return text_response(400, "bad request: the target must be an absolute path");
  if (path.starts_with("/media/")) co_return co_await serve_media(req, svc, path.substr(7));
  if (svc.api) {  // the library: JSON API, uploads, /v/{id} and the web page
    if (auto r = co_await route_api(req, svc)) co_return std::move(*r);
  }
  if (!req.read_only()) {
    auto r = text_response(405, "method not allowed", {{"Allow", "GET, HEAD"}});
    r.close = req.has_body();
    co_return r;
  }
  if (path == "/healthz") co_return text_response(200, "ok", {{"Cache-Control", "no-store"}});
  if (path == "/metrics") {
    auto text = svc.stats.render();
    for (const auto& source : svc.metrics_sources) text += source();
    co_return make_response(200, "text/plain; version=0.0.4; charset=utf-8", std::move(text),
                            {{"Cache-Control", "no-store"}});
  }
  co_return text_response(404, "not found");
}

}  // namespace mediagate::server
