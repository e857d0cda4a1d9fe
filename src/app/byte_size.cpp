#include "app/byte_size.hpp"

#include <array>
#include <utility>

#include "http/token.hpp"

namespace mediagate::app {

std::optional<std::uint64_t> parse_byte_size(std::string_view text) {
  text = http::trim_ows(text);
  std::size_t digits = 0;
  while (digits < text.size() && text[digits] >= '0' && text[digits] <= '9') ++digits;
  auto number = http::parse_decimal(text.substr(0, digits));
  if (!number) return std::nullopt;
  const auto suffix = http::trim_ows(text.substr(digits));
  static constexpr std::array<std::pair<std::string_view, std::uint64_t>, 14> kUnits = {{
      {"", 1},
      {"b", 1},
      {"k", 1ull << 10},
      {"kib", 1ull << 10},
      {"m", 1ull << 20},
      {"mib", 1ull << 20},
      {"g", 1ull << 30},
      {"gib", 1ull << 30},
      {"t", 1ull << 40},
      {"tib", 1ull << 40},
      {"kb", 1000ull},
      {"mb", 1000ull * 1000},
      {"gb", 1000ull * 1000 * 1000},
      {"tb", 1000ull * 1000 * 1000 * 1000},
  }};
  for (const auto& [name, factor] : kUnits) {
    if (!http::iequals(suffix, name)) continue;
    if (*number > UINT64_MAX / factor) return std::nullopt;
    return *number * factor;
  }
  return std::nullopt;
}

}  // namespace mediagate::app
