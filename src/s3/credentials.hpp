#pragma once
// Where S3 credentials come from, in the order users expect (DESIGN.md "S3 details"): explicit options,
// the AWS_* environment variables, the shared ~/.aws/credentials and ~/.aws/config files (AWS_PROFILE).
#include <functional>
#include <map>
#include <optional>
#include <string>
#include <string_view>

#include "s3/sigv4.hpp"

namespace mediagate::s3 {

// The sections of an INI file such as ~/.aws/credentials: section name → key → value. Comment lines
// (# or ;) and malformed lines are skipped; keys and section names are trimmed.
using ini_file = std::map<std::string, std::map<std::string, std::string>>;
ini_file parse_ini(std::string_view text);

// Looks up an environment variable; injected so that tests need not touch the process environment.
using env_lookup = std::function<std::optional<std::string>(std::string_view)>;
env_lookup process_env();

struct resolved_credentials {
  credentials creds;
  std::string source;  // "options", "environment", "shared credentials file (profile default)", ...
  std::string region;  // from the config file's profile, when it names one
};

// Resolves static credentials: explicit (if both key and secret are given), then the environment, then
// the shared files of `home` for the profile AWS_PROFILE (default "default"). nullopt when none is found.
// `credentials_file`/`config_file` override the paths (AWS_SHARED_CREDENTIALS_FILE / AWS_CONFIG_FILE).
std::optional<resolved_credentials> resolve_static_credentials(const credentials& explicit_creds,
                                                               const env_lookup& env);

}  // namespace mediagate::s3
