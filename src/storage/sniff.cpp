#include "storage/sniff.hpp"

#include <magic.h>

#include <memory>
#include <string_view>

#include "http/content_type.hpp"

namespace mediagate::storage {
namespace {

struct magic_closer {
  void operator()(magic_set* m) const { magic_close(m); }
};

// libmagic cookies are not thread-safe: one per thread, loaded once.
magic_set* thread_cookie() {
  thread_local std::unique_ptr<magic_set, magic_closer> cookie = [] {
    std::unique_ptr<magic_set, magic_closer> c(magic_open(MAGIC_MIME_TYPE | MAGIC_ERROR));
    if (c && magic_load(c.get(), nullptr) != 0) c.reset();
    return c;
  }();
  return cookie.get();
}

}  // namespace

std::string sniff_content_type(std::span<const char> head) {
  constexpr std::string_view kUnknown = "application/octet-stream";
  auto* cookie = thread_cookie();
  if (!cookie || head.empty()) return std::string(kUnknown);
  const char* type = magic_buffer(cookie, head.data(), head.size());
  if (!type) return std::string(kUnknown);
  std::string_view t(type);
  // Never let sniffing turn an upload into HTML or SVG served from our origin.
  const bool safe = (t.starts_with("video/") || t.starts_with("audio/") ||
                     (t.starts_with("image/") && t != "image/svg+xml") || t == "text/plain");
  if (!safe) return std::string(kUnknown);
  if (t == "text/plain") return "text/plain; charset=utf-8";
  return std::string(t);
}

std::optional<std::uint64_t> mp4_index_after_media(std::span<const char> head, std::uint64_t size) {
  auto be = [&](std::size_t at, int bytes) {
    std::uint64_t v = 0;
    for (int i = 0; i < bytes; ++i) v = (v << 8) | static_cast<unsigned char>(head[at + i]);
    return v;
  };
  std::uint64_t at = 0;
  for (int boxes = 0; boxes < 64 && at + 8 <= head.size(); ++boxes) {
    const auto pos = static_cast<std::size_t>(at);
    const std::string_view type(head.data() + pos + 4, 4);
    if (boxes == 0 && type != "ftyp") return std::nullopt;  // not an MP4 (or not one we know the start of)
    if (type == "moov") return std::nullopt;                // the index comes first
    std::uint64_t box = be(pos, 4), header = 8;
    if (box == 1) {  // a 64-bit size follows the type
      if (pos + 16 > head.size()) return std::nullopt;
      box = be(pos + 8, 8);
      header = 16;
    }
    if (box == 0) return std::nullopt;  // the box runs to the end of the file: no index after it
    if (box < header || box > size - at) return std::nullopt;
    if (type == "mdat") return at + box < size ? std::optional<std::uint64_t>(at + box) : std::nullopt;
    at += box;
  }
  return std::nullopt;
}

bool mp4_family_key(std::string_view key) {
  const auto type = http::content_type_for_key(key);
  return type == "video/mp4" || type == "audio/mp4" || type == "video/x-m4v" || type == "video/quicktime";
}

}  // namespace mediagate::storage
