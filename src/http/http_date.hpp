#pragma once
// HTTP-date (RFC 9110 §5.6.7): IMF-fixdate to send; IMF-fixdate, RFC 850 and asctime accepted.
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

namespace mediagate::http {

// "Sun, 06 Nov 1994 08:49:37 GMT" for seconds since the epoch: in a fixed buffer (every response sends one),
// or as a string.
struct http_date_text {
  char chars[29];
  std::string_view view() const { return {chars, sizeof chars}; }
};
http_date_text http_date(std::int64_t unix_seconds);
std::string format_http_date(std::int64_t unix_seconds);

// Seconds since the epoch, or nullopt for anything that is not one of the three HTTP-date forms.
std::optional<std::int64_t> parse_http_date(std::string_view s);

// ISO 8601 UTC as S3 and STS write it: "2009-10-12T17:50:30.000Z" or "2009-10-12T17:50:30Z".
std::optional<std::int64_t> parse_iso8601_utc(std::string_view s);

}  // namespace mediagate::http
