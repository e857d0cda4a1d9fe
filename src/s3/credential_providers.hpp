#pragma once
// Temporary credentials: web identity (STS AssumeRoleWithWebIdentity, as Kubernetes IRSA sets up) and the
// EC2 instance metadata service (IMDSv2), refreshed on a background thread before they expire.
#include <chrono>
#include <condition_variable>
#include <functional>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <string_view>
#include <thread>
#include <variant>

#include "s3/s3_client.hpp"

namespace mediagate::s3 {

struct timed_credentials {
  credentials creds;
  std::optional<std::int64_t> expires;  // seconds since the epoch; nullopt: never
};

// Either credentials or a message saying why there are none.
using fetch_result = std::variant<timed_credentials, std::string>;
using credentials_fetch = std::function<fetch_result()>;

// The JSON document IMDS serves for a role: {"AccessKeyId", "SecretAccessKey", "Token", "Expiration"}.
fetch_result parse_imds_credentials(std::string_view json);
// The XML of STS AssumeRoleWithWebIdentity: .../Credentials/{AccessKeyId, SecretAccessKey, SessionToken,
// Expiration}.
fetch_result parse_sts_credentials(std::string_view xml);

// IMDSv2: a session token by PUT, then the role name, then the role's credentials. `endpoint` defaults to
// the link-local address; AWS_EC2_METADATA_SERVICE_ENDPOINT overrides it.
credentials_fetch imds_fetch(std::string endpoint);
// AssumeRoleWithWebIdentity at `sts_endpoint` with the token read from `token_file` on every refresh.
credentials_fetch web_identity_fetch(std::string sts_endpoint, std::string role_arn, std::string token_file,
                                     std::string session_name);

// Holds the newest credentials; a thread fetches new ones 5 minutes before expiry (sooner for short-lived
// ones), retrying every 10 s on failure while the old ones stay in use.
class refreshing_provider final : public credentials_provider {
 public:
  // Fetches once; throws std::runtime_error with the fetch's message when that fails.
  explicit refreshing_provider(credentials_fetch fetch, std::string source);
  ~refreshing_provider() override;
  credentials current() override;
  void current_into(credentials& out) override;
  const std::string& source() const { return source_; }

 private:
  void refresh_loop();

  credentials_fetch fetch_;
  std::string source_;
  std::mutex mutex_;
  std::condition_variable stop_cv_;
  bool stopping_ = false;
  timed_credentials current_;
  std::thread thread_;
};

}  // namespace mediagate::s3
