#pragma once
// The HTTP server: its listening sockets (HTTP, HTTPS), one event loop per thread, connections spread
// round-robin.
#include <atomic>
#include <cstdint>
#include <functional>
#include <memory>
#include <string>

#include "server/config.hpp"

namespace boost::asio {
class io_context;
}
namespace spdlog {
class logger;
}
namespace mediagate::storage {
class storage;
}

namespace mediagate::server {

class metrics;
struct api_services;

// Makes the storage used by one event loop (backends with connection pools keep one pool per loop).
using storage_factory = std::function<std::shared_ptr<storage::storage>(boost::asio::io_context&)>;

// Extra Prometheus text appended to /metrics (storage and cache counters).
using metrics_source = std::function<std::string()>;

class server {
 public:
  // `access_log`: one line per request; null for none.
  server(server_config config, storage_factory storage, std::shared_ptr<spdlog::logger> log,
         std::shared_ptr<spdlog::logger> access_log);
  ~server();
  server(const server&) = delete;
  server& operator=(const server&) = delete;

  // Binds and listens; returns the bound port of --listen (the configured one, or the one chosen for port 0).
  std::uint16_t bind();
  // After bind(): the HTTPS port (0 without TLS), and the plain HTTP port on which the library's probes
  // read media (--listen's, or a loopback one when --listen speaks TLS or only redirects).
  std::uint16_t tls_port() const;
  std::uint16_t library_port() const;
  // Runs every event loop until SIGINT/SIGTERM or stop() has drained them; returns when all have finished.
  // SIGHUP calls the reload function (reopen log files) and reloads the TLS certificate.
  void run();
  // Stops accepting, answers what is in flight (up to drain_timeout), then stops. Thread-safe.
  void stop();
  void on_reload(std::function<void()> reload);
  // Called once when draining begins (SIGTERM or stop()), from an event loop: must not block.
  void on_drain(std::function<void()> drain);
  std::size_t connection_cap() const;
  void add_metrics_source(metrics_source source);
  // The library (catalog, uploads, web page) for every event loop; without it those paths are 404.
  void set_api(std::shared_ptr<api_services> api);
  metrics& counters();

 private:
  struct impl;
  std::unique_ptr<impl> impl_;
};

}  // namespace mediagate::server
