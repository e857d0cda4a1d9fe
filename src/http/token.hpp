#pragma once
// Small lexical helpers for HTTP field values (RFC 9110 §5.6): whitespace, lists, numbers.
#include <cstdint>
#include <cstring>
#include <optional>
#include <string_view>
#include <vector>

namespace mediagate::http {

// Removes optional whitespace (SP / HTAB) from both ends.
std::string_view trim_ows(std::string_view s);

// ASCII case-insensitive equality.
bool iequals(std::string_view a, std::string_view b);

// Splits a comma-separated list into trimmed elements (empty ones kept; callers skip them).
std::vector<std::string_view> split_list(std::string_view s);

// True when some byte of `text` is below `limit` (1..128), 8 bytes per step: every field of every response
// and every signed S3 request is checked, and almost none has such a byte. Bytes of 128 and up are never
// below it. (The "hasless" word trick: a byte below `limit` borrows into its own top bit, and only a byte
// that had its top bit clear counts.)
inline bool has_byte_below(std::string_view text, unsigned char limit) {
  constexpr std::uint64_t ones = 0x0101010101010101ull;
  const std::uint64_t below = ones * limit;
  std::size_t i = 0;
  for (; i + 8 <= text.size(); i += 8) {
    std::uint64_t w;
    std::memcpy(&w, text.data() + i, sizeof w);
    if (((w - below) & ~w & (ones * 0x80)) != 0) return true;
  }
  for (; i < text.size(); ++i)
    if (static_cast<unsigned char>(text[i]) < limit) return true;
  return false;
}

// True when `value` holds CR, LF or NUL: a byte that would end a header field's line.
inline bool has_line_break(std::string_view value) {
  if (!has_byte_below(value, '\r' + 1)) return false;  // the usual case, 8 bytes per step
  for (const char c : value)
    if (c == '\r' || c == '\n' || c == '\0') return true;
  return false;
}

// A non-empty run of ASCII digits that fits in 64 bits; anything else (signs, spaces, overflow) is nullopt.
std::optional<std::uint64_t> parse_decimal(std::string_view s);

}  // namespace mediagate::http
