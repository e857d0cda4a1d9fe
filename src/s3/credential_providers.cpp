#include "s3/credential_providers.hpp"

#include <boost/json.hpp>
#include <fstream>
#include <pugixml.hpp>
#include <sstream>

#include "http/http_date.hpp"
#include "s3/sigv4.hpp"
#include "s3/sync_http.hpp"

namespace mediagate::s3 {
namespace {

constexpr std::chrono::milliseconds kTimeout{2000};

std::string form_encode(std::string_view s) { return uri_encode(s, false); }

}  // namespace

fetch_result parse_imds_credentials(std::string_view json) {
  boost::system::error_code ec;
  auto doc = boost::json::parse(json, ec);
  if (ec || !doc.is_object()) return std::string("the metadata service sent credentials that are not JSON");
  const auto& o = doc.as_object();
  auto text = [&](const char* name) -> std::string {
    auto it = o.find(name);
    return it != o.end() && it->value().is_string() ? std::string(it->value().as_string()) : std::string();
  };
  timed_credentials t{{text("AccessKeyId"), text("SecretAccessKey"), text("Token")}, std::nullopt};
  if (t.creds.access_key_id.empty() || t.creds.secret_access_key.empty())
    return "the metadata service sent no credentials (" + text("Code") + ")";
  if (auto expires = text("Expiration"); !expires.empty()) t.expires = http::parse_iso8601_utc(expires);
  return t;
}

fetch_result parse_sts_credentials(std::string_view xml) {
  pugi::xml_document doc;
  if (!doc.load_buffer(xml.data(), xml.size())) return std::string("STS sent an answer that is not XML");
  if (auto err = doc.child("ErrorResponse").child("Error"))
    return "STS refused: " + std::string(err.child_value("Code")) + ": " + err.child_value("Message");
  auto c = doc.child("AssumeRoleWithWebIdentityResponse")
               .child("AssumeRoleWithWebIdentityResult")
               .child("Credentials");
  timed_credentials t{
      {c.child_value("AccessKeyId"), c.child_value("SecretAccessKey"), c.child_value("SessionToken")},
      http::parse_iso8601_utc(c.child_value("Expiration"))};
  if (t.creds.access_key_id.empty() || t.creds.secret_access_key.empty())
    return std::string("STS sent no credentials");
  return t;
}

credentials_fetch imds_fetch(std::string endpoint) {
  while (!endpoint.empty() && endpoint.back() == '/') endpoint.pop_back();
  return [endpoint]() -> fetch_result {
    auto token = sync_request("PUT", endpoint + "/latest/api/token",
                              {{"X-aws-ec2-metadata-token-ttl-seconds", "21600"}}, "", kTimeout);
    if (!token.error.empty()) return "instance metadata service unreachable (" + token.error + ")";
    if (token.status != 200)
      return "instance metadata service refused a session token (" + std::to_string(token.status) + ")";
    const std::vector<std::pair<std::string, std::string>> auth = {{"X-aws-ec2-metadata-token", token.body}};
    const auto base = endpoint + "/latest/meta-data/iam/security-credentials/";
    auto role = sync_request("GET", base, auth, "", kTimeout);
    if (role.status != 200 || role.body.empty()) return std::string("this instance has no IAM role attached");
    const auto name = role.body.substr(0, role.body.find('\n'));
    auto creds = sync_request("GET", base + name, auth, "", kTimeout);
    if (creds.status != 200) return "instance metadata service gave no credentials for role " + name;
    return parse_imds_credentials(creds.body);
  };
}

credentials_fetch web_identity_fetch(std::string sts_endpoint, std::string role_arn, std::string token_file,
                                     std::string session_name) {
  return [=]() -> fetch_result {
    std::ifstream in(token_file);
    if (!in) return "cannot read the web identity token file " + token_file;
    std::stringstream ss;
    ss << in.rdbuf();
    auto token = ss.str();
    while (!token.empty() && (token.back() == '\n' || token.back() == '\r')) token.pop_back();
    const std::string body =
        "Action=AssumeRoleWithWebIdentity&Version=2011-06-15&RoleArn=" + form_encode(role_arn) +
        "&RoleSessionName=" + form_encode(session_name) + "&WebIdentityToken=" + form_encode(token);
    auto r = sync_request("POST", sts_endpoint + "/", {{"Content-Type", "application/x-www-form-urlencoded"}},
                          body, kTimeout);
    if (!r.error.empty()) return "STS unreachable at " + sts_endpoint + " (" + r.error + ")";
    auto parsed = parse_sts_credentials(r.body);
    if (r.status != 200 && std::holds_alternative<timed_credentials>(parsed))
      return "STS answered " + std::to_string(r.status);
    return parsed;
  };
}

refreshing_provider::refreshing_provider(credentials_fetch fetch, std::string source)
    : fetch_(std::move(fetch)), source_(std::move(source)) {
  auto first = fetch_();
  if (auto* message = std::get_if<std::string>(&first)) throw std::runtime_error(*message);
  current_ = std::get<timed_credentials>(first);
  if (current_.expires) thread_ = std::thread([this] { refresh_loop(); });
}

refreshing_provider::~refreshing_provider() {
  {
    std::lock_guard lock(mutex_);
    stopping_ = true;
  }
  stop_cv_.notify_all();
  if (thread_.joinable()) thread_.join();
}

credentials refreshing_provider::current() {
  std::lock_guard lock(mutex_);
  return current_.creds;
}

void refreshing_provider::current_into(credentials& out) {
  std::lock_guard lock(mutex_);
  out = current_.creds;  // copied into out's strings: no allocation once they are large enough
}

void refreshing_provider::refresh_loop() {
  using namespace std::chrono;
  std::unique_lock lock(mutex_);
  while (!stopping_) {
    const auto now = system_clock::now();
    auto wait = seconds(10);
    if (current_.expires) {
      const auto left = seconds(*current_.expires) - duration_cast<seconds>(now.time_since_epoch());
      // Refresh 5 minutes before expiry, or at half the remaining life for short-lived credentials.
      wait = left > minutes(10) ? duration_cast<seconds>(left - minutes(5)) : std::max(seconds(1), left / 2);
    }
    if (stop_cv_.wait_for(lock, wait, [this] { return stopping_; })) break;
    lock.unlock();
    auto next = fetch_();
    lock.lock();
    if (auto* fresh = std::get_if<timed_credentials>(&next)) current_ = *fresh;
  }
}

}  // namespace mediagate::s3
