#pragma once
// Wiring of the library for `serve` and `scan`: the catalog, the background worker and the services the
// HTTP handlers share.
#include <cstdint>
#include <memory>
#include <optional>
#include <string>

#include "server/api.hpp"
#include "server/server.hpp"

namespace mediagate::server {

struct library_options {
  std::string catalog = "sqlite:./mediagate.db";  // "sqlite:PATH", a path, or "postgres://USER@HOST:PORT/DB"
  std::string admin_token;                        // empty: writes refused
  std::uint64_t max_upload_bytes = 10ull << 30;
  std::string ffprobe = "ffprobe", ffmpeg = "ffmpeg";
  double probe_timeout = 20;      // seconds per ffprobe/ffmpeg run
  std::size_t probe_workers = 2;  // probes in parallel
};

// Opens (and migrates) the catalog and prepares the library. Throws std::runtime_error with a message a
// user can act on when the catalog cannot be used.
std::shared_ptr<api_services> make_api(const library_options& o, storage_factory storage,
                                       std::shared_ptr<spdlog::logger> log);

// Starts the library's worker, which reads media from the server at host:port; queues a scan if asked.
void start_library(api_services& api, const std::string& listen_host, std::uint16_t port, bool scan);

}  // namespace mediagate::server
