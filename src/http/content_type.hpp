#pragma once
// Media types by file extension, and the choice between a stored, an extension and a sniffed type.
#include <string_view>

namespace mediagate::http {

// The media type for the extension of `key` ("video/mp4" for "a/b.MP4"), or "" when unknown.
std::string_view content_type_for_key(std::string_view key);

// True for types that say nothing about the content: empty, S3's default "binary/octet-stream",
// "application/octet-stream" (DESIGN.md: such stored types are replaced by the extension's or a sniffed one).
bool is_generic_type(std::string_view type);

}  // namespace mediagate::http
