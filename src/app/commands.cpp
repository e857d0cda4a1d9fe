#include "app/commands.hpp"

#include <spdlog/sinks/basic_file_sink.h>
#include <spdlog/sinks/stdout_sinks.h>
#include <spdlog/spdlog.h>

#include <CLI/CLI.hpp>
#include <cstdio>
#include <memory>

#include "server/server.hpp"
#include "storage/local_storage.hpp"

namespace mediagate::app {
namespace {

int g_exit_code = 0;  // set by the subcommand that ran; read once by main

struct serve_options {
  server::server_config config;
  std::string listen = "127.0.0.1:8080";
  std::string storage = "./media";
  double header_timeout = 10, idle_timeout = 60, send_timeout = 60;
  std::string log_level = "info";
};

bool parse_listen(const std::string& listen, server::server_config& cfg) {
  const auto colon = listen.rfind(':');
  if (colon == std::string::npos) return false;
  auto host = listen.substr(0, colon);
  if (host.size() >= 2 && host.front() == '[' && host.back() == ']') host = host.substr(1, host.size() - 2);
  cfg.listen_host = host.empty() ? "0.0.0.0" : host;
  try {
    const auto port = std::stoul(listen.substr(colon + 1));
    if (port > 65535) return false;
    cfg.listen_port = static_cast<std::uint16_t>(port);
  } catch (const std::exception&) {
    return false;
  }
  return true;
}

std::shared_ptr<spdlog::logger> make_logger(const std::string& level) {
  auto log = spdlog::stderr_logger_mt("mediagate");
  log->set_pattern("%Y-%m-%dT%H:%M:%S.%e%z %^%l%$ %v");
  log->set_level(spdlog::level::from_str(level));
  return log;
}

void make_access_logger(const std::string& target) {
  if (target == "off") return;
  std::shared_ptr<spdlog::logger> access;
  if (target == "-")
    access = spdlog::stdout_logger_mt("access");
  else
    access = spdlog::basic_logger_mt("access", target);
  access->set_pattern("%Y-%m-%dT%H:%M:%S.%e%z %v");
  access->flush_on(spdlog::level::info);
}

int run_serve(serve_options& o) {
  auto log = make_logger(o.log_level);
  if (!parse_listen(o.listen, o.config)) {
    log->error("--listen must be HOST:PORT, got '{}'", o.listen);
    return 2;
  }
  o.config.header_timeout = std::chrono::milliseconds(static_cast<long>(o.header_timeout * 1000));
  o.config.idle_timeout = std::chrono::milliseconds(static_cast<long>(o.idle_timeout * 1000));
  o.config.send_timeout = std::chrono::milliseconds(static_cast<long>(o.send_timeout * 1000));
  server::storage_factory factory;
  try {
    if (o.storage.starts_with("s3://")) {
      log->error("S3 storage is not available in this build");
      return 2;
    }
    auto local = std::make_shared<storage::local_storage>(o.storage);
    factory = [local](boost::asio::io_context&) { return local; };
    log->info("serving {}", local->describe());
  } catch (const std::exception& e) {
    log->error("{}", e.what());
    return 1;
  }
  make_access_logger(o.config.access_log);
  try {
    server::server srv(o.config, factory, log);
    const auto port = srv.bind();
    std::printf("mediagate listening on http://%s:%u/\n", o.config.listen_host.c_str(), port);
    std::fflush(stdout);
    srv.run();
  } catch (const std::exception& e) {
    log->error("cannot serve: {}", e.what());
    return 1;
  }
  return 0;
}

}  // namespace

void register_commands(CLI::App& app) {
  auto opts = std::make_shared<serve_options>();
  auto* serve = app.add_subcommand("serve", "Serve media over HTTP");
  auto& c = opts->config;
  serve->add_option("--listen", opts->listen, "Address and port to listen on (HOST:PORT; port 0 picks a free one)")
      ->capture_default_str();
  serve->add_option("--storage", opts->storage, "Media storage: a directory path, or s3://BUCKET[/PREFIX]")
      ->envname("MEDIAGATE_STORAGE")
      ->capture_default_str();
  serve->add_option("--threads", c.threads, "Event loops (0: one per core)")->capture_default_str();
  serve->add_option("--cache-control", c.cache_control, "Cache-Control header of media responses ('' for none)")
      ->capture_default_str();
  serve->add_option("--cors-origin", c.cors_origin, "Access-Control-Allow-Origin for media (e.g. '*'); empty: no CORS");
  serve->add_option("--max-ranges", c.max_ranges, "Ranges per request before the whole object is sent instead")
      ->check(CLI::Range(1, 1000))
      ->capture_default_str();
  serve->add_option("--max-header-bytes", c.max_header_bytes, "Largest request header accepted (else 431)")
      ->check(CLI::Range(1024, 1 << 20))
      ->capture_default_str();
  serve->add_option("--max-header-fields", c.max_header_fields, "Most request header fields accepted (else 431)")
      ->check(CLI::Range(8, 10000))
      ->capture_default_str();
  serve->add_option("--max-connections", c.max_connections, "Open client connections before new ones get 503")
      ->check(CLI::Range(1, 1000000))
      ->capture_default_str();
  serve->add_option("--stream-buffer", c.stream_buffer_bytes, "Buffer per stream for non-file storage, bytes")
      ->check(CLI::Range(4096, 16 << 20))
      ->capture_default_str();
  serve->add_option("--header-timeout", opts->header_timeout, "Seconds to receive a request header (else 408)")
      ->check(CLI::PositiveNumber)
      ->capture_default_str();
  serve->add_option("--idle-timeout", opts->idle_timeout, "Seconds a keep-alive connection may stay idle")
      ->check(CLI::PositiveNumber)
      ->capture_default_str();
  serve->add_option("--send-timeout", opts->send_timeout, "Seconds a client may take no bytes before it is dropped")
      ->check(CLI::PositiveNumber)
      ->capture_default_str();
  serve->add_option("--access-log", c.access_log, "Access log: '-' for standard output, 'off', or a file path")
      ->capture_default_str();
  serve->add_option("--log-level", opts->log_level, "trace, debug, info, warn, error")->capture_default_str();
  serve->callback([opts] { g_exit_code = run_serve(*opts); });
}

int exit_code() { return g_exit_code; }

}  // namespace mediagate::app
