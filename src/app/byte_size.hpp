#pragma once
// Sizes as users write them on the command line: "20GiB", "1MiB", "512k", "1048576".
#include <cstdint>
#include <optional>
#include <string_view>

namespace mediagate::app {

// Binary (KiB, MiB, GiB, TiB, and K/M/G/T) and decimal (kB, MB, GB, TB) suffixes, case-insensitive for the
// binary ones; nullopt on anything else or on overflow.
std::optional<std::uint64_t> parse_byte_size(std::string_view text);

}  // namespace mediagate::app
