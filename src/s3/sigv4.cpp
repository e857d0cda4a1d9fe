#include "s3/sigv4.hpp"

// SHA256_Init/Update/Final are deprecated in OpenSSL 3 in favour of EVP, which costs more than the hashing
// here.
#define OPENSSL_SUPPRESS_DEPRECATED
#include <openssl/sha.h>

#include <algorithm>
#include <array>
#include <cstdint>
#include <cstring>
#include <span>
#include <stdexcept>

#include "http/token.hpp"

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

bool is_bad_name(std::string_view lower_name) {
  return lower_name.empty() || std::any_of(lower_name.begin(), lower_name.end(), [](char c) {
           return c == ':' || c == '\r' || c == '\n' || c == '\t' || c == ' ';
         });
}

void check_header(std::string_view lower_name, std::string_view value) {
  if (is_bad_name(lower_name)) {
    throw std::invalid_argument("sign_v4: invalid header name '" + std::string(lower_name) + "'");
  }
  if (is_signer_owned(lower_name)) {
    throw std::invalid_argument("sign_v4: header '" + std::string(lower_name) + "' is set by the signer");
  }
  // A CR or LF would split the header on the wire; the signature would then cover something else.
  if (http::has_line_break(value)) {
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
  if (!http::has_byte_below(value, ' ' + 1))
    return false;  // no space at all: the usual case, 8 bytes per step
  if (is_space(value.front()) || is_space(value.back())) return true;
  for (std::size_t i = 0; i < value.size(); ++i) {
    if (static_cast<unsigned char>(value[i]) > ' ') continue;  // most characters: one comparison
    if (is_space(value[i]) && (value[i] != ' ' || is_space(value[i + 1]))) return true;
  }
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
// storage), and canonical_order's permutation of them. A request has a handful: both live on the stack
// unless there are more than fit.
struct header_table {
  static constexpr std::size_t fixed = 12;
  std::array<canonical_header, fixed> fixed_list;
  std::array<std::size_t, fixed> fixed_order;
  std::vector<canonical_header> spilled_list;
  std::vector<std::size_t> spilled_order;
  std::span<canonical_header> list;
  std::span<std::size_t> order;

  explicit header_table(std::size_t n) {
    if (n <= fixed) {
      list = std::span(fixed_list).first(n);
      order = std::span(fixed_order).first(n);
    } else {
      spilled_list.resize(n);
      spilled_order.resize(n);
      list = spilled_list;
      order = spilled_order;
    }
  }
};

using view_pair = std::pair<std::string_view, std::string_view>;

void canonical_header_list(std::span<canonical_header> list,
                           std::span<const std::pair<std::string, std::string>> extra,
                           std::span<const view_pair> own) {
  std::size_t n = 0;
  for (const auto& [name, value] : extra) {
    canonicalize(list[n], name, value);
    check_header(list[n].name, value);
    ++n;
  }
  for (const auto& [name, value] : own) {
    if (http::has_line_break(value)) {
      throw std::invalid_argument("sign_v4: '" + std::string(name) + "' has CR, LF or NUL in its value");
    }
    canonicalize(list[n++], name, value);
  }
}

// One sorted order gives both the canonical headers and the SignedHeaders list, so the two always name the
// same headers. Stable: repeated headers keep their order when joined, as they would on the wire. Insertion
// sort: a request has a handful of headers, and std::stable_sort allocates a buffer on every call.
void canonical_order(std::span<const canonical_header> list, std::span<std::size_t> order) {
  for (std::size_t i = 0; i < order.size(); ++i) order[i] = i;
  for (std::size_t i = 1; i < order.size(); ++i)
    for (std::size_t j = i; j > 0 && list[order[j]].name < list[order[j - 1]].name; --j)
      std::swap(order[j], order[j - 1]);
}

void append_uri_encoded(std::string& out, std::string_view text, bool keep_slash) {
  static constexpr char digits[] = "0123456789ABCDEF";
  for (const char ch : text) {
    const auto c = static_cast<unsigned char>(ch);
    if (is_unreserved(c) || (keep_slash && c == '/')) {
      out += ch;
    } else {
      const char escaped[3] = {'%', digits[c >> 4], digits[c & 0x0f]};
      out.append(escaped, 3);
    }
  }
}

void append_hex(std::string& out, std::span<const std::uint8_t> bytes) {
  static constexpr char digits[] = "0123456789abcdef";
  const std::size_t at = out.size();
  out.resize(at + 2 * bytes.size());
  for (std::size_t i = 0; i < bytes.size(); ++i) {
    out[at + 2 * i] = digits[bytes[i] >> 4];
    out[at + 2 * i + 1] = digits[bytes[i] & 0x0f];
  }
}

void canonical_query_string(std::span<const std::pair<std::string, std::string>> query, std::string& out) {
  out.clear();
  if (query.empty()) return;  // every object read
  std::vector<std::pair<std::string, std::string>> encoded;
  encoded.reserve(query.size());
  for (const auto& [name, value] : query)
    encoded.emplace_back(uri_encode(name, false), uri_encode(value, false));
  // Sorted by encoded name, then by encoded value for repeated names (byte order).
  std::sort(encoded.begin(), encoded.end());
  for (const auto& [name, value] : encoded) {
    if (!out.empty()) out += '&';
    out += name;
    out += '=';
    out += value;
  }
}

void canonical_uri(std::string_view path, std::string& out) {
  out.clear();
  if (path.empty() || path.front() != '/') out += '/';
  append_uri_encoded(out, path, true);
}

// "YYYYMMDDThhmmssZ" into out[0..16).
void write_amz_date(std::chrono::system_clock::time_point time, char* out) {
  using namespace std::chrono;
  const auto seconds = floor<std::chrono::seconds>(time);
  const auto day = floor<days>(seconds);
  const year_month_day ymd{day};
  const hh_mm_ss hms{seconds - day};
  auto put = [out](std::size_t at, long value, int width) {  // digits by hand: snprintf showed in profiles
    for (int i = width - 1; i >= 0; --i, value /= 10)
      out[at + static_cast<std::size_t>(i)] = static_cast<char>('0' + value % 10);
  };
  put(0, static_cast<int>(ymd.year()), 4);
  put(4, static_cast<long>(static_cast<unsigned>(ymd.month())), 2);
  put(6, static_cast<long>(static_cast<unsigned>(ymd.day())), 2);
  out[8] = 'T';
  put(9, hms.hours().count(), 2);
  put(11, hms.minutes().count(), 2);
  put(13, static_cast<long>(hms.seconds().count()), 2);
  out[15] = 'Z';
}

// SHA-256 and HMAC-SHA-256 of the signature, through OpenSSL's one-shot SHA-256 functions rather than EVP:
// EVP's provider dispatch and its context copies (an allocation each) cost about as much as hashing a short
// canonical request (measured with callgrind). The HMAC is RFC 2104 over those: a signing key lasts a day,
// so this thread keeps the hash states after the key's inner and outer pads and starts from copies of them.
// Consecutive signatures often begin alike: the same object's canonical requests share their first 64 bytes
// (method, path, host, ETag), and strings to sign made in the same second share theirs (algorithm, timestamp,
// scope). A thread keeps the hash state after one such first block and starts from a copy of it when the
// next input begins with the same bytes: one of the eight blocks of each hash a ranged GET costs.
struct first_block {
  std::array<char, SHA256_CBLOCK> bytes;
  SHA256_CTX after;  // the state after hashing `bytes` on top of the state it was made from
  bool ready = false;
};

// `ctx` (a fresh state, or one after an HMAC pad) advanced over `data`, through `kept` for its first block.
bool update_through(SHA256_CTX& ctx, std::string_view data, first_block& kept) {
  if (data.size() < SHA256_CBLOCK) return SHA256_Update(&ctx, data.data(), data.size()) == 1;
  if (kept.ready && std::memcmp(kept.bytes.data(), data.data(), SHA256_CBLOCK) == 0) {
    ctx = kept.after;
  } else {
    kept.ready = false;
    if (SHA256_Update(&ctx, data.data(), SHA256_CBLOCK) != 1) return false;
    std::memcpy(kept.bytes.data(), data.data(), SHA256_CBLOCK);
    kept.after = ctx;
    kept.ready = true;
  }
  return SHA256_Update(&ctx, data.data() + SHA256_CBLOCK, data.size() - SHA256_CBLOCK) == 1;
}

sha256_digest plain_sha256(std::string_view data) {
  thread_local first_block kept;
  SHA256_CTX ctx;
  sha256_digest out;
  if (SHA256_Init(&ctx) != 1 || !update_through(ctx, data, kept) || SHA256_Final(out.data(), &ctx) != 1)
    return sha256(data);  // the EVP one, which throws on failure
  return out;
}

sha256_digest hmac_under(const sha256_digest& key, std::string_view data) {
  struct padded_key {
    sha256_digest key{};
    SHA256_CTX inner, outer;  // the states after hashing key ^ ipad and key ^ opad (one block each)
    first_block inner_first;  // `inner` advanced over a message's first block
    bool ready = false;
  };
  thread_local padded_key k;
  if (!k.ready || k.key != key) {
    k.ready = false;
    k.inner_first.ready = false;
    std::array<unsigned char, SHA256_CBLOCK> ipad, opad;
    ipad.fill(0x36);
    opad.fill(0x5c);
    for (std::size_t i = 0; i < key.size(); ++i) {  // a 32-byte key is shorter than a block: used as is
      ipad[i] ^= key[i];
      opad[i] ^= key[i];
    }
    if (SHA256_Init(&k.inner) != 1 || SHA256_Update(&k.inner, ipad.data(), ipad.size()) != 1 ||
        SHA256_Init(&k.outer) != 1 || SHA256_Update(&k.outer, opad.data(), opad.size()) != 1)
      return hmac_sha256(key, data);  // the EVP one, which throws on failure
    k.key = key;
    k.ready = true;
  }
  sha256_digest inner_hash, out;
  SHA256_CTX ctx = k.inner;
  if (!update_through(ctx, data, k.inner_first) || SHA256_Final(inner_hash.data(), &ctx) != 1)
    return hmac_sha256(key, data);
  ctx = k.outer;
  if (SHA256_Update(&ctx, inner_hash.data(), inner_hash.size()) != 1 || SHA256_Final(out.data(), &ctx) != 1)
    return hmac_sha256(key, data);
  return out;
}

// Sets out.headers[i] to {name, value}, reusing the strings already there.
void set_header(header_list& headers, std::size_t i, std::string_view name, std::string_view value) {
  headers[i].first.assign(name);
  headers[i].second.assign(value);
}

// Every string is written into `out`'s own (cleared, capacity kept): on a client's hot path a signature
// allocates nothing once they have grown.
template <typename SigningKey>
void sign(const request_view& request, const credentials& creds, std::string_view region,
          std::string_view service, std::chrono::system_clock::time_point now, SigningKey&& signing_key,
          signed_headers& out) {
  char stamp[16];
  write_amz_date(now, stamp);
  const std::string_view timestamp(stamp, sizeof stamp);
  const std::string_view date = timestamp.substr(0, 8);
  const std::string_view payload_hash =
      request.payload_sha256.empty() ? empty_payload_sha256 : request.payload_sha256;

  // host, x-amz-date, x-amz-content-sha256, [x-amz-security-token]; authorization follows.
  const std::array<view_pair, 4> own_all{{{"host", request.host},
                                          {"x-amz-date", timestamp},
                                          {"x-amz-content-sha256", payload_hash},
                                          {"x-amz-security-token", creds.session_token}}};
  const auto own = std::span(own_all).first(creds.session_token.empty() ? 3 : 4);

  canonical_uri(request.path, out.canonical_path);
  canonical_query_string(request.query, out.canonical_query);

  header_table table(request.headers.size() + own.size());
  canonical_header_list(table.list, request.headers, own);
  canonical_order(table.list, table.order);

  std::string& canonical_request = out.canonical_request;
  canonical_request.clear();
  canonical_request += request.method;
  canonical_request += '\n';
  canonical_request += out.canonical_path;
  canonical_request += '\n';
  canonical_request += out.canonical_query;
  canonical_request += '\n';
  for (std::size_t i = 0; i < table.order.size(); ++i) {
    const canonical_header& h = table.list[table.order[i]];
    if (i > 0 && h.name == table.list[table.order[i - 1]].name) {  // a repeated name joins the line before
      canonical_request.back() = ',';
    } else {
      canonical_request += h.name;
      canonical_request += ':';
    }
    canonical_request += h.value;
    canonical_request += '\n';
  }
  canonical_request += '\n';  // each header line ends with '\n', and a blank line follows
  const std::size_t names_at = canonical_request.size();
  for (std::size_t i = 0; i < table.order.size(); ++i) {
    const canonical_header& h = table.list[table.order[i]];
    if (i > 0 && h.name == table.list[table.order[i - 1]].name) continue;
    if (i > 0) canonical_request += ';';
    canonical_request += h.name;
  }
  const std::size_t names_size = canonical_request.size() - names_at;
  canonical_request += '\n';
  canonical_request += payload_hash;

  std::string& string_to_sign = out.string_to_sign;
  string_to_sign.clear();
  string_to_sign += algorithm;
  string_to_sign += '\n';
  string_to_sign += timestamp;
  string_to_sign += '\n';
  const std::size_t scope_at = string_to_sign.size();
  string_to_sign += date;
  string_to_sign += '/';
  string_to_sign += region;
  string_to_sign += '/';
  string_to_sign += service;
  string_to_sign += "/aws4_request";
  const std::size_t scope_size = string_to_sign.size() - scope_at;
  string_to_sign += '\n';
  append_hex(string_to_sign, plain_sha256(canonical_request));

  const sha256_digest key = signing_key(date);
  const sha256_digest signature = hmac_under(key, string_to_sign);

  out.headers.resize(own.size() + 1);
  for (std::size_t i = 0; i < own.size(); ++i) set_header(out.headers, i, own[i].first, own[i].second);
  out.headers.back().first.assign("authorization");
  std::string& authorization = out.headers.back().second;
  authorization.clear();
  authorization += algorithm;
  authorization += " Credential=";
  authorization += creds.access_key_id;
  authorization += '/';
  authorization += std::string_view(string_to_sign).substr(scope_at, scope_size);
  authorization += ", SignedHeaders=";
  authorization += std::string_view(canonical_request).substr(names_at, names_size);
  authorization += ", Signature=";
  append_hex(authorization, signature);
}

request_view view_of(const request_to_sign& r) {
  return {r.method, r.host, r.path, r.query, r.headers, r.payload_sha256};
}

}  // namespace

std::string uri_encode(std::string_view text, bool keep_slash) {
  std::string out;
  out.reserve(text.size() + text.size() / 2);
  append_uri_encoded(out, text, keep_slash);
  return out;
}

std::string amz_date(std::chrono::system_clock::time_point time) {
  std::string out(16, ' ');
  write_amz_date(time, out.data());
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

void unsigned_request(const request_view& request, signed_headers& out) {
  canonical_uri(request.path, out.canonical_path);
  canonical_query_string(request.query, out.canonical_query);
  out.canonical_request.clear();
  out.string_to_sign.clear();
  out.headers.resize(1);
  set_header(out.headers, 0, "host", request.host);
}

signed_headers unsigned_request(const request_to_sign& request) {
  signed_headers result;
  unsigned_request(view_of(request), result);
  return result;
}

signed_headers sign_v4(const request_to_sign& request, const credentials& creds, std::string_view region,
                       std::string_view service, std::chrono::system_clock::time_point now) {
  signed_headers result;
  sign(
      view_of(request), creds, region, service, now,
      [&](std::string_view date) {
        return derive_signing_key(creds.secret_access_key, date, region, service);
      },
      result);
  return result;
}

signed_headers sign_v4(const request_to_sign& request, const credentials& creds, std::string_view region,
                       std::string_view service, std::chrono::system_clock::time_point now,
                       signing_key_cache& cache) {
  signed_headers result;
  sign_v4(view_of(request), creds, region, service, now, cache, result);
  return result;
}

void sign_v4(const request_view& request, const credentials& creds, std::string_view region,
             std::string_view service, std::chrono::system_clock::time_point now, signing_key_cache& cache,
             signed_headers& out) {
  sign(
      request, creds, region, service, now,
      [&](std::string_view date) { return cache.get(creds.secret_access_key, date, region, service); }, out);
}

bool read_may_leave_unsigned(std::string_view header_name) {
  constexpr std::string_view names[] = {"range", "if-match", "if-none-match", "if-modified-since",
                                        "if-unmodified-since"};
  return std::any_of(std::begin(names), std::end(names),
                     [&](std::string_view n) { return http::iequals(n, header_name); });
}

namespace {
std::chrono::system_clock::rep whole_seconds(std::chrono::system_clock::time_point t) {
  return std::chrono::floor<std::chrono::seconds>(t).time_since_epoch().count();
}
bool same_query(std::span<const std::pair<std::string, std::string>> a, const query_list& b) {
  return std::equal(a.begin(), a.end(), b.begin(), b.end());
}
}  // namespace

const signed_headers* read_signatures::find(std::string_view method, std::string_view path, query_view query,
                                            std::chrono::system_clock::time_point now,
                                            const credentials& creds) const {
  const auto second = whole_seconds(now);
  for (const auto& e : entries_) {
    if (e.valid && e.second == second && e.path == path && e.method == method && same_query(query, e.query) &&
        e.creds == creds)
      return &e.sig;
  }
  return nullptr;
}

signed_headers& read_signatures::claim() {
  next_ = (next_ + 1) % capacity;
  auto& e = claimed();
  e.valid = false;  // its output is rewritten, and stays half-written if the signer throws
  return e.sig;
}

void read_signatures::remember(std::string_view method, std::string_view path, query_view query,
                               std::chrono::system_clock::time_point now, const credentials& creds) {
  auto& e = claimed();
  e.method.assign(method);
  e.path.assign(path);
  e.query.assign(query.begin(), query.end());
  e.second = whole_seconds(now);
  e.creds = creds;  // copy assignment: the strings keep their capacity
  e.valid = true;
}

}  // namespace mediagate::s3
