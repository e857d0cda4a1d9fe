#include "catalog/media_item.hpp"

namespace mediagate::catalog {

std::string_view kind_of_type(std::string_view t) {
  if (t.starts_with("video/")) return "video";
  if (t.starts_with("audio/")) return "audio";
  if (t.starts_with("image/")) return "image";
  return "other";
}

std::string_view media_item::kind() const { return kind_of_type(content_type); }

std::string title_from_key(std::string_view key) {
  if (const auto slash = key.rfind('/'); slash != std::string_view::npos) key.remove_prefix(slash + 1);
  if (const auto dot = key.rfind('.'); dot != std::string_view::npos && dot > 0) key = key.substr(0, dot);
  return key.empty() ? std::string("untitled") : std::string(key);
}

bool is_visibility(std::string_view v) { return v == "public" || v == "private" || v == "inherit"; }

}  // namespace mediagate::catalog
