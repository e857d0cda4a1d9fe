// SigV4 canonicalisation (sign_v4 over any path, query, headers and clock): the canonical path and query
// decode back to what was asked for, the canonical headers are sorted, lowercase and listed exactly in
// SignedHeaders, the string to sign hashes the canonical request, x-amz-date agrees with gmtime, the signing
// key cache changes nothing, and only headers that cannot be sent make the signer refuse.
#include <time.h>

#include <algorithm>
#include <functional>
#include <stdexcept>
#include <string>
#include <vector>

#include "byte_reader.hpp"
#include "fuzz_check.hpp"
#include "s3/sigv4.hpp"

using mediagate::fuzz::byte_reader;
using namespace mediagate::s3;

namespace {

std::vector<std::string_view> split(std::string_view s, char sep) {
  std::vector<std::string_view> out;
  while (true) {
    const auto at = s.find(sep);
    out.push_back(s.substr(0, at));
    if (at == std::string_view::npos) return out;
    s.remove_prefix(at + 1);
  }
}

int hex_digit(char c) {
  if (c >= '0' && c <= '9') return c - '0';
  if (c >= 'A' && c <= 'F') return c - 'A' + 10;
  return -1;  // SigV4 encodes with uppercase digits only
}

// Undoes uri_encode, checking that it left only unreserved characters (and '/' when allowed) unescaped.
std::string decode_checked(std::string_view s, bool slash_allowed) {
  std::string out;
  for (std::size_t i = 0; i < s.size(); ++i) {
    const auto c = static_cast<unsigned char>(s[i]);
    if (c == '%') {
      FUZZ_CHECK(i + 2 < s.size() && hex_digit(s[i + 1]) >= 0 && hex_digit(s[i + 2]) >= 0, "%XX, uppercase");
      out += static_cast<char>(hex_digit(s[i + 1]) * 16 + hex_digit(s[i + 2]));
      i += 2;
    } else {
      const bool unreserved = (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') ||
                              c == '-' || c == '_' || c == '.' || c == '~' || (slash_allowed && c == '/');
      FUZZ_CHECK(unreserved, "only unreserved characters stay unencoded");
      out += static_cast<char>(c);
    }
  }
  return out;
}

bool is_tchar(unsigned char c) {  // RFC 9110 §5.6.2
  return (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') ||
         std::string_view("!#$%&'*+-.^_`|~").find(static_cast<char>(c)) != std::string_view::npos;
}

bool has_crlf_nul(std::string_view s) { return s.find_first_of(std::string_view("\r\n\0", 3)) != s.npos; }

std::string lower(std::string_view s) {
  std::string out(s);
  for (char& c : out) c = static_cast<char>(c >= 'A' && c <= 'Z' ? c - 'A' + 'a' : c);
  return out;
}

// A name or value: the fuzzer's bytes, or (for names) only token characters, so both shapes are common.
std::string header_name(byte_reader& in) {
  const bool token_only = in.flag();
  std::string name(in.string());
  if (token_only) std::erase_if(name, [](char c) { return !is_tchar(static_cast<unsigned char>(c)); });
  return name;
}

std::string gmtime_amz(std::int64_t seconds) {
  const time_t t = static_cast<time_t>(seconds);
  tm parts{};
  gmtime_r(&t, &parts);
  char buf[32];
  strftime(buf, sizeof buf, "%Y%m%dT%H%M%SZ", &parts);
  return buf;
}

std::string plain(std::string_view s) {  // region and service come from configuration: printable, no '/'
  std::string out;
  for (unsigned char c : s)
    if (c > 0x20 && c < 0x7F && c != '/') out += static_cast<char>(c);
  return out.empty() ? "us-east-1" : out;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  static constexpr std::string_view kMethods[] = {"GET", "HEAD", "PUT", "POST", "DELETE"};
  byte_reader in(data, size);
  request_to_sign request;
  request.method = kMethods[in.number<std::uint8_t>() % 5];
  // From 1970 to 2262: system_clock counts nanoseconds in 64 bits.
  const auto seconds = static_cast<std::int64_t>(in.in_range(0, INT64_MAX / 1000000000 - 1));
  const credentials creds{plain(in.string()), std::string(in.string()),
                          in.flag() ? std::string(in.string()) : ""};
  const auto region = plain(in.string()), service = plain(in.string());
  request.host = in.string();
  switch (in.number<std::uint8_t>() % 3) {
    case 0:
      request.payload_sha256 = "";
      break;
    case 1:
      request.payload_sha256 = unsigned_payload;
      break;
    default:
      request.payload_sha256 = mediagate::sha256_hex(in.string());
  }
  request.path = in.string();
  for (auto n = in.number<std::uint8_t>() % 5; n > 0; --n) {
    auto name = std::string(in.string());
    request.query.emplace_back(std::move(name), std::string(in.string()));
  }
  bool sendable = !has_crlf_nul(request.host) && !has_crlf_nul(creds.session_token);
  bool token_names = true;
  for (auto n = in.number<std::uint8_t>() % 5; n > 0; --n) {
    auto name = header_name(in);
    std::string value(in.string());
    // What the signer may refuse: a name that is empty, owned by the signer, or holds ':' or whitespace
    // inside; a value with CR, LF or NUL. Leading and trailing whitespace of a name is trimmed.
    const auto l = lower(name);
    const auto core = l.substr(0, l.find_last_not_of(" \t\r\n\v\f") + 1);
    const auto trimmed = core.substr(std::min(core.size(), core.find_first_not_of(" \t\r\n\v\f")));
    if (trimmed.empty() || trimmed.find_first_of(": \t\r\n\v\f") != std::string::npos ||
        has_crlf_nul(value) || trimmed == "host" || trimmed == "x-amz-date" ||
        trimmed == "x-amz-content-sha256" || trimmed == "x-amz-security-token" || trimmed == "authorization")
      sendable = false;
    token_names = token_names && std::all_of(name.begin(), name.end(), [](char c) { return is_tchar(c); });
    request.headers.emplace_back(std::move(name), std::move(value));
  }
  const auto now = std::chrono::system_clock::time_point(std::chrono::seconds(seconds));

  signed_headers out;
  try {
    out = sign_v4(request, creds, region, service, now);
  } catch (const std::invalid_argument&) {
    FUZZ_CHECK(!sendable, "the signer refuses only headers that cannot be sent");
    return 0;
  }
  FUZZ_CHECK(sendable, "the signer refuses headers that cannot be sent");

  // Canonical path and query: exactly the path and the query pairs, encoded.
  FUZZ_CHECK(out.canonical_path.starts_with('/'), "the canonical path is absolute");
  const auto path = request.path.empty()            ? "/"
                    : request.path.starts_with('/') ? request.path
                                                    : "/" + request.path;
  FUZZ_CHECK(decode_checked(out.canonical_path, true) == path, "the canonical path decodes to the path");
  std::vector<std::pair<std::string, std::string>> query, encoded;
  if (!out.canonical_query.empty())
    for (auto pair : split(out.canonical_query, '&')) {
      const auto parts = split(pair, '=');
      FUZZ_CHECK(parts.size() == 2, "name=value, with '=' and '&' encoded inside");
      encoded.emplace_back(parts[0], parts[1]);
      query.emplace_back(decode_checked(parts[0], false), decode_checked(parts[1], false));
    }
  FUZZ_CHECK(std::is_sorted(encoded.begin(), encoded.end()),
             "the query is sorted by encoded name, then value");
  auto asked = request.query;
  std::sort(asked.begin(), asked.end());
  std::sort(query.begin(), query.end());
  FUZZ_CHECK(asked == query, "the canonical query holds exactly the query's pairs");

  // The canonical request: method, path, query, header lines, a blank line, SignedHeaders, payload hash.
  const auto lines = split(out.canonical_request, '\n');
  FUZZ_CHECK(lines.size() >= 8, "at least host, x-amz-date and x-amz-content-sha256");
  FUZZ_CHECK(lines[0] == request.method && lines[1] == out.canonical_path && lines[2] == out.canonical_query,
             "method, path and query lines");
  const auto payload =
      request.payload_sha256.empty() ? std::string(empty_payload_sha256) : request.payload_sha256;
  FUZZ_CHECK(lines.back() == payload, "the payload hash ends the canonical request");
  const auto signed_names = lines[lines.size() - 2];
  FUZZ_CHECK(lines[lines.size() - 3].empty(), "a blank line ends the header lines");
  std::vector<std::string> names;
  for (std::size_t i = 3; i + 3 < lines.size(); ++i) {
    const auto colon = lines[i].find(':');
    FUZZ_CHECK(colon != std::string_view::npos, "name:value");
    const auto name = lines[i].substr(0, colon), value = lines[i].substr(colon + 1);
    FUZZ_CHECK(name == lower(name), "names are lowercase");
    FUZZ_CHECK(!value.starts_with(' ') && !value.ends_with(' ') && value.find("  ") == value.npos,
               "values are trimmed, inner whitespace runs collapsed");
    names.emplace_back(name);
  }
  FUZZ_CHECK(std::adjacent_find(names.begin(), names.end(), std::greater_equal<>()) == names.end(),
             "header names sorted and unique");
  for (std::string_view own : {"host", "x-amz-date", "x-amz-content-sha256"})
    FUZZ_CHECK(std::count(names.begin(), names.end(), own) == 1, "the signer's own headers are signed");
  FUZZ_CHECK(std::count(names.begin(), names.end(), "x-amz-security-token") == !creds.session_token.empty(),
             "the session token is signed when there is one");
  if (token_names) {
    const auto listed = split(signed_names, ';');
    FUZZ_CHECK(std::equal(listed.begin(), listed.end(), names.begin(), names.end()),
               "SignedHeaders lists exactly the canonical headers");
  }

  // The string to sign and the Authorization header.
  const auto date = gmtime_amz(seconds);
  const auto scope = date.substr(0, 8) + "/" + region + "/" + service + "/aws4_request";
  FUZZ_CHECK(out.string_to_sign == "AWS4-HMAC-SHA256\n" + date + "\n" + scope + "\n" +
                                       mediagate::sha256_hex(out.canonical_request),
             "the string to sign hashes the canonical request at the request's time");
  std::string authorization, amz_date_header;
  for (const auto& [name, value] : out.headers) {
    if (name == "authorization") authorization = value;
    if (name == "x-amz-date") amz_date_header = value;
  }
  FUZZ_CHECK(amz_date_header == date, "x-amz-date agrees with gmtime");
  const auto prefix = "AWS4-HMAC-SHA256 Credential=" + creds.access_key_id + "/" + scope +
                      ", SignedHeaders=" + std::string(signed_names) + ", Signature=";
  FUZZ_CHECK(authorization.starts_with(prefix) && authorization.size() == prefix.size() + 64 &&
                 authorization.find_first_not_of("0123456789abcdef", prefix.size()) == std::string::npos,
             "Authorization: credential scope, signed headers, 64 hex digits");

  static signing_key_cache cache;  // shared across inputs: entries are replaced and evicted as in a long run
  const auto cached = sign_v4(request, creds, region, service, now, cache);
  FUZZ_CHECK(cached.headers == out.headers && cached.canonical_request == out.canonical_request,
             "the signing key cache changes nothing");
  FUZZ_CHECK(cache.size() <= 8, "the cache stays small");

  const auto anonymous = unsigned_request(request);
  FUZZ_CHECK(anonymous.canonical_path == out.canonical_path &&
                 anonymous.canonical_query == out.canonical_query && anonymous.headers.size() == 1 &&
                 anonymous.headers[0].first == "host",
             "an unsigned request has the same path and query and only Host");
  return 0;
}
