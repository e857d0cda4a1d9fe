#include "http/signed_link.hpp"

#include <arpa/inet.h>

#include <algorithm>
#include <array>
#include <cstring>

#include "common/crypto.hpp"
#include "http/media_key.hpp"
#include "http/token.hpp"

namespace mediagate::http {
namespace {

constexpr std::size_t kMinSecretBytes = 32;
constexpr std::size_t kMaxKidBytes = 64;

std::optional<std::string> decode_secret(std::string_view text) {
  if (auto raw = hex_decode(text)) return raw;
  return base64url_decode(text);
}

bool valid_kid(std::string_view kid) {
  if (kid.empty() || kid.size() > kMaxKidBytes) return false;
  for (char ch : kid)
    if (!std::isalnum(static_cast<unsigned char>(ch)) && ch != '-' && ch != '_' && ch != '.') return false;
  return true;
}

// The parameters of a link; a parameter given twice makes the link garbled.
struct link_params {
  std::optional<std::string> exp, kid, sig, pfx, ip;
  bool duplicate = false;
};

link_params params_of(std::string_view query) {
  link_params p;
  auto take = [&](std::optional<std::string>& slot, std::string_view name) {
    if (auto v = query_param(query, name)) {
      if (slot) p.duplicate = true;
      slot = std::move(*v);
    }
  };
  take(p.exp, "exp");
  take(p.kid, "kid");
  take(p.sig, "sig");
  take(p.pfx, "pfx");
  take(p.ip, "ip");
  // query_param returns the first value: count occurrences to refuse repeated parameters.
  for (std::string_view name : {"exp=", "kid=", "sig=", "pfx=", "ip="}) {
    std::size_t count = 0;
    for (std::size_t at = 0; (at = query.find(name, at)) != std::string_view::npos; at += name.size())
      if (at == 0 || query[at - 1] == '&') ++count;
    if (count > 1) p.duplicate = true;
  }
  return p;
}

std::string mac_of(const link_grant& g, const signing_key& k) {
  const auto digest = hmac_sha256(k.secret, canonical_link_string(g));
  return base64url(digest);
}

}  // namespace

signing_keys_or_error parse_signing_keys(std::string_view text) {
  signing_keys_or_error out;
  std::size_t line_no = 0;
  while (!text.empty()) {
    const auto nl = text.find('\n');
    auto line = text.substr(0, nl);
    text = nl == std::string_view::npos ? std::string_view() : text.substr(nl + 1);
    ++line_no;
    if (const auto hash = line.find('#'); hash != std::string_view::npos) line = line.substr(0, hash);
    line = trim_ows(line);
    while (!line.empty() && line.back() == '\r') line = trim_ows(line.substr(0, line.size() - 1));
    if (line.empty()) continue;
    const auto space = line.find_first_of(" \t");
    const auto where = "line " + std::to_string(line_no) + ": ";
    if (space == std::string_view::npos) return {{}, where + "want 'KID SECRET'"};
    const auto kid = line.substr(0, space);
    const auto secret_text = trim_ows(line.substr(space + 1));
    if (!valid_kid(kid)) return {{}, where + "the key id must be 1-64 letters, digits, '-', '_' or '.'"};
    auto secret = decode_secret(secret_text);
    if (!secret) return {{}, where + "the secret must be base64url or hex"};
    if (secret->size() < kMinSecretBytes)
      return {{}, where + "the secret must have at least 32 random bytes (e.g. openssl rand -hex 32)"};
    for (const auto& k : out.keys)
      if (k.kid == kid) return {{}, where + "key id '" + std::string(kid) + "' is given twice"};
    out.keys.push_back({std::string(kid), std::move(*secret)});
  }
  if (out.keys.empty()) out.error = "no keys: want one 'KID SECRET' a line";
  return out;
}

std::string canonical_link_string(const link_grant& g) {
  std::string s = "mediagate-link-v1\nGET\n";
  s.append(g.key).append("\n").append(std::to_string(g.expires)).append("\n");
  s.append(g.prefix ? "prefix" : "exact").append("\n").append(g.ip_cidr);
  return s;
}

std::string sign_link(const link_grant& g, const signing_key& k) {
  std::string q = "exp=" + std::to_string(g.expires) + "&kid=" + k.kid;
  if (g.prefix) q += "&pfx=1";
  if (!g.ip_cidr.empty()) q += "&ip=" + encode_key_for_url(g.ip_cidr);
  q += "&sig=" + mac_of(g, k);
  return q;
}

std::string_view verdict_reason(link_verdict v) {
  switch (v) {
    case link_verdict::ok:
      return "ok";
    case link_verdict::missing:
      return "missing";
    case link_verdict::garbled:
      return "garbled";
    case link_verdict::expired:
      return "expired";
    case link_verdict::unknown_kid:
      return "unknown_kid";
    case link_verdict::bad_signature:
      return "bad_signature";
    case link_verdict::wrong_method:
      return "wrong_method";
    case link_verdict::wrong_address:
      return "wrong_address";
  }
  return "garbled";
}

link_verdict verify_link(const link_request& r, const std::vector<signing_key>& keys, std::int64_t now,
                         std::int64_t skew) {
  const auto p = params_of(r.query);
  if (!p.exp && !p.kid && !p.sig) return link_verdict::missing;
  if (!p.exp || !p.kid || !p.sig || p.duplicate) return link_verdict::garbled;
  const auto exp = parse_decimal(*p.exp);
  if (!exp || *exp > static_cast<std::uint64_t>(INT64_MAX) / 2 || p.sig->size() != 43)
    return link_verdict::garbled;
  if (p.pfx && *p.pfx != "1") return link_verdict::garbled;
  link_grant g;
  g.expires = static_cast<std::int64_t>(*exp);
  g.prefix = p.pfx.has_value();
  g.ip_cidr = p.ip.value_or("");
  const signing_key* k = nullptr;
  for (const auto& candidate : keys)
    if (candidate.kid == *p.kid) k = &candidate;
  if (!k) return link_verdict::unknown_kid;
  // Signature before anything else it covers: a tampered expiry or address reads as a bad signature. A prefix
  // link signs a folder ("a/b/", or "" for everything): every folder above the key is a candidate.
  bool signed_ok = false;
  if (g.prefix) {
    if (std::count(r.key.begin(), r.key.end(), '/') > 32) return link_verdict::garbled;  // bounded work
    for (std::size_t i = 0; i <= r.key.size(); ++i) {
      if (i != 0 && r.key[i - 1] != '/') continue;
      g.key = std::string(r.key.substr(0, i));
      signed_ok |= constant_time_equal(mac_of(g, *k), *p.sig);
    }
  } else {
    g.key = std::string(r.key);
    signed_ok = constant_time_equal(mac_of(g, *k), *p.sig);
  }
  if (!signed_ok) return link_verdict::bad_signature;
  if (!r.get_or_head) return link_verdict::wrong_method;
  if (g.expires + skew < now) return link_verdict::expired;
  if (!g.ip_cidr.empty() && !ip_in_cidr(r.client_ip, g.ip_cidr)) return link_verdict::wrong_address;
  return link_verdict::ok;
}

std::string redact_signature(std::string_view target) {
  const auto q = target.find('?');
  if (q == std::string_view::npos) return std::string(target);
  std::string out(target.substr(0, q + 1));
  auto query = target.substr(q + 1);
  bool first = true;
  while (true) {
    const auto amp = query.find('&');
    const auto pair = query.substr(0, amp);
    if (!first) out += '&';
    first = false;
    out += pair.starts_with("sig=") ? std::string("sig=REDACTED") : std::string(pair);
    if (amp == std::string_view::npos) break;
    query = query.substr(amp + 1);
  }
  return out;
}

bool ip_in_cidr(std::string_view ip, std::string_view cidr) {
  const auto slash = cidr.find('/');
  const std::string net(cidr.substr(0, slash));
  const std::string addr(ip);
  std::array<unsigned char, 16> a{}, n{};
  int bits_total = 0;
  if (inet_pton(AF_INET, net.c_str(), n.data()) == 1) {
    if (inet_pton(AF_INET, addr.c_str(), a.data()) != 1) {
      // An IPv4-mapped IPv6 client ("::ffff:10.0.0.1") against an IPv4 network.
      if (!addr.starts_with("::ffff:") || inet_pton(AF_INET, addr.c_str() + 7, a.data()) != 1) return false;
    }
    bits_total = 32;
  } else if (inet_pton(AF_INET6, net.c_str(), n.data()) == 1) {
    if (inet_pton(AF_INET6, addr.c_str(), a.data()) != 1) return false;
    bits_total = 128;
  } else {
    return false;
  }
  int bits = bits_total;
  if (slash != std::string_view::npos) {
    const auto parsed = parse_decimal(cidr.substr(slash + 1));
    if (!parsed || *parsed > static_cast<std::uint64_t>(bits_total)) return false;
    bits = static_cast<int>(*parsed);
  }
  for (int i = 0; i < bits; ++i) {
    const int byte = i / 8, bit = 7 - i % 8;
    if (((a[byte] >> bit) & 1) != ((n[byte] >> bit) & 1)) return false;
  }
  return true;
}

}  // namespace mediagate::http
