#include "s3/credentials.hpp"

#include <cstdlib>
#include <fstream>
#include <sstream>

namespace mediagate::s3 {
namespace {

std::string_view trim(std::string_view s) {
  while (!s.empty() && (s.front() == ' ' || s.front() == '\t' || s.front() == '\r')) s.remove_prefix(1);
  while (!s.empty() && (s.back() == ' ' || s.back() == '\t' || s.back() == '\r')) s.remove_suffix(1);
  return s;
}

std::optional<std::string> read_file(const std::string& path) {
  std::ifstream in(path);
  if (!in) return std::nullopt;
  std::ostringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

std::optional<std::string> value_of(const ini_file& ini, const std::string& section, const std::string& key) {
  auto s = ini.find(section);
  if (s == ini.end()) return std::nullopt;
  auto k = s->second.find(key);
  if (k == s->second.end() || k->second.empty()) return std::nullopt;
  return k->second;
}

}  // namespace

ini_file parse_ini(std::string_view text) {
  ini_file out;
  std::string section;
  while (!text.empty()) {
    const auto nl = text.find('\n');
    auto line = trim(text.substr(0, nl));
    text = nl == std::string_view::npos ? std::string_view() : text.substr(nl + 1);
    if (line.empty() || line.front() == '#' || line.front() == ';') continue;
    if (line.front() == '[' && line.back() == ']') {
      section = std::string(trim(line.substr(1, line.size() - 2)));
      out[section];
      continue;
    }
    const auto eq = line.find('=');
    if (eq == std::string_view::npos || section.empty()) continue;
    out[section][std::string(trim(line.substr(0, eq)))] = std::string(trim(line.substr(eq + 1)));
  }
  return out;
}

env_lookup process_env() {
  return [](std::string_view name) -> std::optional<std::string> {
    const char* v = std::getenv(std::string(name).c_str());
    if (!v || !*v) return std::nullopt;
    return std::string(v);
  };
}

std::optional<resolved_credentials> resolve_static_credentials(const credentials& explicit_creds,
                                                               const env_lookup& env) {
  if (!explicit_creds.access_key_id.empty() && !explicit_creds.secret_access_key.empty())
    return resolved_credentials{explicit_creds, "options", {}};
  auto key = env("AWS_ACCESS_KEY_ID"), secret = env("AWS_SECRET_ACCESS_KEY");
  if (key && secret)
    return resolved_credentials{{*key, *secret, env("AWS_SESSION_TOKEN").value_or("")}, "environment", {}};

  const auto home = env("HOME").value_or("");
  const auto profile = env("AWS_PROFILE").value_or("default");
  const auto cred_path = env("AWS_SHARED_CREDENTIALS_FILE").value_or(home + "/.aws/credentials");
  const auto config_path = env("AWS_CONFIG_FILE").value_or(home + "/.aws/config");
  ini_file cred_ini, config_ini;
  if (auto text = read_file(cred_path)) cred_ini = parse_ini(*text);
  if (auto text = read_file(config_path)) config_ini = parse_ini(*text);
  // In the config file every profile but "default" is written "[profile NAME]".
  const auto config_section = profile == "default" ? profile : "profile " + profile;
  std::string region = value_of(config_ini, config_section, "region").value_or("");

  if (auto k = value_of(cred_ini, profile, "aws_access_key_id")) {
    if (auto s = value_of(cred_ini, profile, "aws_secret_access_key"))
      return resolved_credentials{{*k, *s, value_of(cred_ini, profile, "aws_session_token").value_or("")},
                                  "shared credentials file " + cred_path + " (profile " + profile + ")",
                                  region};
  }
  if (auto k = value_of(config_ini, config_section, "aws_access_key_id")) {
    if (auto s = value_of(config_ini, config_section, "aws_secret_access_key"))
      return resolved_credentials{
          {*k, *s, value_of(config_ini, config_section, "aws_session_token").value_or("")},
          "config file " + config_path + " (profile " + profile + ")",
          region};
  }
  return std::nullopt;
}

}  // namespace mediagate::s3
