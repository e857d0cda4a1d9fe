#pragma once
// Storage as the commands use it: S3 settings resolved from options, environment and the shared AWS files;
// for `serve`, the backend checked at start-up and wrapped in the slice cache.
#include <spdlog/logger.h>

#include <boost/asio/io_context.hpp>
#include <chrono>
#include <memory>
#include <string>
#include <variant>
#include <vector>

#include "app/options.hpp"
#include "s3/s3_client.hpp"
#include "server/server.hpp"
#include "storage/key_invalidations.hpp"
#include "storage/s3_storage.hpp"

namespace mediagate::app {

// Everything an S3 storage backend needs, resolved once at start-up.
struct s3_setup {
  s3::client_settings settings;
  std::shared_ptr<s3::credentials_provider> creds;
  std::shared_ptr<s3::client_counters> counters = std::make_shared<s3::client_counters>();
  storage::s3_location where;
  std::chrono::milliseconds meta_ttl{5000};
  storage::download_settings download;
  std::uint64_t first_read = storage::s3_storage::kFirstRead;
};

// Resolves options, environment and shared files into an S3 setup, or a message saying what is missing.
std::variant<s3_setup, std::string> resolve_s3(const s3_options& o, const std::string& url);

// A client on `io`'s loop; every client of one setup shares its credentials and counters.
std::shared_ptr<s3::client> make_client(boost::asio::io_context& io, const s3_setup& setup);

// The storage `serve` hands to its event loops, and the counters /metrics shows for it.
struct storage_setup {
  server::storage_factory factory;
  std::vector<server::metrics_source> metrics;
  // Other nodes' changes to objects (from the shared catalog), which end cached metadata early.
  std::shared_ptr<storage::key_invalidations> changes = std::make_shared<storage::key_invalidations>();
  // Deletes the slice cache's copy of one version (key, ETag, size) of an object; null without a slice cache.
  std::function<void(const std::string&, const std::string&, std::uint64_t)> drop_cached_version;
};

// Why the storage cannot be used, and the exit status that says so (2: the options, 1: the storage).
struct setup_failure {
  int exit_code;
  std::string message;
};

// Opens the configured storage (S3 checked for access, a directory cleared of stale uploads) behind the
// slice cache when one is configured.
std::variant<storage_setup, setup_failure> open_storage(const serve_config& cfg,
                                                        const std::shared_ptr<spdlog::logger>& log);

}  // namespace mediagate::app
