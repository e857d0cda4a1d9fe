#include "app/options.hpp"

#include <CLI/CLI.hpp>
#include <filesystem>

#include "app/byte_size.hpp"
#include "cache/cache_dir.hpp"
#include "catalog/catalog.hpp"

namespace mediagate::app {
namespace {

void add_s3_options(CLI::App& cmd, s3_options& o) {
  cmd.add_option("--s3-endpoint", o.endpoint, "S3 endpoint URL (default: AWS for the region)")
      ->envname("AWS_ENDPOINT_URL");
  cmd.add_option("--s3-region", o.region,
                 "S3 region (also AWS_REGION / AWS_DEFAULT_REGION; default us-east-1)");
  cmd.add_option("--s3-addressing", o.addressing, "path or virtual (default: virtual on AWS, path elsewhere)")
      ->check(CLI::IsMember({"path", "virtual"}));
  cmd.add_option("--s3-access-key", o.access_key, "Access key id (else AWS_ACCESS_KEY_ID, ~/.aws files)");
  cmd.add_option("--s3-secret-key", o.secret_key,
                 "Secret access key (else AWS_SECRET_ACCESS_KEY, ~/.aws files)");
  cmd.add_option("--s3-session-token", o.session_token, "Session token for temporary credentials");
  cmd.add_flag("--s3-anonymous", o.anonymous,
               "Send unsigned requests: a public bucket, no credentials looked up");
  cmd.add_option("--s3-ca-file", o.ca_file, "PEM file of extra CAs to trust for an https endpoint")
      ->envname("AWS_CA_BUNDLE");
  cmd.add_flag("--s3-no-verify", o.no_verify, "Do not verify the endpoint's TLS certificate (testing only)");
  cmd.add_option("--s3-connect-to", o.connect_to,
                 "HOST:PORT to connect to instead of the endpoint's address; Host, TLS name and signature "
                 "still use the endpoint (bucket.endpoint when virtual-hosted)");
  cmd.add_option("--s3-idle-connections", o.idle_connections,
                 "Idle connections to S3 kept per event loop for reuse (0: a new connection per request)")
      ->check(CLI::Range(0, 4096))
      ->capture_default_str();
  cmd.add_option("--s3-download-parts", o.download_parts,
                 "S3 connections one download (a GET without Range) may use once the client drains faster "
                 "than one connection delivers (1: always one)")
      ->check(CLI::Range(1, 64))
      ->capture_default_str();
  cmd.add_option("--s3-download-part-size", o.download_part_size,
                 "Size of each part of such a download; memory per download is at most parts x this")
      ->capture_default_str();
  cmd.add_option("--s3-download-memory", o.download_memory,
                 "Memory all downloads' parts may hold together; a part that does not fit is read on its "
                 "download's own connection instead (at least one part size)")
      ->capture_default_str();
  cmd.add_option("--s3-download-after", o.download_after,
                 "Bytes a download reads on one connection before it may use more")
      ->capture_default_str();
  cmd.add_option("--s3-download-slower-than", o.download_slower_than,
                 "Bytes a second one connection must deliver less than for a download to use more (a distant "
                 "store; one close by that is only busy gains nothing from more requests)")
      ->capture_default_str();
  cmd.add_option("--s3-first-read", o.first_read,
                 "A player's cold start of an MP4 (bytes=0-) asks S3 for this many first bytes alone and for "
                 "the rest once half of them are sent: a store that reads a whole stripe before answering "
                 "(Ceph) sends a short range sooner (0: one GET)")
      ->capture_default_str();
  cmd.add_flag("--s3-no-tls-resume", o.no_tls_resume,
               "Do not resume TLS sessions with an https endpoint (a full handshake per new connection)");
  cmd.add_option("--s3-meta-ttl", o.meta_ttl, "Seconds object metadata (HeadObject) is cached")
      ->check(CLI::NonNegativeNumber)
      ->capture_default_str();
}

void add_storage_option(CLI::App& cmd, serve_options& o) {
  cmd.add_option("--storage", o.storage, "Media storage: a directory path, or s3://BUCKET[/PREFIX]")
      ->envname("MEDIAGATE_STORAGE")
      ->capture_default_str();
}

void add_catalog_option(CLI::App& cmd, serve_options& o) {
  cmd.add_option("--catalog", o.library.catalog,
                 "Media catalog: sqlite:PATH (one node), or postgres://USER@HOST:PORT/DB?sslmode=... "
                 "for several nodes that share it (PASSWORD from PGPASSWORD or ~/.pgpass)")
      ->envname("MEDIAGATE_CATALOG")
      ->capture_default_str();
}

void add_log_level_option(CLI::App& cmd, serve_options& o) {
  cmd.add_option("--log-level", o.log_level, "trace, debug, info, warn, error")
      ->envname("MEDIAGATE_LOG_LEVEL")
      ->capture_default_str();
}

// The listening socket and the limits on what a client may send.
void add_listen_options(CLI::App& cmd, serve_options& o) {
  auto& c = o.config;
  cmd.add_option("--listen", o.listen, "Address and port to listen on (HOST:PORT; port 0 picks a free one)")
      ->envname("MEDIAGATE_LISTEN")
      ->capture_default_str();
  add_storage_option(cmd, o);
  cmd.add_option("--threads", c.threads, "Event loops (0: one per core)")
      ->envname("MEDIAGATE_THREADS")
      ->capture_default_str();
  cmd.add_option("--cache-control", c.cache_control, "Cache-Control header of media responses ('' for none)")
      ->capture_default_str();
  add_access_options(cmd, o.access);
  cmd.add_option("--max-ranges", c.max_ranges, "Ranges per request before the whole object is sent instead")
      ->check(CLI::Range(1, 1000))
      ->capture_default_str();
  cmd.add_option("--max-header-bytes", c.max_header_bytes, "Largest request header accepted (else 431)")
      ->check(CLI::Range(1024, 1 << 20))
      ->capture_default_str();
  cmd.add_option("--max-header-fields", c.max_header_fields, "Most request header fields accepted (else 431)")
      ->check(CLI::Range(8, 10000))
      ->capture_default_str();
  cmd.add_option("--max-connections", c.max_connections, "Open client connections before new ones get 503")
      ->envname("MEDIAGATE_MAX_CONNECTIONS")
      ->check(CLI::Range(1, 1000000))
      ->capture_default_str();
  cmd.add_option("--stream-buffer", c.stream_buffer_bytes, "Buffer per stream for non-file storage, bytes")
      ->check(CLI::Range(4096, 16 << 20))
      ->capture_default_str();
  cmd.add_flag("!--s3-no-splice", c.splice,
               "Copy S3 bodies through memory instead of moving them to the client with splice(2)");
}

// Deadlines, the metrics token and the logs.
void add_timeout_options(CLI::App& cmd, serve_options& o) {
  auto& c = o.config;
  cmd.add_option("--header-timeout", o.header_timeout, "Seconds to receive a request header (else 408)")
      ->check(CLI::PositiveNumber)
      ->capture_default_str();
  cmd.add_option("--idle-timeout", o.idle_timeout, "Seconds a keep-alive connection may stay idle")
      ->check(CLI::PositiveNumber)
      ->capture_default_str();
  cmd.add_option("--send-timeout", o.send_timeout, "Seconds a client may take no bytes before it is dropped")
      ->check(CLI::PositiveNumber)
      ->capture_default_str();
  cmd.add_option("--drain-timeout", o.drain_timeout,
                 "Seconds in-flight responses may take to finish after SIGTERM before they are cut")
      ->envname("MEDIAGATE_DRAIN_TIMEOUT")
      ->check(CLI::NonNegativeNumber)
      ->capture_default_str();
  cmd.add_option(
         "--drain-delay", o.drain_delay,
         "Seconds after SIGTERM during which /readyz answers 503 while new connections are still served, "
         "so that a load balancer's health check takes the node out before it stops accepting")
      ->envname("MEDIAGATE_DRAIN_DELAY")
      ->check(CLI::NonNegativeNumber)
      ->capture_default_str();
  cmd.add_option("--metrics-token", c.metrics_token,
                 "Token for /metrics (Authorization: Bearer); without one, only loopback clients may read it")
      ->envname("MEDIAGATE_METRICS_TOKEN");
  cmd.add_option("--access-log", c.access_log, "Access log: '-' for standard output, 'off', or a file path")
      ->envname("MEDIAGATE_ACCESS_LOG")
      ->capture_default_str();
  add_log_level_option(cmd, o);
}

void add_cache_options(CLI::App& cmd, serve_options& o) {
  cmd.add_option("--cache-dir", o.cache_dir,
                 "Directory of the slice cache in front of storage (off when empty)")
      ->envname("MEDIAGATE_CACHE_DIR");
  cmd.add_option("--cache-size", o.cache_size, "Most bytes the slice cache keeps on disk")
      ->envname("MEDIAGATE_CACHE_SIZE")
      ->capture_default_str();
  cmd.add_option("--cache-slice", o.cache_slice,
                 "Slice size: objects are cached in aligned pieces of this size")
      ->envname("MEDIAGATE_CACHE_SLICE")
      ->capture_default_str();
  cmd.add_option(
         "--cache-tail-prefetch", o.cache_tail_prefetch,
         "The first read of an MP4 from its start also asks for its last this many bytes, in parallel, "
         "where the index of a file with the index after the media is (0: off)")
      ->capture_default_str();
  cmd.add_option("--cache-read-ahead", o.cache_read_ahead,
                 "A client reading cached slices has the missing ones among its next this many bytes fetched "
                 "while it drains those it has (0: off)")
      ->capture_default_str();
  cmd.add_option("--cache-meta-ttl", o.cache_meta_ttl,
                 "Seconds cached metadata is used before asking storage again")
      ->check(CLI::NonNegativeNumber)
      ->capture_default_str();
  cmd.add_option("--cache-stale-limit", o.cache_stale_limit,
                 "Seconds cached objects keep being served while storage fails (stale-if-error)")
      ->check(CLI::NonNegativeNumber)
      ->capture_default_str();
}

// HTTPS: the certificate pair, where it is spoken, and redirects from plain HTTP.
void add_tls_options(CLI::App& cmd, serve_options& o) {
  auto& t = o.config.tls;
  cmd.add_option(
         "--tls-cert", t.cert,
         "PEM certificate chain (server certificate first): --listen speaks HTTPS, or --listen-tls does; "
         "reloaded on SIGHUP and when the file changes")
      ->check(CLI::ExistingFile);
  cmd.add_option("--tls-key", t.key, "PEM private key of --tls-cert")->check(CLI::ExistingFile);
  cmd.add_option("--tls-ocsp", t.ocsp,
                 "DER OCSP response stapled for clients that ask (reloaded with the pair)")
      ->check(CLI::ExistingFile);
  cmd.add_option("--listen-tls", o.listen_tls, "HOST:PORT for HTTPS beside a plain HTTP --listen");
  cmd.add_flag("--redirect-http", t.redirect_http,
               "With --listen-tls: the plain --listen answers every request with a redirect to HTTPS");
  cmd.add_option("--tls-reload-interval", o.tls_reload_interval,
                 "Seconds between checks of the certificate files for a change (0: only SIGHUP reloads)")
      ->check(CLI::NonNegativeNumber)
      ->capture_default_str();
  cmd.add_flag("--h2c", o.config.h2.cleartext,
               "Also speak HTTP/2 with prior knowledge (cleartext, no upgrade) on the plain --listen, e.g. "
               "behind a load balancer; HTTPS listeners offer h2 by ALPN in any case");
  cmd.add_option("--h2-max-concurrent-streams", o.config.h2.max_concurrent_streams,
                 "HTTP/2 streams a client may have open on one connection (SETTINGS_MAX_CONCURRENT_STREAMS)")
      ->check(CLI::Range(1u, 100000u))
      ->capture_default_str();
}

// How media are probed (serve and scan alike).
void add_probe_options(CLI::App& cmd, server::library_options& o) {
  cmd.add_option("--probe-timeout", o.probe_timeout,
                 "Seconds one ffprobe/ffmpeg run may take; then its process group is killed and the item is "
                 "marked not probed")
      ->check(CLI::PositiveNumber)
      ->capture_default_str();
  cmd.add_option("--probe-workers", o.probe_workers, "Items probed in parallel")
      ->check(CLI::Range(1, 64))
      ->capture_default_str();
  cmd.add_option("--ffprobe", o.ffprobe, "The ffprobe program (a path, or a name looked up in PATH)")
      ->capture_default_str();
  cmd.add_option("--ffmpeg", o.ffmpeg,
                 "The ffmpeg program, for posters (a path, or a name looked up in PATH)")
      ->capture_default_str();
}

// The catalog, the web page's writes and uploads.
void add_library_options(CLI::App& cmd, serve_options& o) {
  add_catalog_option(cmd, o);
  cmd.add_option("--admin-token", o.library.admin_token,
                 "Token for uploads, renames and deletes (Authorization: Bearer); none: writes disabled")
      ->envname("MEDIAGATE_ADMIN_TOKEN");
  cmd.add_option("--max-upload-bytes", o.max_upload, "Largest upload accepted (else 413)")
      ->envname("MEDIAGATE_MAX_UPLOAD_BYTES")
      ->capture_default_str();
  cmd.add_flag("--scan-on-start", o.scan_on_start, "Index the storage into the catalog at start-up")
      ->envname("MEDIAGATE_SCAN_ON_START");
  add_probe_options(cmd, o.library);
}

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

std::chrono::milliseconds from_seconds(double seconds) {
  return std::chrono::milliseconds(static_cast<long>(seconds * 1000));
}

// Checks the TLS options and fills the --listen-tls address; the problem, if any.
std::optional<std::string> tls_problem(const serve_options& o, server::server_config& cfg) {
  auto& t = cfg.tls;
  if (t.cert.empty() != t.key.empty()) return "--tls-cert and --tls-key go together";
  if (t.cert.empty() && (!o.listen_tls.empty() || !t.ocsp.empty() || t.redirect_http))
    return "--listen-tls, --tls-ocsp and --redirect-http need --tls-cert and --tls-key";
  if (t.redirect_http && o.listen_tls.empty())
    return "--redirect-http needs --listen-tls (the plain --listen then redirects to it)";
  if (!o.listen_tls.empty()) {
    server::server_config tls_address;
    if (!parse_listen(o.listen_tls, tls_address))
      return "--listen-tls must be HOST:PORT, got '" + o.listen_tls + "'";
    t.separate_listener = true;
    t.listen_host = tls_address.listen_host;
    t.listen_port = tls_address.listen_port;
  }
  t.handshake_timeout = from_seconds(o.header_timeout);
  t.reload_poll = from_seconds(o.tls_reload_interval);
  return std::nullopt;
}

// Why DIR (--cache-dir, or --hls-index-dir named by `option`) may not be used beside this storage and
// catalog (see cache::placement_problem), if so.
std::optional<std::string> cache_dir_problem(const serve_options& o, const std::string& dir,
                                             std::string_view option) {
  std::optional<std::filesystem::path> media, catalog_file;
  if (!o.storage.starts_with("s3://")) media = cache::resolve_for_comparison(o.storage);
  if (auto path = catalog::sqlite_path_from_url(o.library.catalog); path && *path != ":memory:")
    catalog_file = cache::resolve_for_comparison(*path);
  return cache::placement_problem(cache::resolve_for_comparison(dir), media, catalog_file, option);
}

std::optional<cache_settings> parse_cache_settings(const serve_options& o) {
  cache_settings cache;
  cache.slices.dir = o.cache_dir;
  auto size = parse_byte_size(o.cache_size), slice = parse_byte_size(o.cache_slice);
  auto tail = parse_byte_size(o.cache_tail_prefetch), ahead = parse_byte_size(o.cache_read_ahead);
  if (!size || !slice || *slice == 0 || !tail || !ahead) return std::nullopt;
  cache.slices.tail_prefetch_bytes = *tail;
  cache.slices.read_ahead_bytes = *ahead;
  cache.slices.capacity_bytes = *size;
  cache.slices.slice_bytes = *slice;
  cache.metadata.ttl = from_seconds(o.cache_meta_ttl);
  cache.metadata.stale_limit = from_seconds(o.cache_stale_limit);
  return cache;
}

}  // namespace

void add_serve_options(CLI::App& cmd, serve_options& o) {
  add_listen_options(cmd, o);
  add_timeout_options(cmd, o);
  add_s3_options(cmd, o.s3);
  add_cache_options(cmd, o);
  cmd.add_option("--hls-segment", o.config.hls_segment_seconds,
                 "Target length in seconds of HLS/DASH segments (each is cut at the next keyframe)")
      ->envname("MEDIAGATE_HLS_SEGMENT")
      ->check(CLI::Range(1.0, 60.0))
      ->capture_default_str();
  cmd.add_option("--hls-index-dir", o.config.hls_index_dir,
                 "Directory of the MP4 indexes kept across restarts (default: hls-index under --cache-dir; "
                 "without either, indexes are kept in memory only)")
      ->envname("MEDIAGATE_HLS_INDEX_DIR");
  add_library_options(cmd, o);
  add_tls_options(cmd, o);
}

void add_scan_options(CLI::App& cmd, serve_options& o) {
  add_storage_option(cmd, o);
  add_catalog_option(cmd, o);
  add_log_level_option(cmd, o);
  add_s3_options(cmd, o.s3);
  add_probe_options(cmd, o.library);
}

void add_ls_options(CLI::App& cmd, ls_options& o) {
  cmd.add_option("location", o.location, "s3://BUCKET[/PREFIX] or a directory")->required();
  add_s3_options(cmd, o.s3);
}

void add_put_options(CLI::App& cmd, put_options& o) {
  cmd.add_option("file", o.file, "Local file")->required()->check(CLI::ExistingFile);
  cmd.add_option("destination", o.destination, "s3://BUCKET/KEY")->required();
  cmd.add_option("--content-type", o.content_type, "Stored Content-Type (default: from the extension)");
  add_s3_options(cmd, o.s3);
}

std::variant<serve_config, std::string> validate(const serve_options& o) {
  serve_config cfg;
  cfg.server = o.config;
  if (auto problem = apply_access_options(o.access, cfg.server); !problem.empty()) return problem;
  if (!parse_listen(o.listen, cfg.server)) return "--listen must be HOST:PORT, got '" + o.listen + "'";
  if (auto problem = tls_problem(o, cfg.server)) return *problem;
  // Before anything touches a disk: a cache overlapping the media or the catalog is refused outright.
  if (!o.cache_dir.empty())
    if (auto problem = cache_dir_problem(o, o.cache_dir, "--cache-dir")) return *problem;
  if (!o.config.hls_index_dir.empty())
    if (auto problem = cache_dir_problem(o, o.config.hls_index_dir, "--hls-index-dir")) return *problem;
  cfg.server.header_timeout = from_seconds(o.header_timeout);
  cfg.server.idle_timeout = from_seconds(o.idle_timeout);
  cfg.server.send_timeout = from_seconds(o.send_timeout);
  cfg.server.drain_timeout = from_seconds(o.drain_timeout);
  cfg.server.drain_delay = from_seconds(o.drain_delay);
  // HLS/DASH segments from S3: the runs of one segment in few GETs (within 10% more bytes than its samples),
  // up to 4 of them in flight.
  if (o.storage.starts_with("s3://")) {
    cfg.server.hls_read_gap = 1ull << 20;
    cfg.server.hls_read_parallel = 4;
  }
  // S3 streams hold an upstream connection beside the client's, and cached ones a slice file; uncached ones
  // a pipe for splice (two).
  const bool s3 = o.storage.starts_with("s3://");
  cfg.server.descriptors_per_connection = (s3 ? 2 : 1) + 1 + (o.cache_dir.empty() ? 0 : 1) +
                                          (s3 && o.cache_dir.empty() && cfg.server.splice ? 2 : 0);
  if (cfg.server.hls_index_dir.empty() && !o.cache_dir.empty())
    cfg.server.hls_index_dir = (std::filesystem::path(o.cache_dir) / "hls-index").string();
  if (!o.cache_dir.empty()) {
    cfg.cache = parse_cache_settings(o);
    if (!cfg.cache)
      return std::string(
          "--cache-size, --cache-slice, --cache-tail-prefetch and --cache-read-ahead take sizes such "
          "as 20GiB or 1MiB");
  }
  cfg.library = o.library;
  if (auto max = parse_byte_size(o.max_upload)) {
    cfg.library.max_upload_bytes = *max;
  } else {
    return std::string("--max-upload-bytes takes a size such as 10GiB or 500MB");
  }
  cfg.storage = o.storage;
  cfg.s3 = o.s3;
  cfg.scan_on_start = o.scan_on_start;
  cfg.scan_only = o.scan_only;
  return cfg;
}

}  // namespace mediagate::app
