#include "s3/sigv4.hpp"

#include <algorithm>
#include <stdexcept>

namespace mediagate::s3 {
namespace {

constexpr std::string_view algorithm = "AWS4-HMAC-SHA256";

bool is_unreserved(unsigned char c) {
  return (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '-' || c == '_' ||
         c == '.' || c == '~';
}

std::string to_lower_ascii(std::string_view text) {
  std::string out(text);
  for (char& c : out) {
    if (c >= 'A' && c <= 'Z') c = static_cast<char>(c - 'A' + 'a');
  }
  return out;
}

// SigV4's Trimall: drop leading and trailing whitespace, and turn every run of whitespace inside the value
// into one space. (A loop: find_first_of with a set calls memchr per character.)
std::string trim_all(std::string_view value) {
  const auto space = [](char c) {
    return c == ' ' || c == '\t' || c == '\n' || c == '\v' || c == '\f' || c == '\r';
  };
  std::string out;
  out.reserve(value.size());
  bool pending_space = false;
  for (const char c : value) {
    if (space(c)) {
      pending_space = !out.empty();
      continue;
    }
    if (pending_space) out += ' ';
    pending_space = false;
    out += c;
  }
  return out;
}

bool is_signer_owned(std::string_view lower_name) {
  return lower_name == "host" || lower_name == "x-amz-date" || lower_name == "x-amz-content-sha256" ||
         lower_name == "x-amz-security-token" || lower_name == "authorization";
}

void check_header(std::string_view lower_name, std::string_view value) {
  if (lower_name.empty() || lower_name.find_first_of(":\r\n\t ") != std::string_view::npos) {
    throw std::invalid_argument("sign_v4: invalid header name '" + std::string(lower_name) + "'");
  }
  if (is_signer_owned(lower_name)) {
    throw std::invalid_argument("sign_v4: header '" + std::string(lower_name) + "' is set by the signer");
  }
  // A CR or LF would split the header on the wire; the signature would then cover something else.
  if (value.find_first_of(std::string_view("\r\n\0", 3)) != std::string_view::npos) {
    throw std::invalid_argument("sign_v4: header '" + std::string(lower_name) +
                                "' has CR, LF or NUL in its value");
  }
}

// A header as it is signed: its lowercase name and its Trimall'd value, each a view of the caller's text when
// that is already canonical (the usual case: "range", "if-match"), else of `storage`.
struct canonical_header {
  std::string_view name;
  std::string_view value;
  std::string storage;  // holds the name, then the value, when either had to change
};

bool needs_lowering(std::string_view name) {
  return std::any_of(name.begin(), name.end(), [](char c) { return c >= 'A' && c <= 'Z'; });
}

bool is_space(char c) { return c == ' ' || c == '\t' || c == '\n' || c == '\v' || c == '\f' || c == '\r'; }

// True when trim_all would change the value: space at an end, or any run of space that is not one ' '.
bool needs_trim(std::string_view value) {
  if (value.empty()) return false;
  if (is_space(value.front()) || is_space(value.back())) return true;
  for (std::size_t i = 0; i < value.size(); ++i)
    if (is_space(value[i]) && (value[i] != ' ' || is_space(value[i + 1]))) return true;
  return false;
}

void canonicalize(canonical_header& h, std::string_view name, std::string_view value) {
  const bool lower = needs_lowering(name) || needs_trim(name);
  const bool trim = needs_trim(value);
  if (!lower && !trim) {
    h.name = name;
    h.value = value;
    return;
  }
  // Both views point into one string, filled once: no reallocation moves the first after it is taken.
  const std::string new_name = lower ? to_lower_ascii(trim_all(name)) : std::string();
  const std::string new_value = trim ? trim_all(value) : std::string();
  h.storage = new_name + new_value;
  h.name = lower ? std::string_view(h.storage).substr(0, new_name.size()) : name;
  h.value = trim ? std::string_view(h.storage).substr(new_name.size()) : value;
}

// The headers to sign, canonicalized in place (elements never move: their views may point into their own
// storage); canonical_order gives the order to write them in.
std::vector<canonical_header> canonical_header_list(const header_list& extra, const header_list& own) {
  std::vector<canonical_header> list(extra.size() + own.size());
  std::size_t n = 0;
  for (const auto& [name, value] : extra) {
    canonicalize(list[n], name, value);
    check_header(list[n].name, value);
    ++n;
  }
  for (const auto& [name, value] : own) {
    if (value.find_first_of(std::string_view("\r\n\0", 3)) != std::string::npos) {
      throw std::invalid_argument("sign_v4: '" + name + "' has CR, LF or NUL in its value");
    }
    canonicalize(list[n++], name, value);
  }
  return list;
}

// One sorted order gives both the canonical headers and the SignedHeaders list, so the two always name the
// same headers. Stable: repeated headers keep their order when joined, as they would on the wire. Insertion
// sort: a request has a handful of headers, and std::stable_sort allocates a buffer on every call.
std::vector<std::size_t> canonical_order(const std::vector<canonical_header>& list) {
  std::vector<std::size_t> order(list.size());
  for (std::size_t i = 0; i < order.size(); ++i) order[i] = i;
  for (std::size_t i = 1; i < order.size(); ++i)
    for (std::size_t j = i; j > 0 && list[order[j]].name < list[order[j - 1]].name; --j)
      std::swap(order[j], order[j - 1]);
  return order;
}

std::string canonical_query_string(const query_list& query) {
  std::vector<std::pair<std::string, std::string>> encoded;
  encoded.reserve(query.size());
  for (const auto& [name, value] : query)
    encoded.emplace_back(uri_encode(name, false), uri_encode(value, false));
  // Sorted by encoded name, then by encoded value for repeated names (byte order).
  std::sort(encoded.begin(), encoded.end());
  std::string out;
  for (const auto& [name, value] : encoded) {
    if (!out.empty()) out += '&';
    out += name;
    out += '=';
    out += value;
  }
  return out;
}

std::string canonical_uri(std::string_view path) {
  if (path.empty()) return "/";
  std::string encoded = uri_encode(path, true);
  if (encoded.front() != '/') encoded.insert(encoded.begin(), '/');
  return encoded;
}

template <typename SigningKey>
signed_headers sign(const request_to_sign& request, const credentials& creds, std::string_view region,
                    std::string_view service, std::chrono::system_clock::time_point now,
                    SigningKey&& signing_key) {
  const std::string timestamp = amz_date(now);
  const std::string_view date = std::string_view(timestamp).substr(0, 8);
  const std::string_view payload_hash =
      request.payload_sha256.empty() ? empty_payload_sha256 : std::string_view(request.payload_sha256);

  // Sized once: these strings and lists are built on every request to storage (allocations showed in
  // profiles of small ranged GETs).
  header_list own;
  own.reserve(5);  // host, x-amz-date, x-amz-content-sha256, [x-amz-security-token], authorization
  own.emplace_back("host", request.host);
  own.emplace_back("x-amz-date", timestamp);
  own.emplace_back("x-amz-content-sha256", std::string(payload_hash));
  if (!creds.session_token.empty()) own.emplace_back("x-amz-security-token", creds.session_token);

  signed_headers result;
  result.canonical_path = canonical_uri(request.path);
  result.canonical_query = canonical_query_string(request.query);

  std::string canonical_headers;
  std::string signed_header_names;
  canonical_headers.reserve(256);
  signed_header_names.reserve(96);
  const auto list = canonical_header_list(request.headers, own);
  const auto order = canonical_order(list);
  for (std::size_t i = 0; i < order.size(); ++i) {
    const canonical_header& h = list[order[i]];
    if (i > 0 && h.name == list[order[i - 1]].name) {  // a repeated name joins the line before: ',' for '\n'
      canonical_headers.back() = ',';
    } else {
      canonical_headers += h.name;
      canonical_headers += ':';
      if (!signed_header_names.empty()) signed_header_names += ';';
      signed_header_names += h.name;
    }
    canonical_headers += h.value;
    canonical_headers += '\n';
  }

  std::string& canonical_request = result.canonical_request;
  canonical_request.reserve(256 + canonical_headers.size() + result.canonical_path.size());
  canonical_request += request.method;
  canonical_request += '\n';
  canonical_request += result.canonical_path;
  canonical_request += '\n';
  canonical_request += result.canonical_query;
  canonical_request += '\n';
  canonical_request += canonical_headers;  // each line ends with '\n', and a blank line follows
  canonical_request += '\n';
  canonical_request += signed_header_names;
  canonical_request += '\n';
  canonical_request += payload_hash;

  std::string scope;
  scope.reserve(date.size() + region.size() + service.size() + 16);
  scope += date;
  scope += '/';
  scope += region;
  scope += '/';
  scope += service;
  scope += "/aws4_request";

  std::string& string_to_sign = result.string_to_sign;
  string_to_sign.reserve(algorithm.size() + timestamp.size() + scope.size() + 2 * sizeof(sha256_digest) + 3);
  string_to_sign += algorithm;
  string_to_sign += '\n';
  string_to_sign += timestamp;
  string_to_sign += '\n';
  string_to_sign += scope;
  string_to_sign += '\n';
  string_to_sign += sha256_hex(canonical_request);

  const sha256_digest key = signing_key(date);
  const std::string signature = hex(hmac_sha256(key, string_to_sign));

  std::string authorization;
  authorization.reserve(algorithm.size() + creds.access_key_id.size() + scope.size() +
                        signed_header_names.size() + signature.size() + 48);
  authorization += algorithm;
  authorization += " Credential=";
  authorization += creds.access_key_id;
  authorization += '/';
  authorization += scope;
  authorization += ", SignedHeaders=";
  authorization += signed_header_names;
  authorization += ", Signature=";
  authorization += signature;

  result.headers = std::move(own);
  result.headers.emplace_back("authorization", std::move(authorization));
  return result;
}

}  // namespace

std::string uri_encode(std::string_view text, bool keep_slash) {
  static constexpr char digits[] = "0123456789ABCDEF";
  std::string out;
  out.reserve(text.size() + text.size() / 2);
  for (const char ch : text) {
    const auto c = static_cast<unsigned char>(ch);
    if (is_unreserved(c) || (keep_slash && c == '/')) {
      out += ch;
    } else {
      out += '%';
      out += digits[c >> 4];
      out += digits[c & 0x0f];
    }
  }
  return out;
}

std::string amz_date(std::chrono::system_clock::time_point time) {
  using namespace std::chrono;
  const auto seconds = floor<std::chrono::seconds>(time);
  const auto day = floor<days>(seconds);
  const year_month_day ymd{day};
  const hh_mm_ss hms{seconds - day};
  std::string out = "YYYYMMDDThhmmssZ";
  auto put = [&out](std::size_t at, long value, int width) {  // digits by hand: snprintf showed in profiles
    for (int i = width - 1; i >= 0; --i, value /= 10)
      out[at + static_cast<std::size_t>(i)] = static_cast<char>('0' + value % 10);
  };
  put(0, static_cast<int>(ymd.year()), 4);
  put(4, static_cast<long>(static_cast<unsigned>(ymd.month())), 2);
  put(6, static_cast<long>(static_cast<unsigned>(ymd.day())), 2);
  put(9, hms.hours().count(), 2);
  put(11, hms.minutes().count(), 2);
  put(13, static_cast<long>(hms.seconds().count()), 2);
  return out;
}

sha256_digest derive_signing_key(std::string_view secret_access_key, std::string_view date,
                                 std::string_view region, std::string_view service) {
  std::string secret = "AWS4";
  secret += secret_access_key;
  const sha256_digest k_date = hmac_sha256(secret, date);
  const sha256_digest k_region = hmac_sha256(k_date, region);
  const sha256_digest k_service = hmac_sha256(k_region, service);
  return hmac_sha256(k_service, "aws4_request");
}

sha256_digest signing_key_cache::get(std::string_view secret_access_key, std::string_view date,
                                     std::string_view region, std::string_view service) {
  const auto same_scope = [&](const entry& e) {
    return e.region == region && e.service == service && e.secret == secret_access_key;
  };
  {
    std::lock_guard lock(mutex_);
    for (const entry& e : entries_) {
      if (e.date == date && same_scope(e)) return e.key;
    }
  }
  // Derived outside the lock; two threads may both derive the same key once, which is harmless.
  const sha256_digest key = derive_signing_key(secret_access_key, date, region, service);
  std::lock_guard lock(mutex_);
  // Yesterday's key for the same scope is never needed again.
  std::erase_if(entries_, same_scope);
  if (entries_.size() >= max_entries_) entries_.erase(entries_.begin());
  entries_.push_back(
      {std::string(date), std::string(region), std::string(service), std::string(secret_access_key), key});
  return key;
}

std::size_t signing_key_cache::size() const {
  std::lock_guard lock(mutex_);
  return entries_.size();
}

signed_headers unsigned_request(const request_to_sign& request) {
  signed_headers result;
  result.canonical_path = canonical_uri(request.path);
  result.canonical_query = canonical_query_string(request.query);
  result.headers.emplace_back("host", request.host);
  return result;
}

signed_headers sign_v4(const request_to_sign& request, const credentials& creds, std::string_view region,
                       std::string_view service, std::chrono::system_clock::time_point now) {
  return sign(request, creds, region, service, now, [&](std::string_view date) {
    return derive_signing_key(creds.secret_access_key, date, region, service);
  });
}

signed_headers sign_v4(const request_to_sign& request, const credentials& creds, std::string_view region,
                       std::string_view service, std::chrono::system_clock::time_point now,
                       signing_key_cache& cache) {
  return sign(request, creds, region, service, now, [&](std::string_view date) {
    return cache.get(creds.secret_access_key, date, region, service);
  });
}

}  // namespace mediagate::s3
