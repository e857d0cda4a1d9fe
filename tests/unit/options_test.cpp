#include "app/options.hpp"

#include <gtest/gtest.h>

#include <CLI/CLI.hpp>
#include <algorithm>
#include <chrono>
#include <filesystem>
#include <string>
#include <vector>

namespace mediagate::app {
namespace {

using namespace std::chrono_literals;

serve_config valid(const serve_options& o) {
  auto checked = validate(o);
  if (auto* message = std::get_if<std::string>(&checked)) ADD_FAILURE() << *message;
  return std::get<serve_config>(checked);
}

std::string rejected(const serve_options& o) {
  auto checked = validate(o);
  EXPECT_TRUE(std::holds_alternative<std::string>(checked));
  auto* message = std::get_if<std::string>(&checked);
  return message ? *message : "";
}

// Parses `args` as `serve` would see them.
serve_options parse_serve(std::vector<std::string> args) {
  CLI::App app;
  serve_options o;
  add_serve_options(app, o);
  std::reverse(args.begin(), args.end());  // CLI11 takes a vector in reverse order
  app.parse(args);
  return o;
}

TEST(validate, defaults_give_the_documented_config) {
  const auto cfg = valid(serve_options{});
  EXPECT_EQ(cfg.server.listen_host, "127.0.0.1");
  EXPECT_EQ(cfg.server.listen_port, 8080);
  EXPECT_EQ(cfg.server.header_timeout, 10s);
  EXPECT_EQ(cfg.server.idle_timeout, 60s);
  EXPECT_EQ(cfg.server.send_timeout, 60s);
  EXPECT_EQ(cfg.server.drain_timeout, 30s);
  EXPECT_EQ(cfg.server.descriptors_per_connection, 2u);  // the socket and the file
  EXPECT_FALSE(cfg.cache);
  EXPECT_EQ(cfg.library.max_upload_bytes, 10ull << 30);
  EXPECT_EQ(cfg.storage, "./media");
}

TEST(validate, listen_takes_host_and_port) {
  serve_options o;
  o.listen = "[::1]:0";
  auto cfg = valid(o);
  EXPECT_EQ(cfg.server.listen_host, "::1");
  EXPECT_EQ(cfg.server.listen_port, 0);
  o.listen = ":9000";
  cfg = valid(o);
  EXPECT_EQ(cfg.server.listen_host, "0.0.0.0");
  EXPECT_EQ(cfg.server.listen_port, 9000);
}

TEST(validate, listen_without_a_port_is_refused) {
  serve_options o;
  for (const char* bad : {"nope", "host:", "host:65536", "host:port"}) {
    o.listen = bad;
    EXPECT_EQ(rejected(o), "--listen must be HOST:PORT, got '" + std::string(bad) + "'");
  }
}

TEST(validate, seconds_become_milliseconds) {
  const auto cfg =
      valid(parse_serve({"--header-timeout", "0.25", "--drain-timeout", "0", "--idle-timeout", "2"}));
  EXPECT_EQ(cfg.server.header_timeout, 250ms);
  EXPECT_EQ(cfg.server.drain_timeout, 0ms);
  EXPECT_EQ(cfg.server.idle_timeout, 2s);
}

TEST(validate, the_cache_takes_sizes_and_counts_a_descriptor) {
  const auto dir = std::filesystem::temp_directory_path() / "mediagate_options_test_cache";
  auto o =
      parse_serve({"--storage", "s3://bucket/prefix", "--cache-dir", dir.string(), "--cache-size", "2GiB",
                   "--cache-slice", "256KiB", "--cache-meta-ttl", "1.5", "--cache-stale-limit", "60"});
  o.library.catalog = "sqlite::memory:";
  const auto cfg = valid(o);
  ASSERT_TRUE(cfg.cache);
  EXPECT_EQ(cfg.cache->slices.dir, dir);
  EXPECT_EQ(cfg.cache->slices.capacity_bytes, 2ull << 30);
  EXPECT_EQ(cfg.cache->slices.slice_bytes, 256u << 10);
  EXPECT_EQ(cfg.cache->metadata.ttl, 1500ms);
  EXPECT_EQ(cfg.cache->metadata.stale_limit, 60s);
  EXPECT_EQ(cfg.server.descriptors_per_connection, 4u);  // socket, upstream connection, slice file, +1
  EXPECT_EQ(cfg.server.hls_index_dir, (dir / "hls-index").string());  // HLS indexes kept beside the slices
}

TEST(validate, hls_indexes_stay_in_memory_unless_a_directory_is_given) {
  auto o = parse_serve({"--storage", "s3://bucket"});
  o.library.catalog = "sqlite::memory:";
  EXPECT_EQ(valid(o).server.hls_index_dir, "");
  o = parse_serve({"--storage", "s3://bucket", "--hls-index-dir", "/var/cache/mg-index"});
  o.library.catalog = "sqlite::memory:";
  EXPECT_EQ(valid(o).server.hls_index_dir, "/var/cache/mg-index");
}

TEST(validate, bad_sizes_are_refused_with_the_option_named) {
  const std::string kCacheSizes =
      "--cache-size, --cache-slice, --cache-tail-prefetch and --cache-read-ahead take sizes such as 20GiB or "
      "1MiB";
  serve_options o;
  o.library.catalog = "sqlite::memory:";
  o.cache_dir = (std::filesystem::temp_directory_path() / "mediagate_options_test_cache").string();
  o.cache_slice = "0";
  EXPECT_EQ(rejected(o), kCacheSizes);
  o.cache_slice = "1MiB";
  o.cache_size = "lots";
  EXPECT_EQ(rejected(o), kCacheSizes);
  o.cache_size = "1GiB";
  o.cache_read_ahead = "far";
  EXPECT_EQ(rejected(o), kCacheSizes);
  o.cache_read_ahead = "0";  // off
  EXPECT_EQ(valid(o).cache->slices.read_ahead_bytes, 0u);
  o.cache_read_ahead = "4MiB";
  EXPECT_EQ(valid(o).cache->slices.read_ahead_bytes, 4u << 20);
  o.cache_dir.clear();  // without a cache its sizes are not looked at
  o.max_upload = "big";
  EXPECT_EQ(rejected(o), "--max-upload-bytes takes a size such as 10GiB or 500MB");
}

TEST(validate, a_cache_inside_the_media_directory_is_refused) {
  const auto media = std::filesystem::temp_directory_path() / "mediagate_options_test_media";
  std::filesystem::create_directories(media);
  serve_options o;
  o.storage = media.string();
  o.library.catalog = "sqlite::memory:";
  o.cache_dir = (media / "cache").string();
  EXPECT_TRUE(rejected(o).starts_with("--cache-dir ")) << rejected(o);
  std::filesystem::remove_all(media);
}

TEST(options, out_of_range_values_are_refused_by_the_parser) {
  EXPECT_THROW(parse_serve({"--max-ranges", "0"}), CLI::ValidationError);
  EXPECT_THROW(parse_serve({"--s3-addressing", "sideways"}), CLI::ValidationError);
  EXPECT_THROW(parse_serve({"--header-timeout", "0"}), CLI::ValidationError);
}

}  // namespace
}  // namespace mediagate::app
