#pragma once
// A scan over header text 8 bytes per step, for the checks the S3 client makes on every request it signs and
// sends (a byte per step showed in callgrind profiles: about 5 instructions per byte over ~600 bytes).
#include <cstdint>
#include <cstring>
#include <string_view>

namespace mediagate::s3 {

// True when some byte of `text` is below `limit` (1..128): no false answer either way. Bytes of 128 and up
// are never below it. (The "hasless" word trick: a byte below `limit` borrows into its own top bit, and only
// a byte that had its top bit clear counts.)
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

}  // namespace mediagate::s3
