#include "ui/assets.hpp"

#include <cstdint>
#include <cstdio>
#include <vector>

namespace mediagate::ui {
namespace {

std::string_view type_of(std::string_view name) {
  if (name.ends_with(".html")) return "text/html; charset=utf-8";
  if (name.ends_with(".js")) return "text/javascript; charset=utf-8";
  if (name.ends_with(".css")) return "text/css; charset=utf-8";
  if (name.ends_with(".svg")) return "image/svg+xml";
  if (name.ends_with(".txt")) return "text/plain; charset=utf-8";  // the embedded npm packages' licences
  return "application/octet-stream";
}

// FNV-1a, 64 bits: enough to tell versions of a handful of files apart.
std::string etag_of(std::string_view bytes) {
  std::uint64_t h = 1469598103934665603ull;
  for (unsigned char c : bytes) {
    h ^= c;
    h *= 1099511628211ull;
  }
  char buf[24];
  std::snprintf(buf, sizeof buf, "\"%016llx\"", static_cast<unsigned long long>(h));
  return buf;
}

const std::vector<asset>& assets() {
  static const std::vector<asset> all = [] {
    std::vector<asset> out;
    for (const auto& f : embedded_files())
      out.push_back({f.name, f.bytes, type_of(f.name), etag_of(f.bytes)});
    return out;
  }();
  return all;
}

}  // namespace

const asset* find_asset(std::string_view name) {
  for (const auto& a : assets())
    if (a.name == name) return &a;
  return nullptr;
}

}  // namespace mediagate::ui
