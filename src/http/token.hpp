#pragma once
// Small lexical helpers for HTTP field values (RFC 9110 §5.6): whitespace, lists, numbers.
#include <cstdint>
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

// A non-empty run of ASCII digits that fits in 64 bits; anything else (signs, spaces, overflow) is nullopt.
std::optional<std::uint64_t> parse_decimal(std::string_view s);

}  // namespace mediagate::http
