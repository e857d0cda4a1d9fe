#pragma once
// The on-disk cache of an MP4's index (issue 14): what a server needs to rebuild a movie's segment index
// after a restart without reading the object's moov from storage again. The file holds the moov box as
// stored, behind a header that names whose index it is (key, ETag, size) and a SHA-256 of the whole: a
// truncated, bit-flipped or foreign file is refused and rebuilt from storage, never trusted. The moov is
// parsed again on load (the parser checks every table against the object's size, as for bytes from storage);
// parsing is cheap next to a storage round trip, and the format stays that of the source, not of our
// structures.
//
// Layout (big-endian): "MGMOOV\r\n" (8) | version u32 | key: u32 length + bytes | ETag: u32 length + bytes |
// object size u64 | moov offset u64 | moov header u64 | moov: u64 length + bytes | SHA-256 of all before
// (32).
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

#include "mp4/locate.hpp"

namespace mediagate::mp4 {

inline constexpr std::uint32_t kIndexFileVersion = 1;

struct index_file {
  std::uint64_t object_size = 0;
  moov_location location;
  std::string moov;  // the whole box, header included
};

std::string encode_index_file(std::string_view key, std::string_view etag, const index_file& f);

// The index in `data` when it is a whole, intact file of this version for exactly `key` at `etag`; nullopt
// otherwise (any size that does not fit, a wrong checksum, another key or version).
std::optional<index_file> decode_index_file(std::string_view data, std::string_view key,
                                            std::string_view etag);

}  // namespace mediagate::mp4
