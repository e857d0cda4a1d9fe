#include "storage/sniff.hpp"

#include <magic.h>

#include <memory>
#include <string_view>

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

}  // namespace mediagate::storage
