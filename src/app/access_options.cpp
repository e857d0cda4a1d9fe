#include "app/access_options.hpp"

#include <sys/stat.h>

#include <CLI/CLI.hpp>
#include <fstream>
#include <sstream>

namespace mediagate::app {

void add_access_options(CLI::App& serve, access_options& o) {
  serve
      .add_option("--cors-origin", o.cors_origins,
                  "Origins allowed to read media and the API from another site (repeat, or comma-separated; "
                  "'*': any)")
      ->envname("MEDIAGATE_CORS_ORIGIN")
      ->delimiter(',');
  serve
      .add_option("--access", o.access,
                  "public: media opens without a link unless a prefix says otherwise; "
                  "signed: every object needs a signed link unless a --public-prefix covers it")
      ->envname("MEDIAGATE_ACCESS")
      ->check(CLI::IsMember({"public", "signed"}))
      ->capture_default_str();
  serve.add_option("--signed-prefix", o.signed_prefixes,
                   "Keys under this prefix need a signed link (repeatable)");
  serve.add_option("--public-prefix", o.public_prefixes,
                   "Keys under this prefix open without a link (repeatable)");
  serve
      .add_option(
          "--signing-keys", o.signing_keys_file,
          "File of 'KID SECRET' lines (secret: 32+ bytes, hex or base64url); the first signs, all verify")
      ->envname("MEDIAGATE_SIGNING_KEYS");
  serve.add_option("--link-skew", o.link_skew, "Seconds a signed link is still accepted after it expired")
      ->check(CLI::Range(0.0, 3600.0))
      ->capture_default_str();
  serve
      .add_option("--signed-cache-control", o.signed_cache_control,
                  "Cache-Control of answers to signed links")
      ->capture_default_str();
}

std::string load_signing_keys(const std::string& path, std::vector<http::signing_key>& keys) {
  struct stat st {};
  if (::stat(path.c_str(), &st) != 0) return "cannot read the signing keys " + path;
  if (st.st_mode & (S_IRWXG | S_IRWXO))
    return "the signing keys " + path + " may be read by other users: chmod 600 it";
  std::ifstream in(path, std::ios::binary);
  std::stringstream text;
  text << in.rdbuf();
  if (!in && !in.eof()) return "cannot read the signing keys " + path;
  auto parsed = http::parse_signing_keys(text.str());
  if (!parsed.error.empty()) return "signing keys " + path + ": " + parsed.error;
  keys = std::move(parsed.keys);
  return "";
}

std::string apply_access_options(const access_options& o, server::server_config& cfg) {
  cfg.cors_origins = o.cors_origins;
  auto& policy = cfg.access;
  policy.signed_by_default = o.access == "signed";
  policy.signed_prefixes = o.signed_prefixes;
  policy.public_prefixes = o.public_prefixes;
  policy.clock_skew = static_cast<std::int64_t>(o.link_skew);
  policy.cache_control = o.signed_cache_control;
  if (!o.signing_keys_file.empty()) {
    if (auto problem = load_signing_keys(o.signing_keys_file, policy.keys); !problem.empty()) return problem;
  }
  const bool any_signed = policy.signed_by_default || !policy.signed_prefixes.empty();
  if (any_signed && policy.keys.empty())
    return "--access signed and --signed-prefix need --signing-keys FILE (or MEDIAGATE_SIGNING_KEYS)";
  return "";
}

}  // namespace mediagate::app
