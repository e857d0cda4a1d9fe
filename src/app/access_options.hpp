#pragma once
// The serve options about private media and other origins: signing keys, prefix rules, CORS origins.
#include <string>
#include <vector>

#include "server/config.hpp"

namespace CLI {
class App;
}

namespace mediagate::app {

struct access_options {
  std::string access = "public";  // public | signed
  std::vector<std::string> signed_prefixes, public_prefixes, cors_origins;
  std::string signing_keys_file;
  double link_skew = 30;
  std::string signed_cache_control = "private, max-age=3600";
};

void add_access_options(CLI::App& serve, access_options& o);

// Fills the server's access policy and CORS origins; an error message a user can act on, or "".
std::string apply_access_options(const access_options& o, server::server_config& cfg);

// The keys of a key file, refused when other users may read it.
std::string load_signing_keys(const std::string& path, std::vector<http::signing_key>& keys);

}  // namespace mediagate::app
