#pragma once
// The command line: what each subcommand accepts (plain structs CLI11 fills), and the one validation step
// that turns serve's and scan's options into the config the rest of the program is given.
#include <optional>
#include <string>
#include <variant>

#include "app/access_options.hpp"
#include "cache/metadata_cache.hpp"
#include "cache/slice_cache.hpp"
#include "server/api_setup.hpp"
#include "server/config.hpp"

namespace CLI {
class App;
}

namespace mediagate::app {

// S3 connection options shared by serve, scan, ls and put; each falls back to the AWS environment variables.
struct s3_options {
  std::string endpoint, region, addressing, access_key, secret_key, session_token, ca_file, connect_to;
  bool no_verify = false, anonymous = false, no_tls_resume = false;
  int idle_connections = 32;
  int download_parts = 6;
  std::string download_part_size = "8MiB", download_after = "8MiB";
  std::string download_memory = "256MiB";      // every download's parts together
  std::string download_slower_than = "200MB";  // per second
  std::string first_read = "1MiB";
  double meta_ttl = 5;
};

// `serve` and `scan` as given on the command line: sizes and durations still in the user's units.
struct serve_options {
  server::server_config config;  // the fields the CLI fills directly; validation completes the rest
  std::string listen = "127.0.0.1:8080";
  std::string storage = "./media";
  double header_timeout = 10, idle_timeout = 60, send_timeout = 60, drain_timeout = 30, drain_delay = 0;
  std::string log_level = "info";
  s3_options s3;
  std::string cache_dir, cache_size = "20GiB", cache_slice = "1MiB";
  std::string cache_tail_prefetch = "2MiB";
  std::string cache_read_ahead = "8MiB";
  double cache_meta_ttl = 5, cache_stale_limit = 3600;
  server::library_options library;
  access_options access;
  std::string max_upload = "10GiB";
  std::string listen_tls;  // --listen-tls HOST:PORT: HTTPS beside a plain --listen
  double tls_reload_interval = 5;
  bool scan_on_start = false;
  bool scan_only = false;  // `mediagate scan`: index the storage through a private server, then exit
};

struct ls_options {
  std::string location;
  s3_options s3;
};

struct put_options {
  std::string file, destination, content_type;
  s3_options s3;
};

// The slice cache in front of storage (--cache-dir and its companions).
struct cache_settings {
  cache::cache_config slices;
  cache::metadata_cache_config metadata;
};

// Everything `serve` and `scan` run with, checked: listen address parsed, sizes and durations converted,
// the cache directory's placement accepted.
struct serve_config {
  server::server_config server;
  std::string storage;  // a directory, or s3://BUCKET[/PREFIX]
  s3_options s3;
  std::optional<cache_settings> cache;  // none without --cache-dir
  server::library_options library;
  bool scan_on_start = false;
  bool scan_only = false;
};

void add_serve_options(CLI::App& cmd, serve_options& o);
void add_scan_options(CLI::App& cmd, serve_options& o);
void add_ls_options(CLI::App& cmd, ls_options& o);
void add_put_options(CLI::App& cmd, put_options& o);

// The checked config, or the message to print before exiting with status 2.
std::variant<serve_config, std::string> validate(const serve_options& o);

}  // namespace mediagate::app
