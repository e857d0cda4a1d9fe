// `mediagate sign`: prints the path and query of a signed link (http/signed_link.hpp) for a media path.
#include <CLI/CLI.hpp>
#include <cstdio>
#include <ctime>

#include "app/access_options.hpp"
#include "app/commands.hpp"
#include "http/media_key.hpp"
#include "http/token.hpp"

namespace mediagate::app {
namespace {

// "90", "90s", "15m", "1h", "7d" → seconds; nullopt otherwise.
std::optional<std::int64_t> parse_ttl(std::string_view text) {
  std::int64_t unit = 1;
  if (!text.empty() && !std::isdigit(static_cast<unsigned char>(text.back()))) {
    switch (text.back()) {
      case 's':
        unit = 1;
        break;
      case 'm':
        unit = 60;
        break;
      case 'h':
        unit = 3600;
        break;
      case 'd':
        unit = 86400;
        break;
      default:
        return std::nullopt;
    }
    text.remove_suffix(1);
  }
  const auto n = http::parse_decimal(text);
  if (!n || *n == 0 || *n > 10u * 366 * 86400 / static_cast<std::uint64_t>(unit)) return std::nullopt;
  return static_cast<std::int64_t>(*n) * unit;
}

}  // namespace

void add_sign_options(CLI::App& cmd, sign_options& o) {
  cmd.add_option("path", o.path, "/media/<key> (or a key), as a browser would ask for it")->required();
  cmd.add_option("--signing-keys", o.keys_file, "File of 'KID SECRET' lines; the first key signs")
      ->envname("MEDIAGATE_SIGNING_KEYS")
      ->required();
  cmd.add_option("--ttl", o.ttl, "How long the link opens: 90s, 15m, 1h, 7d")->capture_default_str();
  cmd.add_flag("--prefix", o.prefix, "Sign the folder of the path: one link opens every object under it");
  cmd.add_option("--ip", o.ip, "Only clients from this address or CIDR may use the link");
}

int run_sign(const sign_options& o) {
  std::vector<http::signing_key> keys;
  if (auto problem = load_signing_keys(o.keys_file, keys); !problem.empty()) {
    std::fprintf(stderr, "mediagate: %s\n", problem.c_str());
    return 2;
  }
  const auto ttl = parse_ttl(o.ttl);
  if (!ttl) {
    std::fprintf(stderr, "mediagate: --ttl takes a duration such as 90s, 15m, 1h or 7d\n");
    return 2;
  }
  std::string_view encoded = o.path;
  if (encoded.starts_with("/media/")) encoded.remove_prefix(7);
  const auto key = http::decode_media_key(encoded);
  if (!key) {
    std::fprintf(stderr, "mediagate: %s is not a valid media path\n", o.path.c_str());
    return 2;
  }
  if (!o.ip.empty() && !http::ip_in_cidr(o.ip.substr(0, o.ip.find('/')), o.ip)) {
    std::fprintf(stderr, "mediagate: --ip takes an address or CIDR such as 203.0.113.0/24\n");
    return 2;
  }
  http::link_grant grant{*key, static_cast<std::int64_t>(std::time(nullptr)) + *ttl, o.prefix, o.ip};
  if (o.prefix) {
    const auto slash = key->rfind('/');
    grant.key = slash == std::string::npos ? std::string() : key->substr(0, slash + 1);
  }
  std::printf("/media/%s?%s\n", http::encode_key_for_url(*key).c_str(),
              http::sign_link(grant, keys.front()).c_str());
  return 0;
}

}  // namespace mediagate::app
