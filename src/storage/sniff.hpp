#pragma once
// Guessing a media type from the first bytes of an object (libmagic), for keys without a known extension.
#include <span>
#include <string>

namespace mediagate::storage {

inline constexpr std::size_t kSniffBytes = 4096;

// The type libmagic sees in `head`, limited to types that are safe to serve from our origin (media and
// plain text); anything else, and anything unknown, is "application/octet-stream".
std::string sniff_content_type(std::span<const char> head);

}  // namespace mediagate::storage
