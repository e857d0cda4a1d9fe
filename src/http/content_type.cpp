#include "http/content_type.hpp"

#include <algorithm>
#include <array>
#include <cstdint>
#include <string>
#include <utility>

#include "http/token.hpp"

namespace mediagate::http {
namespace {

// Sorted by extension for binary search. Text types that browsers read carry a charset.
constexpr std::array<std::pair<std::string_view, std::string_view>, 54> kTypes = {{
    {"3g2", "video/3gpp2"},
    {"3gp", "video/3gpp"},
    {"aac", "audio/aac"},
    {"aif", "audio/aiff"},
    {"aiff", "audio/aiff"},
    {"apng", "image/apng"},
    {"avi", "video/x-msvideo"},
    {"avif", "image/avif"},
    {"bmp", "image/bmp"},
    {"caf", "audio/x-caf"},
    {"css", "text/css; charset=utf-8"},
    {"flac", "audio/flac"},
    {"gif", "image/gif"},
    {"heic", "image/heic"},
    {"heif", "image/heif"},
    {"htm", "text/html; charset=utf-8"},
    {"html", "text/html; charset=utf-8"},
    {"ico", "image/x-icon"},
    {"jpeg", "image/jpeg"},
    {"jpg", "image/jpeg"},
    {"js", "text/javascript; charset=utf-8"},
    {"json", "application/json"},
    {"jxl", "image/jxl"},
    {"m2ts", "video/mp2t"},
    {"m3u", "audio/x-mpegurl"},
    {"m3u8", "application/vnd.apple.mpegurl"},
    {"m4a", "audio/mp4"},
    {"m4s", "video/iso.segment"},
    {"m4v", "video/x-m4v"},
    {"mid", "audio/midi"},
    {"mka", "audio/x-matroska"},
    {"mkv", "video/x-matroska"},
    {"mov", "video/quicktime"},
    {"mp3", "audio/mpeg"},
    {"mp4", "video/mp4"},
    {"mpd", "application/dash+xml"},
    {"mpeg", "video/mpeg"},
    {"mpg", "video/mpeg"},
    {"oga", "audio/ogg"},
    {"ogg", "audio/ogg"},
    {"ogv", "video/ogg"},
    {"opus", "audio/ogg"},
    {"pdf", "application/pdf"},
    {"png", "image/png"},
    {"srt", "application/x-subrip"},
    {"svg", "image/svg+xml"},
    {"tif", "image/tiff"},
    {"tiff", "image/tiff"},
    {"ts", "video/mp2t"},
    {"txt", "text/plain; charset=utf-8"},
    {"vtt", "text/vtt; charset=utf-8"},
    {"wav", "audio/wav"},
    {"webm", "video/webm"},
    {"webp", "image/webp"},
}};

static_assert(std::is_sorted(kTypes.begin(), kTypes.end()));

// An extension of up to 5 characters as a number whose order is the extensions' (shorter first on a tie).
constexpr std::uint64_t packed(std::string_view ext) {
  std::uint64_t v = 0;
  for (std::size_t i = 0; i < 5; ++i)
    v = (v << 8) | (i < ext.size() ? static_cast<unsigned char>(ext[i]) : 0u);
  return v;
}

constexpr auto kPacked = [] {
  std::array<std::uint64_t, kTypes.size()> out{};
  for (std::size_t i = 0; i < kTypes.size(); ++i) out[i] = packed(kTypes[i].first);
  return out;
}();
static_assert(std::all_of(kTypes.begin(), kTypes.end(), [](const auto& t) { return t.first.size() <= 5; }));
static_assert(std::is_sorted(kPacked.begin(), kPacked.end()) &&
              std::adjacent_find(kPacked.begin(), kPacked.end()) == kPacked.end());

}  // namespace

std::string_view content_type_for_key(std::string_view key) {
  const auto slash = key.rfind('/');
  const auto name = slash == std::string_view::npos ? key : key.substr(slash + 1);
  const auto dot = name.rfind('.');
  if (dot == std::string_view::npos || dot + 1 == name.size() || dot + 6 < name.size()) return {};
  const auto raw = name.substr(dot + 1);
  char lowered[5];  // at most 5 characters (checked above)
  for (std::size_t i = 0; i < raw.size(); ++i) {
    if (raw[i] == '\0') return {};  // would pack as a shorter extension
    lowered[i] = static_cast<char>(raw[i] >= 'A' && raw[i] <= 'Z' ? raw[i] - 'A' + 'a' : raw[i]);
  }
  // Compared as numbers: this runs for every media request.
  const auto want = packed({lowered, raw.size()});
  const auto it = std::lower_bound(kPacked.begin(), kPacked.end(), want);
  if (it == kPacked.end() || *it != want) return {};
  return kTypes[static_cast<std::size_t>(it - kPacked.begin())].second;
}

bool is_generic_type(std::string_view type) {
  type = trim_ows(type.substr(0, type.find(';')));
  return type.empty() || iequals(type, "binary/octet-stream") || iequals(type, "application/octet-stream");
}

}  // namespace mediagate::http
