#include "app/storage_setup.hpp"

#include <filesystem>
#include <optional>
#include <tuple>

#include "app/byte_size.hpp"
#include "app/run_sync.hpp"
#include "cache/cached_storage.hpp"
#include "cache/metadata_cache.hpp"
#include "cache/slice_cache.hpp"
#include "s3/credential_providers.hpp"
#include "s3/credentials.hpp"
#include "storage/local_storage.hpp"
#include "storage/upload_temp.hpp"

namespace mediagate::app {
namespace {

namespace net = boost::asio;

// Fails fast with a clear reason when the bucket cannot be read (unknown bucket, bad credentials, down).
std::optional<setup_failure> check_s3_access(const serve_config& cfg, const s3_setup& setup,
                                             spdlog::logger& log) {
  auto problem = run_sync<std::optional<storage::error>>([&](net::io_context& io) {
    auto probe = std::make_shared<storage::s3_storage>(make_client(io, setup), setup.where, setup.meta_ttl);
    return [](std::shared_ptr<storage::s3_storage> p) -> net::awaitable<std::optional<storage::error>> {
      co_return co_await p->check_access();
    }(probe);
  });
  if (problem && cfg.s3.anonymous && problem->code == storage::errc::upstream_rejected) {
    // Public buckets often allow GetObject to everyone but not ListBucket: serve, without a library scan.
    log.warn(
        "{}: the bucket cannot be listed anonymously ({}); objects are served by key, the library "
        "cannot be scanned",
        cfg.storage, problem->message);
  } else if (problem) {
    return setup_failure{1, "cannot use " + cfg.storage + ": " + problem->message};
  }
  return std::nullopt;
}

std::variant<storage_setup, setup_failure> open_s3(const serve_config& cfg, spdlog::logger& log) {
  auto resolved = resolve_s3(cfg.s3, cfg.storage);
  if (auto* message = std::get_if<std::string>(&resolved)) return setup_failure{2, *message};
  auto setup = std::get<s3_setup>(resolved);
  if (auto failure = check_s3_access(cfg, setup, log)) return *failure;
  // With the slice cache in front, metadata is cached (and revalidated) there, once for all loops.
  if (cfg.cache) setup.meta_ttl = std::chrono::milliseconds(0);
  storage_setup opened;
  auto ends =
      std::make_shared<storage::s3_ends>(storage::s3_storage::kEndBytes, storage::s3_storage::kEndBytes);
  opened.factory = [setup, changes = opened.changes,
                    ends](net::io_context& io) -> std::shared_ptr<storage::storage> {
    auto s3 = std::make_shared<storage::s3_storage>(make_client(io, setup), setup.where, setup.meta_ttl, 3,
                                                    changes);
    s3->set_download(setup.download);
    s3->set_first_read(setup.first_read);
    s3->set_ends(ends);
    return s3;
  };
  opened.metrics.push_back([counters = setup.counters] { return counters->render(); });
  opened.metrics.push_back([budget = setup.download.budget] { return budget->render_metrics(); });
  log.info("serving s3://{}/{} from {}", setup.where.bucket, setup.where.prefix,
           setup.settings.ep.host_header());
  return opened;
}

// A crash mid-upload leaves a hidden temporary file beside its target: remove those that are provably ours
// and idle for an hour (a running upload writes continuously).
void remove_stale_uploads(const std::filesystem::path& root, spdlog::logger& log) {
  const auto report =
      storage::remove_stale_upload_temps(root, std::chrono::system_clock::now(), std::chrono::hours(1));
  if (report.removed > 0)
    log.info("removed {} unfinished upload files left in {} by an earlier run", report.removed,
             root.string());
  if (report.recent > 0)
    log.info("kept {} recent upload temporary files in {} (perhaps uploads in progress)", report.recent,
             root.string());
}

storage_setup open_local(const serve_config& cfg, spdlog::logger& log) {
  auto local = std::make_shared<storage::local_storage>(cfg.storage);
  storage_setup opened;
  opened.factory = [local](net::io_context&) { return local; };
  log.info("serving {}", local->describe());
  remove_stale_uploads(local->root(), log);
  return opened;
}

// Puts the slice cache in front of `opened`'s storage.
std::optional<setup_failure> add_slice_cache(storage_setup& opened, const cache_settings& settings,
                                             const std::shared_ptr<spdlog::logger>& log) {
  auto metadata = std::make_shared<cache::metadata_cache>(settings.metadata);
  std::shared_ptr<cache::slice_cache> slices;
  try {
    slices = std::make_shared<cache::slice_cache>(settings.slices, log);
  } catch (const std::exception& e) {
    return setup_failure{1, "cannot use --cache-dir " + settings.slices.dir.string() + ": " + e.what()};
  }
  // Slices are named by the upstream's description (cached_storage), the same for every loop's instance.
  net::io_context scratch;
  opened.drop_cached_version = [slices, upstream = opened.factory(scratch)->describe()](
                                   const std::string& key, const std::string& etag, std::uint64_t size) {
    slices->drop_object(cache::slice_cache::object_id(upstream, key, etag), size);
  };
  opened.factory = [inner = opened.factory, slices, metadata, log,
                    changes = opened.changes](net::io_context& io) -> std::shared_ptr<storage::storage> {
    return std::make_shared<cache::cached_storage>(slices, metadata, inner(io), log, changes);
  };
  opened.metrics.push_back([slices] { return slices->render_metrics(); });
  return std::nullopt;
}

// Temporary credentials when there are no static ones: web identity (IRSA), then the instance metadata
// service (IMDSv2); null when neither applies. Throws when the chosen source cannot be set up.
std::shared_ptr<s3::credentials_provider> temporary_credentials(const s3::env_lookup& env,
                                                                const std::string& region) {
  auto token_file = env("AWS_WEB_IDENTITY_TOKEN_FILE"), role = env("AWS_ROLE_ARN");
  const bool imds_off = env("AWS_EC2_METADATA_DISABLED").value_or("") == "true";
  if (token_file && role) {
    const auto sts = env("AWS_ENDPOINT_URL_STS").value_or("https://sts." + region + ".amazonaws.com");
    return std::make_shared<s3::refreshing_provider>(
        s3::web_identity_fetch(sts, *role, *token_file, env("AWS_ROLE_SESSION_NAME").value_or("mediagate")),
        "web identity");
  }
  if (!imds_off) {
    return std::make_shared<s3::refreshing_provider>(
        s3::imds_fetch(env("AWS_EC2_METADATA_SERVICE_ENDPOINT").value_or("http://169.254.169.254")),
        "instance metadata");
  }
  return nullptr;
}

}  // namespace

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
  if (!o.anonymous)
    resolved = s3::resolve_static_credentials({o.access_key, o.secret_key, o.session_token}, env);
  auto& st = setup.settings;
  st.region = !o.region.empty()                       ? o.region
              : env("AWS_REGION")                     ? *env("AWS_REGION")
              : env("AWS_DEFAULT_REGION")             ? *env("AWS_DEFAULT_REGION")
              : resolved && !resolved->region.empty() ? resolved->region
                                                      : "us-east-1";
  st.anonymous = o.anonymous;  // unsigned requests: no credentials are looked up (resolved stays empty)
  if (resolved) {
    setup.creds = s3::static_provider(resolved->creds);
  } else if (!o.anonymous) {
    try {
      setup.creds = temporary_credentials(env, st.region);
    } catch (const std::exception& e) {
      return std::string("no S3 credentials: ") + e.what() +
             " (pass --s3-access-key/--s3-secret-key, set AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY, or "
             "configure a profile in ~/.aws/credentials)";
    }
    if (!setup.creds)
      return std::string(
          "no S3 credentials found: pass --s3-access-key/--s3-secret-key, set AWS_ACCESS_KEY_ID and "
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
  if (!o.ca_file.empty() && !std::filesystem::is_regular_file(o.ca_file))
    return "--s3-ca-file (or AWS_CA_BUNDLE): no such file: " + o.ca_file;
  st.verify_tls = !o.no_verify;
  st.tls_resume = !o.no_tls_resume;
  st.max_idle_connections = static_cast<std::size_t>(o.idle_connections);
  if (!o.connect_to.empty()) {
    auto to = s3::parse_host_port(o.connect_to);
    if (!to) return "--s3-connect-to wants HOST:PORT or [IPV6]:PORT, not " + o.connect_to;
    std::tie(st.connect_host, st.connect_port) = *to;
  }
  setup.meta_ttl = std::chrono::milliseconds(static_cast<long>(o.meta_ttl * 1000));
  const auto part_size = parse_byte_size(o.download_part_size), after = parse_byte_size(o.download_after);
  if (!part_size || *part_size < (64 << 10) || *part_size > (1ull << 30))
    return "--s3-download-part-size wants a size from 64KiB to 1GiB, not " + o.download_part_size;
  if (!after) return "--s3-download-after wants a size (e.g. 8MiB), not " + o.download_after;
  const auto memory = parse_byte_size(o.download_memory);
  if (!memory || *memory < *part_size)
    return "--s3-download-memory wants a size of at least one part (--s3-download-part-size " +
           o.download_part_size + "), not " + o.download_memory;
  const auto slower_than = parse_byte_size(o.download_slower_than);
  if (!slower_than || *slower_than == 0)
    return "--s3-download-slower-than wants bytes a second (e.g. 200MB), not " + o.download_slower_than;
  const auto first_read = parse_byte_size(o.first_read);
  if (!first_read || (*first_read > 0 && *first_read < (64 << 10)) || *first_read > (64ull << 20))
    return "--s3-first-read wants 0 or a size from 64KiB to 64MiB, not " + o.first_read;
  setup.first_read = *first_read;
  setup.download = {static_cast<std::size_t>(o.download_parts), *part_size, *after, *slower_than,
                    std::make_shared<storage::download_budget>(*memory)};
  return setup;
}

std::shared_ptr<s3::client> make_client(net::io_context& io, const s3_setup& setup) {
  return std::make_shared<s3::client>(io.get_executor(), setup.settings, setup.creds, setup.counters);
}

std::variant<storage_setup, setup_failure> open_storage(const serve_config& cfg,
                                                        const std::shared_ptr<spdlog::logger>& log) {
  std::variant<storage_setup, setup_failure> opened;
  try {
    if (cfg.storage.starts_with("s3://"))
      opened = open_s3(cfg, *log);
    else
      opened = open_local(cfg, *log);
  } catch (const std::exception& e) {
    return setup_failure{1, e.what()};
  }
  if (auto* ready = std::get_if<storage_setup>(&opened); ready && cfg.cache) {
    if (auto failure = add_slice_cache(*ready, *cfg.cache, log)) return *failure;
  }
  return opened;
}

}  // namespace mediagate::app
