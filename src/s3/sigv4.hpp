#pragma once

// AWS Signature Version 4 for S3 requests, in the Authorization header, as pure functions of plain values.
// The clock is a parameter, so tests pin it.
//
// Reference: "Authenticating Requests (AWS Signature Version 4)" in the Amazon S3 API Reference, and its
// "Signature Calculations for the Authorization Header: Transferring Payload in a Single Chunk" examples,
// which tests/unit/sigv4_test.cpp reproduces.

#include <array>
#include <chrono>
#include <mutex>
#include <span>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "common/crypto.hpp"

namespace mediagate::s3 {

using header_list = std::vector<std::pair<std::string, std::string>>;
using query_list = std::vector<std::pair<std::string, std::string>>;

struct credentials {
  std::string access_key_id;
  std::string secret_access_key;
  std::string session_token;  // empty unless the credentials are temporary (STS, IRSA, IMDS)
  bool operator==(const credentials&) const = default;
};

inline constexpr std::string_view unsigned_payload = "UNSIGNED-PAYLOAD";
inline constexpr std::string_view empty_payload_sha256 =
    "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855";

struct request_to_sign {
  std::string method;  // "GET", "PUT", ...
  std::string host;    // the Host header exactly as it will be sent, with ":port" unless it is the default
  // The object path, raw and NOT yet encoded: "/bucket/my key+é.mp4" (path style) or "/my key+é.mp4"
  // (virtual-hosted style). Empty means "/". S3 paths are neither normalised nor encoded twice.
  std::string path;
  query_list query;  // decoded names and values; order does not matter; "?lifecycle" is {"lifecycle", ""}
  // Further headers to sign and send, e.g. {"range", "bytes=0-9"}; names in any case. The signer owns
  // host, x-amz-date, x-amz-content-sha256, x-amz-security-token and authorization: passing one throws.
  header_list headers;
  // Lowercase hex SHA-256 of the body, or unsigned_payload. Empty means the empty body.
  std::string payload_sha256;
};

// The same request by reference, for a caller that signs on every request and keeps its own strings (the S3
// client): nothing is copied.
struct request_view {
  std::string_view method;
  std::string_view host;
  std::string_view path;
  std::span<const std::pair<std::string, std::string>> query;
  std::span<const std::pair<std::string, std::string>> headers;
  std::string_view payload_sha256;
};

struct signed_headers {
  // host, x-amz-date, x-amz-content-sha256, x-amz-security-token (with a session token), authorization:
  // add them to the request next to request_to_sign::headers.
  header_list headers;
  std::string canonical_path;   // the URI-encoded path to put on the wire
  std::string canonical_query;  // the encoded, sorted query string to put on the wire (without '?')
  // For diagnostics: S3 echoes its own CanonicalRequest in a SignatureDoesNotMatch error.
  std::string canonical_request;
  std::string string_to_sign;
};

// SigV4's URI encoding: every byte except A-Z a-z 0-9 - _ . ~ becomes %XX (uppercase hex); '/' is kept when
// keep_slash is true (object paths) and encoded otherwise (query names and values).
std::string uri_encode(std::string_view text, bool keep_slash);

// "20130524T000000Z" (ISO 8601 basic, UTC), the form of x-amz-date.
std::string amz_date(std::chrono::system_clock::time_point time);

// kSigning = HMAC(HMAC(HMAC(HMAC("AWS4" + secret, date), region), service), "aws4_request"), where date is
// "YYYYMMDD".
sha256_digest derive_signing_key(std::string_view secret_access_key, std::string_view date,
                                 std::string_view region, std::string_view service);

// Remembers derived signing keys: they change once a day per (region, service, secret), and deriving one
// costs four HMACs. Thread-safe; holds at most a handful of entries.
class signing_key_cache {
 public:
  sha256_digest get(std::string_view secret_access_key, std::string_view date, std::string_view region,
                    std::string_view service);
  std::size_t size() const;

 private:
  struct entry {
    std::string date, region, service, secret;
    sha256_digest key;
  };
  static constexpr std::size_t max_entries_ = 8;
  mutable std::mutex mutex_;
  std::vector<entry> entries_;
};

signed_headers sign_v4(const request_to_sign& request, const credentials& creds, std::string_view region,
                       std::string_view service, std::chrono::system_clock::time_point now);

// An anonymous request (a public bucket, like `aws s3 --no-sign-request`): the same encoded path and query,
// and only the host header; nothing is signed.
signed_headers unsigned_request(const request_to_sign& request);

// The same, with the signing key taken from `cache`.
signed_headers sign_v4(const request_to_sign& request, const credentials& creds, std::string_view region,
                       std::string_view service, std::chrono::system_clock::time_point now,
                       signing_key_cache& cache);

// The same signature written into `out`, whose strings and header list keep their capacity from the call
// before: a client that signs every request it sends allocates nothing once they have grown. Throws as
// sign_v4 does.
void sign_v4(const request_view& request, const credentials& creds, std::string_view region,
             std::string_view service, std::chrono::system_clock::time_point now, signing_key_cache& cache,
             signed_headers& out);
void unsigned_request(const request_view& request, signed_headers& out);

// Headers a read (GET or HEAD without a body) may send unsigned: Range and the four preconditions. SigV4 asks
// only for host and the x-amz-* headers to be signed (a presigned URL signs nothing else), and S3 and radosgw
// check exactly the headers that SignedHeaders names. Names in any case.
bool read_may_leave_unsigned(std::string_view header_name);

// The signatures of the last few reads with no signed header of their own. Such a read's signature depends
// only on the method, path, query, credentials and x-amz-date (whole seconds), so another read of one of
// those objects within the same second reuses it instead of hashing the same canonical request again. A few
// entries, so that a handful of hot objects read in turn (viewers of different videos on one event loop)
// keep theirs.
class read_signatures {
 public:
  static constexpr std::size_t capacity = 8;
  using query_view = std::span<const std::pair<std::string, std::string>>;

  // The signature made for these inputs within this second, or null.
  const signed_headers* find(std::string_view method, std::string_view path, query_view query,
                             std::chrono::system_clock::time_point now, const credentials& creds) const;
  // Where to sign a read that find() did not have: the oldest entry's output, forgotten until remember().
  signed_headers& claim();
  // The entry claim() gave now holds a signature for these inputs.
  void remember(std::string_view method, std::string_view path, query_view query,
                std::chrono::system_clock::time_point now, const credentials& creds);

 private:
  struct entry {
    bool valid = false;
    std::string method, path;
    query_list query;
    std::chrono::system_clock::rep second = 0;
    credentials creds;
    signed_headers sig;
  };
  entry& claimed() { return entries_[(next_ + capacity - 1) % capacity]; }  // the entry claim() gave last
  std::array<entry, capacity> entries_;
  std::size_t next_ = 0;  // the entry claim() gives next (round robin: the oldest)
};

}  // namespace mediagate::s3
