// `mediagate serve`: validate the options, open the storage, the logs and the library, then run the server.
#include <spdlog/sinks/stdout_sinks.h>
#include <spdlog/spdlog.h>

#include <cstdio>
#include <functional>
#include <memory>
#include <thread>

#include "app/commands.hpp"
#include "app/reopenable_sink.hpp"
#include "app/scan.hpp"
#include "app/storage_setup.hpp"
#include "catalog/catalog.hpp"
#include "catalog/library.hpp"
#include "catalog/postgres.hpp"
#include "http/signed_link.hpp"
#include "server/access.hpp"
#include "server/api_setup.hpp"
#include "server/server.hpp"

namespace mediagate::app {
namespace {

// The program's log, passed to everything that logs (not registered in spdlog's global registry).
std::shared_ptr<spdlog::logger> make_logger(const std::string& level) {
  auto log = std::make_shared<spdlog::logger>("mediagate", std::make_shared<spdlog::sinks::stderr_sink_mt>());
  log->set_pattern("%Y-%m-%dT%H:%M:%S.%e%z %^%l%$ %v");
  log->set_level(spdlog::level::from_str(level));
  return log;
}

// The access log and how SIGHUP reopens it (empty unless it is a file).
struct access_log {
  std::shared_ptr<spdlog::logger> log;  // null when off
  std::function<void()> reopen;
};

access_log make_access_log(const std::string& target) {
  access_log made;
  if (target == "off") return made;
  spdlog::sink_ptr sink;
  if (target == "-") {
    sink = std::make_shared<spdlog::sinks::stdout_sink_mt>();
  } else {
    auto file = std::make_shared<reopenable_file_sink>(target);
    made.reopen = [file] { file->reopen(); };
    sink = file;
  }
  made.log = std::make_shared<spdlog::logger>("access", std::move(sink));
  made.log->set_pattern("%Y-%m-%dT%H:%M:%S.%e%z %v");
  made.log->flush_on(spdlog::level::info);
  return made;
}

// Nodes that share a PostgreSQL catalog hear each other's changes (uploads, replacements, deletes,
// visibility): this node's cached metadata of the key goes at once, not after its TTL. Null for SQLite.
std::unique_ptr<catalog::pg_listener> listen_for_changes(const serve_config& cfg,
                                                         const storage_setup& storage,
                                                         const std::shared_ptr<server::api_services>& api,
                                                         const std::shared_ptr<spdlog::logger>& log) {
  if (!api->items->shared()) return nullptr;
  auto on_change = [changes = storage.changes, drop = storage.drop_cached_version, api,
                    log](const catalog::item_change& c) {
    changes->invalidate(c.key);
    if (drop && !c.old_etag.empty()) drop(c.key, c.old_etag, c.old_size);
    // Only a visibility change or a delete can change what the server keeps of the item (its visibility
    // override): a scan that adds thousands of objects costs every node no query per object.
    if (c.visibility) {
      try {
        auto item = api->items->get_by_key(c.key);
        api->set_visibility(c.key, item ? item->visibility : "inherit");
      } catch (const std::exception& e) {
        log->warn("catalog changes: cannot read {} again: {}", c.key, e.what());
      }
    }
    log->debug("catalog changes: {} changed (was {})", c.key, c.old_etag.empty() ? "new" : c.old_etag);
  };
  auto on_reset = [changes = storage.changes, api, log] {
    changes->invalidate_all();
    try {
      api->replace_visibilities(api->items->visibility_overrides());
    } catch (const std::exception& e) {
      log->warn("catalog changes: cannot read the visibility overrides again: {}", e.what());
    }
  };
  auto listener = std::make_unique<catalog::pg_listener>(cfg.library.catalog, std::move(on_change),
                                                         std::move(on_reset), log);
  listener->start();
  return listener;
}

// Binds, starts the library and serves until a signal (or, for `scan`, the end of the scan) stops the server.
int run_server(const serve_config& cfg, const storage_setup& storage,
               const std::shared_ptr<server::api_services>& api, const std::shared_ptr<spdlog::logger>& log,
               const access_log& access) {
  server::server srv(cfg.server, storage.factory, log, access.log);
  for (const auto& source : storage.metrics) srv.add_metrics_source(source);
  auto listener = listen_for_changes(cfg, storage, api, log);
  if (listener)
    srv.add_metrics_source([l = listener.get()] {
      return "# HELP mediagate_catalog_changes_total Change notifications received from the shared catalog.\n"
             "# TYPE mediagate_catalog_changes_total counter\n"
             "mediagate_catalog_changes_total " +
             std::to_string(l->received()) +
             "\n# HELP mediagate_catalog_listener_up 1 while the change listener is connected.\n"
             "# TYPE mediagate_catalog_listener_up gauge\n"
             "mediagate_catalog_listener_up " +
             std::string(l->connected() ? "1" : "0") + "\n";
    });
  srv.set_api(api);
  if (access.reopen) srv.on_reload(access.reopen);
  // Probes read media through this server: they end when it starts draining, not after.
  srv.on_drain([lib = api->lib] { lib->begin_stop(); });
  // Probes read private media through the server like anyone else: with a short-lived link of their own.
  if (!cfg.server.access.keys.empty())
    api->lib->set_link_query(
        [policy = cfg.server.access, api = api.get()](const std::string& key) -> std::string {
          if (!server::needs_link(policy, api, key)) return "";
          const http::link_grant grant{key, static_cast<std::int64_t>(std::time(nullptr)) + 3600, false, ""};
          return "?" + http::sign_link(grant, policy.keys.front());
        });
  const auto port = srv.bind();
  const auto library_host = srv.library_port() == port ? cfg.server.listen_host : std::string("127.0.0.1");
  server::start_library(*api, library_host, srv.library_port(), cfg.scan_on_start || cfg.scan_only);
  int exit_code = 0;
  std::thread scan_waiter;
  if (cfg.scan_only) {
    scan_waiter = wait_for_scan(*api, srv, exit_code);
  } else {
    const auto& tls = cfg.server.tls;
    if (tls.enabled() && !tls.separate_listener) {
      std::printf("mediagate listening on https://%s:%u/\n", cfg.server.listen_host.c_str(), port);
    } else {
      std::printf("mediagate listening on http://%s:%u/%s\n", cfg.server.listen_host.c_str(), port,
                  tls.redirect_http ? " (redirects to https)" : "");
      if (tls.separate_listener)
        std::printf("mediagate listening on https://%s:%u/\n", tls.listen_host.c_str(), srv.tls_port());
    }
  }
  std::fflush(stdout);
  srv.run();
  if (scan_waiter.joinable()) scan_waiter.join();
  api->lib->stop();
  return exit_code;
}

// Everything after the storage: the access log, the catalog, the server.
int serve_storage(const serve_config& cfg, const storage_setup& storage,
                  const std::shared_ptr<spdlog::logger>& log) {
  access_log access;
  try {
    access = make_access_log(cfg.server.access_log);
  } catch (const std::exception& e) {
    log->error("cannot open the access log {}: {}", cfg.server.access_log, e.what());
    return 1;
  }
  std::shared_ptr<server::api_services> api;
  try {
    api = server::make_api(cfg.library, storage.factory, log);
  } catch (const std::exception& e) {
    log->error("cannot use the catalog: {}", e.what());
    return 1;
  }
  try {
    return run_server(cfg, storage, api, log, access);
  } catch (const std::exception& e) {
    log->error("cannot serve: {}", e.what());
    return 1;
  }
}

}  // namespace

int run_serve(const serve_options& o) {
  auto log = make_logger(o.log_level);
  const auto checked = validate(o);
  if (const auto* message = std::get_if<std::string>(&checked)) {
    log->error("{}", *message);
    return 2;
  }
  const auto& cfg = std::get<serve_config>(checked);
  const auto opened = open_storage(cfg, log);
  if (const auto* failure = std::get_if<setup_failure>(&opened)) {
    log->error("{}", failure->message);
    return failure->exit_code;
  }
  return serve_storage(cfg, std::get<storage_setup>(opened), log);
}

}  // namespace mediagate::app
