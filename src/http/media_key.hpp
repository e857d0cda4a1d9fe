#pragma once
// Turning the path of a request target into a storage key, refusing anything that could escape the root.
#include <optional>
#include <string>
#include <string_view>

namespace mediagate::http {

inline constexpr std::size_t kMaxKeyBytes = 1024;  // S3's own limit on key length

// Percent-decodes `encoded` (the path after "/media/", without query) into a key. nullopt when the key is
// empty, longer than kMaxKeyBytes, not UTF-8, has a malformed escape, a NUL or other control byte, a
// backslash, an empty, "." or ".." segment, or a leading "/".
std::optional<std::string> decode_media_key(std::string_view encoded);

// Percent-encodes a key for use in a URL path ("/" kept), for links and Location headers.
std::string encode_key_for_url(std::string_view key);

// Splits a request target into its path and query (the part after '?', without it).
struct target_parts {
  std::string_view path;
  std::string_view query;
};
// An absolute-form target ("http://host:8080/media/x", RFC 9112 §3.2.2) is reduced to its path and query.
target_parts split_target(std::string_view target);

// The decoded value of query parameter `name`, if present.
std::optional<std::string> query_param(std::string_view query, std::string_view name);

// Percent-decoding ("+" is kept as "+", as in paths); nullopt on a malformed escape.
std::optional<std::string> percent_decode(std::string_view s, bool plus_as_space = false);

}  // namespace mediagate::http
