#pragma once
// Signed expiring links (like nginx's secure_link, CloudFront's signed URLs): the query string
// `exp=<unix seconds>&kid=<key id>[&pfx=1][&ip=<CIDR>]&sig=<base64url HMAC-SHA256>` authorises GET and HEAD
// of one decoded key, or of every key under a prefix (pfx=1), until `exp`. Pure: no clock, no I/O.
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace mediagate::http {

struct signing_key {
  std::string kid;
  std::string secret;  // raw bytes, at least 32
};

// "KID SECRET" a line (secret in base64url or hex, at least 32 bytes once decoded); '#' starts a comment.
// The first key signs, all verify (rotation). An error message names the line that is wrong.
struct signing_keys_or_error {
  std::vector<signing_key> keys;
  std::string error;
};
signing_keys_or_error parse_signing_keys(std::string_view text);

// What a link grants: the method class is always GET (GET and HEAD), the rest is in the query.
struct link_grant {
  std::string key;           // the exact decoded key, or the folder ("a/b/", "" for all) when `prefix` is set
  std::int64_t expires = 0;  // unix seconds
  bool prefix = false;
  std::string ip_cidr;  // "" or an address/prefix-length the client must come from
};

// The string the MAC covers: version, method class, key, expiry, prefix flag and bindings, one a line.
std::string canonical_link_string(const link_grant& g);

// The query string (without '?') for `g`, signed with `k`; the key itself goes in the path.
std::string sign_link(const link_grant& g, const signing_key& k);

enum class link_verdict {
  ok,
  missing,        // no sig/exp/kid at all
  garbled,        // present but malformed (numbers, encodings, duplicates)
  expired,        // exp (plus the allowed skew) is in the past
  unknown_kid,    // no key with that id
  bad_signature,  // tampered, or made with another key, or for another key/prefix
  wrong_method,   // links open GET and HEAD only
  wrong_address,  // the client is outside the bound CIDR
};
std::string_view verdict_reason(link_verdict v);  // one line for the 403 body and the metric label

struct link_request {
  std::string_view query;  // the request's query string
  std::string_view key;    // the decoded key asked for
  bool get_or_head = true;
  std::string_view client_ip;  // "127.0.0.1", "::1"
};

// Checks the link in constant time per candidate key; `now` and `skew` in seconds.
link_verdict verify_link(const link_request& r, const std::vector<signing_key>& keys, std::int64_t now,
                         std::int64_t skew);

// The query with the value of `sig` replaced by "REDACTED" (for logs).
std::string redact_signature(std::string_view target);

// Whether `ip` lies in `cidr` ("10.0.0.0/8", "::1/128", a bare address = one host).
bool ip_in_cidr(std::string_view ip, std::string_view cidr);

}  // namespace mediagate::http
