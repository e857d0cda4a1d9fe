#pragma once
// Guessing a media type from the first bytes of an object (libmagic), for keys without a known extension.
#include <cstdint>
#include <optional>
#include <span>
#include <string>
#include <string_view>

namespace mediagate::storage {

inline constexpr std::size_t kSniffBytes = 4096;

// The type libmagic sees in `head`, limited to types that are safe to serve from our origin (media and
// plain text); anything else, and anything unknown, is "application/octet-stream".
std::string sniff_content_type(std::span<const char> head);

// Where the index (moov box) of an MP4/QuickTime file of `size` bytes starts when it comes after the media
// data: `head` holds the file's first bytes, whose top-level boxes (ftyp first) are walked until an mdat box,
// whose end is the answer when it is inside the file. nullopt when the index comes first (a fast-start
// file), when the head is not an MP4 or does not reach the mdat box's header, or when the sizes do not add
// up.
std::optional<std::uint64_t> mp4_index_after_media(std::span<const char> head, std::uint64_t size);

// Whether a key names an MP4-family file (whose index box may follow the media), by its extension.
bool mp4_family_key(std::string_view key);

}  // namespace mediagate::storage
