// The parsers of what S3 and its credential services answer: S3 error documents (and the storage error a
// user is shown), STS AssumeRoleWithWebIdentity XML and the instance metadata JSON.
//  - any bytes: no crash, an error always has a code and a message to show;
//  - documents built from fields chosen by the fuzzer (XML-escaped): every field comes back as it was.
#include <cstdio>
#include <string>
#include <variant>

#include "byte_reader.hpp"
#include "fuzz_check.hpp"
#include "s3/credential_providers.hpp"
#include "s3/s3_error.hpp"

using mediagate::fuzz::byte_reader;
using namespace mediagate::s3;

namespace {

// Text as an XML parser returns it: no NUL, no CR (line ends are normalised to LF, XML 1.0 §2.11).
std::string xml_text(std::string_view s) {
  std::string out;
  for (char c : s)
    if (c != '\0' && c != '\r') out += c;
  return out;
}

// What child_value() returns for `s`: whitespace-only text is not kept as a node (pugixml's default).
std::string as_parsed(const std::string& s) {
  return s.find_first_not_of(" \t\n") == std::string::npos ? std::string() : s;
}

std::string escaped(std::string_view s) {
  std::string out;
  for (char c : s) {
    switch (c) {
      case '<':
        out += "&lt;";
        break;
      case '>':
        out += "&gt;";
        break;
      case '&':
        out += "&amp;";
        break;
      case '"':
        out += "&quot;";
        break;
      case '\'':
        out += "&apos;";
        break;
      default:
        out += c;
    }
  }
  return out;
}

std::string element(std::string_view name, std::string_view text) {
  return "<" + std::string(name) + ">" + escaped(text) + "</" + std::string(name) + ">";
}

void check_error(const s3_error& e, unsigned status, bool anonymous) {
  FUZZ_CHECK(e.http_status == status, "the status is kept");
  FUZZ_CHECK(!e.code.empty(), "an error always has a code");
  (void)is_retryable(e);
  const auto err = to_storage_error(e, "bucket", "key", anonymous);
  FUZZ_CHECK(!err.message.empty(), "a storage error always says something");
}

void any_bytes(byte_reader& in) {
  const auto status = static_cast<unsigned>(in.in_range(100, 599));
  const bool anonymous = in.flag();
  const auto body = in.remaining();
  check_error(parse_s3_error(status, body), status, anonymous);
  for (const auto& fetched : {parse_sts_credentials(body), parse_imds_credentials(body)}) {
    if (const auto* t = std::get_if<timed_credentials>(&fetched))
      FUZZ_CHECK(!t->creds.access_key_id.empty() && !t->creds.secret_access_key.empty(),
                 "credentials are complete");
    else
      FUZZ_CHECK(!std::get<std::string>(fetched).empty(), "a failure says why");
  }
}

void built_documents(byte_reader& in) {
  const auto status = static_cast<unsigned>(in.in_range(400, 599));
  const auto code = xml_text(in.string()), message = xml_text(in.string()),
             request_id = xml_text(in.string());
  const auto extra = xml_text(in.string());
  const std::string body = "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<Error>" + element("Code", code) +
                           element("Message", message) + element("Resource", extra) +
                           element("RequestId", request_id) + "</Error>";
  const auto e = parse_s3_error(status, body);
  check_error(e, status, false);
  if (!as_parsed(code).empty()) FUZZ_CHECK(e.code == code, "the code comes back");
  FUZZ_CHECK(e.message == as_parsed(message) && e.request_id == as_parsed(request_id),
             "message and request id come back");

  const auto key = xml_text(in.string()), secret = xml_text(in.string()), token = xml_text(in.string());
  const auto expires = static_cast<std::int64_t>(in.in_range(0, 253402300799));
  const auto days = expires / 86400, secs = expires % 86400;
  // ISO 8601 by the civil-from-days rule, independent of http_date.cpp.
  const std::int64_t z = days + 719468, era = z / 146097, doe = z - era * 146097;
  const std::int64_t yoe = (doe - doe / 1460 + doe / 36524 - doe / 146096) / 365,
                     doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
  const std::int64_t mp = (5 * doy + 2) / 153, d = doy - (153 * mp + 2) / 5 + 1,
                     m = mp < 10 ? mp + 3 : mp - 9;
  const std::int64_t y = yoe + era * 400 + (m <= 2);
  char stamp[32];
  std::snprintf(stamp, sizeof stamp, "%04lld-%02lld-%02lldT%02lld:%02lld:%02lld.000Z",
                static_cast<long long>(y), static_cast<long long>(m), static_cast<long long>(d),
                static_cast<long long>(secs / 3600), static_cast<long long>(secs / 60 % 60),
                static_cast<long long>(secs % 60));
  const std::string sts =
      "<AssumeRoleWithWebIdentityResponse xmlns=\"https://sts.amazonaws.com/doc/2011-06-15/\">"
      "<AssumeRoleWithWebIdentityResult><Credentials>" +
      element("AccessKeyId", key) + element("SecretAccessKey", secret) + element("SessionToken", token) +
      element("Expiration", stamp) +
      "</Credentials></AssumeRoleWithWebIdentityResult></AssumeRoleWithWebIdentityResponse>";
  const auto parsed = parse_sts_credentials(sts);
  if (as_parsed(key).empty() || as_parsed(secret).empty()) {
    FUZZ_CHECK(std::holds_alternative<std::string>(parsed), "incomplete STS credentials are refused");
  } else {
    const auto* t = std::get_if<timed_credentials>(&parsed);
    FUZZ_CHECK(t && t->creds.access_key_id == key && t->creds.secret_access_key == secret &&
                   t->creds.session_token == as_parsed(token),
               "STS credentials come back");
    FUZZ_CHECK(t->expires == expires, "the STS expiry is read to the second");
  }
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  byte_reader in(data, size);
  if (in.flag())
    built_documents(in);
  else
    any_bytes(in);
  return 0;
}
