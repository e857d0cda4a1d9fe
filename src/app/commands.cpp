#include "app/commands.hpp"

#include <spdlog/sinks/basic_file_sink.h>
#include <spdlog/sinks/stdout_sinks.h>
#include <spdlog/spdlog.h>

#include <CLI/CLI.hpp>
#include <cstdio>
#include <filesystem>
#include <memory>
#include <optional>
#include <thread>
#include <variant>

#include <boost/asio/co_spawn.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/use_future.hpp>
#include <fstream>

#include "app/access_options.hpp"
#include "app/byte_size.hpp"
#include "app/reopenable_sink.hpp"
#include "cache/cache_dir.hpp"
#include "cache/cached_storage.hpp"
#include "cache/metadata_cache.hpp"
#include "cache/slice_cache.hpp"
#include "catalog/catalog.hpp"
#include "catalog/library.hpp"
#include "http/content_type.hpp"
#include "s3/credential_providers.hpp"
#include "s3/credentials.hpp"
#include "s3/s3_client.hpp"
#include "s3/upload.hpp"
#include "server/api_setup.hpp"
#include "server/server.hpp"
#include "storage/local_storage.hpp"
#include "storage/s3_storage.hpp"
#include "storage/upload_temp.hpp"

namespace mediagate::app {
namespace {

int g_exit_code = 0;  // set by the subcommand that ran; read once by main

namespace net = boost::asio;

// S3 connection options shared by serve, ls and put; each falls back to the AWS environment variables.
struct s3_options {
  std::string endpoint, region, addressing, access_key, secret_key, session_token, ca_file;
  bool no_verify = false, anonymous = false;
  double meta_ttl = 5;

