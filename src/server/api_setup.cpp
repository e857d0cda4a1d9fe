#include "server/api_setup.hpp"

#include <spdlog/spdlog.h>

#include <stdexcept>

#include "catalog/catalog.hpp"
#include "catalog/library.hpp"

namespace mediagate::server {

std::shared_ptr<api_services> make_api(const library_options& o, storage_factory storage,
                                       std::shared_ptr<spdlog::logger> log) {
  auto api = std::make_shared<api_services>();
  api->items = std::make_shared<catalog::catalog>(o.catalog);
  for (const auto& [key, visibility] : api->items->visibility_overrides())
    api->set_visibility(key, visibility);
  catalog::probe_tools tools;
  tools.ffprobe = o.ffprobe;
  tools.ffmpeg = o.ffmpeg;
  tools.timeout = std::chrono::milliseconds(static_cast<long long>(o.probe_timeout * 1000));
  tools.workers = o.probe_workers;
  api->lib = std::make_shared<catalog::library>(api->items, std::move(storage), tools, log);
  api->admin_token = o.admin_token;
  api->max_upload_bytes = o.max_upload_bytes;
  log->info("catalog {} (schema version {}); uploads {}", api->items->describe(),
            api->items->schema_version(), o.admin_token.empty() ? "disabled (no --admin-token)" : "enabled");
  return api;
}

void start_library(api_services& api, const std::string& listen_host, std::uint16_t port, bool scan) {
  // The worker reads media through this server: loopback when it listens on every address.
  std::string host = listen_host;
  if (host == "0.0.0.0" || host.empty())
    host = "127.0.0.1";
  else if (host == "::")
    host = "[::1]";
  else if (host.find(':') != std::string::npos)
    host = "[" + host + "]";
  api.lib->start("http://" + host + ":" + std::to_string(port) + "/media/");
  if (scan) api.lib->request_scan();
}

}  // namespace mediagate::server
