#include "http/content_type.hpp"

#include <algorithm>
#include <array>
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

}  // namespace

std::string_view content_type_for_key(std::string_view key) {
  const auto slash = key.rfind('/');
  const auto name = slash == std::string_view::npos ? key : key.substr(slash + 1);
  const auto dot = name.rfind('.');
  if (dot == std::string_view::npos || dot + 1 == name.size() || dot + 6 < name.size()) return {};
  std::string ext(name.substr(dot + 1));
  for (auto& c : ext) c = static_cast<char>(c >= 'A' && c <= 'Z' ? c - 'A' + 'a' : c);
  auto it = std::lower_bound(kTypes.begin(), kTypes.end(), ext,
                             [](const auto& entry, const std::string& e) { return entry.first < e; });
  if (it == kTypes.end() || it->first != ext) return {};
  return it->second;
}

bool is_generic_type(std::string_view type) {
  type = trim_ows(type.substr(0, type.find(';')));
  return type.empty() || iequals(type, "binary/octet-stream") || iequals(type, "application/octet-stream");
}

}  // namespace mediagate::http