  void add_to(CLI::App& cmd) {
    cmd.add_option("--s3-endpoint", endpoint, "S3 endpoint URL (default: AWS for the region)")
        ->envname("AWS_ENDPOINT_URL");
    cmd.add_option("--s3-region", region, "S3 region (also AWS_REGION / AWS_DEFAULT_REGION; default us-east-1)");
    cmd.add_option("--s3-addressing", addressing, "path or virtual (default: virtual on AWS, path elsewhere)")
        ->check(CLI::IsMember({"path", "virtual"}));
    cmd.add_option("--s3-access-key", access_key, "Access key id (else AWS_ACCESS_KEY_ID, ~/.aws files)");
    cmd.add_option("--s3-secret-key", secret_key, "Secret access key (else AWS_SECRET_ACCESS_KEY, ~/.aws files)");
    cmd.add_option("--s3-session-token", session_token, "Session token for temporary credentials");
    cmd.add_flag("--s3-anonymous", anonymous, "Send unsigned requests: a public bucket, no credentials looked up");
    cmd.add_option("--s3-ca-file", ca_file, "PEM file of extra CAs to trust for an https endpoint");
    cmd.add_flag("--s3-no-verify", no_verify, "Do not verify the endpoint's TLS certificate (testing only)");
    cmd.add_option("--s3-meta-ttl", meta_ttl, "Seconds object metadata (HeadObject) is cached")
        ->check(CLI::NonNegativeNumber)
        ->capture_default_str();
  }
};

// Everything a storage backend needs, resolved once at start-up.
struct s3_setup {
  s3::client_settings settings;
  std::shared_ptr<s3::credentials_provider> creds;
  std::shared_ptr<s3::client_counters> counters = std::make_shared<s3::client_counters>();
  storage::s3_location where;
  std::chrono::milliseconds meta_ttl{5000};
};

// Resolves options, environment and shared files into an S3 setup, or a message saying what is missing.
std::variant<s3_setup, std::string> resolve_s3(const s3_options& o, const std::string& url) {
  s3_setup setup;
  auto where = storage::parse_s3_url(url);
  if (!where) return "not an S3 location (want s3://BUCKET[/PREFIX]): " + url;
  setup.where = *where;
  if (o.access_key.empty() != o.secret_key.empty())
    return std::string("--s3-access-key and --s3-secret-key go together: give both or neither");
  if (o.anonymous && !o.access_key.empty())
    return std::string("--s3-anonymous sends unsigned requests: it does not go with --s3-access-key");
  auto env = s3::process_env();
  std::optional<s3::resolved_credentials> resolved;
  if (!o.anonymous) resolved = s3::resolve_static_credentials({o.access_key, o.secret_key, o.session_token}, env);
  auto& st = setup.settings;
  st.region = !o.region.empty()                      ? o.region
              : env("AWS_REGION")                     ? *env("AWS_REGION")
              : env("AWS_DEFAULT_REGION")             ? *env("AWS_DEFAULT_REGION")
              : resolved && !resolved->region.empty() ? resolved->region
                                                      : "us-east-1";
  st.anonymous = o.anonymous;  // unsigned requests: no credentials are looked up (resolved stays empty)
  if (resolved) {
    setup.creds = s3::static_provider(resolved->creds);
  } else if (!o.anonymous) {
    // Temporary credentials: web identity (IRSA), then the instance metadata service (IMDSv2).
    auto token_file = env("AWS_WEB_IDENTITY_TOKEN_FILE"), role = env("AWS_ROLE_ARN");
    const bool imds_off = env("AWS_EC2_METADATA_DISABLED").value_or("") == "true";
    try {
      if (token_file && role) {
        const auto sts = env("AWS_ENDPOINT_URL_STS").value_or("https://sts." + st.region + ".amazonaws.com");
        setup.creds = std::make_shared<s3::refreshing_provider>(
            s3::web_identity_fetch(sts, *role, *token_file, env("AWS_ROLE_SESSION_NAME").value_or("mediagate")),
            "web identity");
      } else if (!imds_off) {
        setup.creds = std::make_shared<s3::refreshing_provider>(
            s3::imds_fetch(env("AWS_EC2_METADATA_SERVICE_ENDPOINT").value_or("http://169.254.169.254")),
            "instance metadata");
      }
    } catch (const std::exception& e) {
      return std::string("no S3 credentials: ") + e.what() +
             " (pass --s3-access-key/--s3-secret-key, set AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY, or configure a "
             "profile in ~/.aws/credentials)";
    }
    if (!setup.creds)
      return std::string("no S3 credentials found: pass --s3-access-key/--s3-secret-key, set AWS_ACCESS_KEY_ID and "
                         "AWS_SECRET_ACCESS_KEY, or configure a profile in ~/.aws/credentials (AWS_PROFILE)");
  }
  std::string endpoint = !o.endpoint.empty() ? o.endpoint : env("AWS_ENDPOINT_URL_S3").value_or("");
  const bool aws = endpoint.empty();
  if (aws) endpoint = "https://s3." + st.region + ".amazonaws.com";
  auto ep = s3::parse_endpoint(endpoint);
  if (!ep) return "not an endpoint URL (want http[s]://HOST[:PORT]): " + endpoint;
  st.ep = *ep;
  st.bucket = where->bucket;
  st.path_style = o.addressing.empty() ? !aws : o.addressing == "path";
  st.ca_file = o.ca_file;
  st.verify_tls = !o.no_verify;
  setup.meta_ttl = std::chrono::milliseconds(static_cast<long>(o.meta_ttl * 1000));
  return setup;
}

// Runs one coroutine to completion on a private event loop (the CLI's one-shot commands).
template <class T>
T run_sync(std::function<net::awaitable<T>(net::io_context&)> body) {
  net::io_context io;
  auto future = net::co_spawn(io, body(io), net::use_future);
  io.run();
  return future.get();
}

std::shared_ptr<s3::client> make_client(net::io_context& io, const s3_setup& setup) {
  return std::make_shared<s3::client>(io.get_executor(), setup.settings, setup.creds, setup.counters);
}

struct serve_options {
  server::server_config config;
  std::string listen = "127.0.0.1:8080";
  std::string storage = "./media";
  double header_timeout = 10, idle_timeout = 60, send_timeout = 60, drain_timeout = 30;
  std::string log_level = "info";
  s3_options s3;
  std::string cache_dir, cache_size = "20GiB", cache_slice = "1MiB";
  double cache_meta_ttl = 5, cache_stale_limit = 3600;
  server::library_options library;
  access_options access;
  std::string max_upload = "10GiB";
  bool scan_on_start = false;
  bool scan_only = false;  // `mediagate scan`: index the storage through a private server, then exit
};

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

// The access log, passed to the server (not registered globally); null when off. A file is reopened on SIGHUP
// through `reopen`.
std::shared_ptr<spdlog::logger> make_access_logger(const std::string& target, std::function<void()>& reopen) {
  if (target == "off") return nullptr;
  spdlog::sink_ptr sink;
  if (target == "-") {
    sink = std::make_shared<spdlog::sinks::stdout_sink_mt>();
  } else {
    auto file = std::make_shared<reopenable_file_sink>(target);
    reopen = [file] { file->reopen(); };
    sink = file;
  }
  auto access = std::make_shared<spdlog::logger>("access", std::move(sink));
  access->set_pattern("%Y-%m-%dT%H:%M:%S.%e%z %v");
  access->flush_on(spdlog::level::info);
  return access;
}

// Why --cache-dir may not be used beside this storage and catalog (see cache::placement_problem), if so.
std::optional<std::string> cache_dir_problem(const serve_options& o) {
  std::optional<std::filesystem::path> media, catalog_file;
  if (!o.storage.starts_with("s3://")) media = cache::resolve_for_comparison(o.storage);
  if (auto path = catalog::sqlite_path_from_url(o.library.catalog); path && *path != ":memory:")
    catalog_file = cache::resolve_for_comparison(*path);
  return cache::placement_problem(cache::resolve_for_comparison(o.cache_dir), media, catalog_file);
}

// A crash mid-upload leaves a hidden temporary file beside its target: remove those that are provably ours
// and idle for an hour (a running upload writes continuously).
void remove_stale_uploads(const std::filesystem::path& root, spdlog::logger& log) {
  const auto report = storage::remove_stale_upload_temps(root, std::chrono::system_clock::now(), std::chrono::hours(1));
  if (report.removed > 0)
    log.info("removed {} unfinished upload files left in {} by an earlier run", report.removed, root.string());
  if (report.recent > 0)
    log.info("kept {} recent upload temporary files in {} (perhaps uploads in progress)", report.recent,
             root.string());
}

int run_serve(serve_options& o) {
  auto log = make_logger(o.log_level);
  if (auto problem = apply_access_options(o.access, o.config); !problem.empty()) {
    log->error("{}", problem);
    return 2;
  }
  if (!parse_listen(o.listen, o.config)) {
    log->error("--listen must be HOST:PORT, got '{}'", o.listen);
    return 2;
  }
  // Before anything touches a disk: a cache overlapping the media or the catalog is refused outright.
  if (auto problem = o.cache_dir.empty() ? std::nullopt : cache_dir_problem(o)) {
    log->error("{}", *problem);
    return 2;
  }
  o.config.header_timeout = std::chrono::milliseconds(static_cast<long>(o.header_timeout * 1000));
  o.config.idle_timeout = std::chrono::milliseconds(static_cast<long>(o.idle_timeout * 1000));
  o.config.send_timeout = std::chrono::milliseconds(static_cast<long>(o.send_timeout * 1000));
  o.config.drain_timeout = std::chrono::milliseconds(static_cast<long>(o.drain_timeout * 1000));
  // S3 streams hold an upstream connection beside the client's, and cached ones a slice file.
  o.config.descriptors_per_connection = (o.storage.starts_with("s3://") ? 2 : 1) + 1 + (o.cache_dir.empty() ? 0 : 1);
  server::storage_factory factory;
  std::shared_ptr<s3::client_counters> s3_counters;
  try {
    if (o.storage.starts_with("s3://")) {
      auto resolved = resolve_s3(o.s3, o.storage);
      if (auto* message = std::get_if<std::string>(&resolved)) {
        log->error("{}", *message);
        return 2;
      }
      auto setup = std::get<s3_setup>(resolved);
      // Fail fast with a clear reason when the bucket cannot be read (unknown bucket, bad credentials, down).
      auto problem = run_sync<std::optional<storage::error>>([&](net::io_context& io) {
        auto probe = std::make_shared<storage::s3_storage>(make_client(io, setup), setup.where, setup.meta_ttl);
        return [](std::shared_ptr<storage::s3_storage> p) -> net::awaitable<std::optional<storage::error>> {
          co_return co_await p->check_access();
        }(probe);
      });
      if (problem && o.s3.anonymous && problem->code == storage::errc::upstream_rejected) {
        // Public buckets often allow GetObject to everyone but not ListBucket: serve, without a library scan.
        log->warn("{}: the bucket cannot be listed anonymously ({}); objects are served by key, the library "
                  "cannot be scanned",
                  o.storage, problem->message);
      } else if (problem) {
        log->error("cannot use {}: {}", o.storage, problem->message);
        return 1;
      }
      s3_counters = setup.counters;
      // With the slice cache in front, metadata is cached (and revalidated) there, once for all loops.
      if (!o.cache_dir.empty()) setup.meta_ttl = std::chrono::milliseconds(0);
      factory = [setup](net::io_context& io) -> std::shared_ptr<storage::storage> {
        return std::make_shared<storage::s3_storage>(make_client(io, setup), setup.where, setup.meta_ttl);
      };
      log->info("serving s3://{}/{} from {}", setup.where.bucket, setup.where.prefix, setup.settings.ep.host_header());
    } else {
    auto local = std::make_shared<storage::local_storage>(o.storage);
    factory = [local](boost::asio::io_context&) { return local; };
    log->info("serving {}", local->describe());
    remove_stale_uploads(local->root(), *log);
    }
  } catch (const std::exception& e) {
    log->error("{}", e.what());
    return 1;
  }
  std::shared_ptr<cache::slice_cache> slices;
  if (!o.cache_dir.empty()) {
    cache::cache_config cc;
    cc.dir = o.cache_dir;
    auto size = app::parse_byte_size(o.cache_size), slice = app::parse_byte_size(o.cache_slice);
    if (!size || !slice || *slice == 0) {
      log->error("--cache-size and --cache-slice take sizes such as 20GiB or 1MiB");
      return 2;
    }
    cc.capacity_bytes = *size;
    cc.slice_bytes = *slice;
    cache::metadata_cache_config mc;
    mc.ttl = std::chrono::milliseconds(static_cast<long>(o.cache_meta_ttl * 1000));
    mc.stale_limit = std::chrono::milliseconds(static_cast<long>(o.cache_stale_limit * 1000));
    auto metadata = std::make_shared<cache::metadata_cache>(mc);
    try {
      slices = std::make_shared<cache::slice_cache>(cc, log);
    } catch (const std::exception& e) {
      log->error("cannot use --cache-dir {}: {}", o.cache_dir, e.what());
      return 1;
    }
    factory = [inner = factory, slices, metadata, log](net::io_context& io) -> std::shared_ptr<storage::storage> {
      return std::make_shared<cache::cached_storage>(slices, metadata, inner(io), log);
    };
  }
  std::function<void()> reopen_logs;
  std::shared_ptr<spdlog::logger> access_log;
  try {
    access_log = make_access_logger(o.config.access_log, reopen_logs);
  } catch (const std::exception& e) {
    log->error("cannot open the access log {}: {}", o.config.access_log, e.what());
    return 1;
  }
  std::shared_ptr<server::api_services> api;
  if (auto max = app::parse_byte_size(o.max_upload)) {
    o.library.max_upload_bytes = *max;
  } else {
    log->error("--max-upload-bytes takes a size such as 10GiB or 500MB");
    return 2;
  }
  try {
    api = server::make_api(o.library, factory, log);
  } catch (const std::exception& e) {
    log->error("cannot use the catalog: {}", e.what());
    return 1;
  }
  try {
    server::server srv(o.config, factory, log, access_log);
    if (s3_counters) srv.add_metrics_source([s3_counters] { return s3_counters->render(); });
    if (slices) srv.add_metrics_source([slices] { return slices->render_metrics(); });
    srv.set_api(api);
    if (reopen_logs) srv.on_reload(reopen_logs);
    const auto port = srv.bind();
    server::start_library(*api, o.config.listen_host, port, o.scan_on_start || o.scan_only);
    std::thread scan_waiter;
    if (o.scan_only) {
      scan_waiter = std::thread([&] {
        auto report = api->lib->wait_idle();
        if (report)
          std::printf("scan: %zu added, %zu changed, %zu missing, %zu unchanged\n", report->added, report->updated,
                      report->missing, report->unchanged);
        else
          g_exit_code = 1;
        srv.stop();
      });
    } else {
      std::printf("mediagate listening on http://%s:%u/\n", o.config.listen_host.c_str(), port);
    }
    std::fflush(stdout);
    srv.run();
    if (scan_waiter.joinable()) scan_waiter.join();
    api->lib->stop();
  } catch (const std::exception& e) {
    log->error("cannot serve: {}", e.what());
    return 1;
  }
  return o.scan_only ? g_exit_code : 0;
}

int run_ls(const std::string& location, const s3_options& o) {
  storage::result<std::vector<storage::listed_object>> listing = storage::error{};
  if (location.starts_with("s3://")) {
    auto resolved = resolve_s3(o, location);
    if (auto* message = std::get_if<std::string>(&resolved)) {
      std::fprintf(stderr, "mediagate: %s\n", message->c_str());
      return 2;
    }
    auto setup = std::get<s3_setup>(resolved);
    listing = run_sync<storage::result<std::vector<storage::listed_object>>>([&](net::io_context& io) {
      auto store = std::make_shared<storage::s3_storage>(make_client(io, setup), setup.where, setup.meta_ttl);
      return [](std::shared_ptr<storage::s3_storage> s) -> net::awaitable<storage::result<std::vector<storage::listed_object>>> {
        co_return co_await s->list("");
      }(store);
    });
  } else {
    try {
      auto store = std::make_shared<storage::local_storage>(location);
      listing = run_sync<storage::result<std::vector<storage::listed_object>>>(
          [&](net::io_context&) { return store->list(""); });
    } catch (const std::exception& e) {
      std::fprintf(stderr, "mediagate: %s\n", e.what());
      return 1;
    }
  }
  if (!listing) {
    std::fprintf(stderr, "mediagate: cannot list %s: %s\n", location.c_str(), listing.err().message.c_str());
    return 1;
  }
  for (const auto& o : *listing) std::printf("%12llu  %s\n", static_cast<unsigned long long>(o.size), o.key.c_str());
  return 0;
}

int run_put(const std::string& file, const std::string& destination, std::string content_type, const s3_options& o) {
  auto resolved = resolve_s3(o, destination);
  if (auto* message = std::get_if<std::string>(&resolved)) {
    std::fprintf(stderr, "mediagate: %s\n", message->c_str());
    return 2;
  }
  auto setup = std::get<s3_setup>(resolved);
  if (setup.where.prefix.size() <= 1) {
    std::fprintf(stderr, "mediagate: the destination must name a key: s3://BUCKET/KEY\n");
    return 2;
  }
  const auto key = setup.where.prefix.substr(0, setup.where.prefix.size() - 1);
  if (content_type.empty()) content_type = std::string(http::content_type_for_key(key));
  auto in = std::make_shared<std::ifstream>(file, std::ios::binary);
  if (!*in) {
    std::fprintf(stderr, "mediagate: cannot read %s\n", file.c_str());
    return 1;
  }
  auto uploaded = run_sync<storage::result<s3::upload_result>>([&](net::io_context& io) {
    auto client = make_client(io, setup);
    body_source source = [in](std::span<char> buf) -> net::awaitable<storage::result<std::size_t>> {
      in->read(buf.data(), static_cast<std::streamsize>(buf.size()));
      if (in->bad()) co_return storage::error{storage::errc::io_error, "reading the file failed"};
      co_return static_cast<std::size_t>(in->gcount());
    };
    return [](std::shared_ptr<s3::client> c, std::string k, std::string t,
              body_source src) -> net::awaitable<storage::result<s3::upload_result>> {
      co_return co_await s3::upload_object(*c, k, t, src);
    }(client, key, content_type, source);
  });
  if (!uploaded) {
    std::fprintf(stderr, "mediagate: upload of %s failed: %s\n", file.c_str(), uploaded.err().message.c_str());
    return 1;
  }
  std::printf("uploaded %s to s3://%s/%s (%llu bytes, ETag %s)\n", file.c_str(), setup.where.bucket.c_str(),
              key.c_str(), static_cast<unsigned long long>(uploaded->size), uploaded->etag.c_str());
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
  add_access_options(*serve, opts->access);
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
  serve->add_option("--drain-timeout", opts->drain_timeout,
                    "Seconds in-flight responses may take to finish after SIGTERM before they are cut")
      ->check(CLI::NonNegativeNumber)
      ->capture_default_str();
  serve->add_option("--metrics-token", c.metrics_token,
                    "Token for /metrics (Authorization: Bearer); without one, only loopback clients may read it")
      ->envname("MEDIAGATE_METRICS_TOKEN");
  serve->add_option("--access-log", c.access_log, "Access log: '-' for standard output, 'off', or a file path")
      ->capture_default_str();
  serve->add_option("--log-level", opts->log_level, "trace, debug, info, warn, error")->capture_default_str();
  opts->s3.add_to(*serve);
  serve->add_option("--cache-dir", opts->cache_dir, "Directory of the slice cache in front of storage (off when empty)")
      ->envname("MEDIAGATE_CACHE_DIR");
  serve->add_option("--cache-size", opts->cache_size, "Most bytes the slice cache keeps on disk")->capture_default_str();
  serve->add_option("--cache-slice", opts->cache_slice, "Slice size: objects are cached in aligned pieces of this size")
      ->capture_default_str();
  serve->add_option("--cache-meta-ttl", opts->cache_meta_ttl, "Seconds cached metadata is used before asking storage again")
      ->check(CLI::NonNegativeNumber)
      ->capture_default_str();
  serve->add_option("--cache-stale-limit", opts->cache_stale_limit,
                    "Seconds cached objects keep being served while storage fails (stale-if-error)")
      ->check(CLI::NonNegativeNumber)
      ->capture_default_str();
  serve->add_option("--catalog", opts->library.catalog, "Media catalog: sqlite:PATH")
      ->envname("MEDIAGATE_CATALOG")
      ->capture_default_str();
  serve->add_option("--admin-token", opts->library.admin_token,
                    "Token for uploads, renames and deletes (Authorization: Bearer); none: writes disabled")
      ->envname("MEDIAGATE_ADMIN_TOKEN");
  serve->add_option("--max-upload-bytes", opts->max_upload, "Largest upload accepted (else 413)")->capture_default_str();
  serve->add_flag("--scan-on-start", opts->scan_on_start, "Index the storage into the catalog at start-up");
  add_probe_options(*serve, opts->library);
  serve->callback([opts] { g_exit_code = run_serve(*opts); });

  auto scan_opts = std::make_shared<serve_options>();
  auto* scan = app.add_subcommand("scan", "Index the storage into the catalog: add new objects, mark vanished ones "
                                          "missing, re-probe changed ones; then exit");
  scan->add_option("--storage", scan_opts->storage, "Media storage: a directory path, or s3://BUCKET[/PREFIX]")
      ->envname("MEDIAGATE_STORAGE")
      ->capture_default_str();
  scan->add_option("--catalog", scan_opts->library.catalog, "Media catalog: sqlite:PATH")
      ->envname("MEDIAGATE_CATALOG")
      ->capture_default_str();
  scan->add_option("--log-level", scan_opts->log_level, "trace, debug, info, warn, error")->capture_default_str();
  scan_opts->s3.add_to(*scan);
  add_probe_options(*scan, scan_opts->library);
  scan->callback([scan_opts] {
    // Probes read the media over HTTP, so the scan runs a private server on a free loopback port.
    scan_opts->scan_only = true;
    scan_opts->listen = "127.0.0.1:0";
    scan_opts->config.threads = 1;
    scan_opts->config.access_log = "off";
    g_exit_code = run_serve(*scan_opts);
  });

  auto ls = std::make_shared<std::pair<std::string, s3_options>>();
  auto* ls_cmd = app.add_subcommand("ls", "List the objects under s3://BUCKET[/PREFIX] or in a directory");
  ls_cmd->add_option("location", ls->first, "s3://BUCKET[/PREFIX] or a directory")->required();
  ls->second.add_to(*ls_cmd);
  ls_cmd->callback([ls] { g_exit_code = run_ls(ls->first, ls->second); });

  auto put = std::make_shared<std::tuple<std::string, std::string, std::string, s3_options>>();
  auto* put_cmd = app.add_subcommand("put", "Upload FILE to s3://BUCKET/KEY (multipart for large files)");
  put_cmd->add_option("file", std::get<0>(*put), "Local file")->required()->check(CLI::ExistingFile);
  put_cmd->add_option("destination", std::get<1>(*put), "s3://BUCKET/KEY")->required();
  put_cmd->add_option("--content-type", std::get<2>(*put), "Stored Content-Type (default: from the extension)");
  std::get<3>(*put).add_to(*put_cmd);
  put_cmd->callback([put] { g_exit_code = run_put(std::get<0>(*put), std::get<1>(*put), std::get<2>(*put), std::get<3>(*put)); });
}

int exit_code() { return g_exit_code; }

}  // namespace mediagate::app
