#pragma once
// Entity tags and their comparison (RFC 9110 §8.8.3).
#include <optional>
#include <string_view>
#include <vector>

namespace mediagate::http {

struct entity_tag {
  bool weak = false;
  std::string_view opaque;  // the quoted string, quotes included: "\"abc\""
};

// Parses a list of entity tags ("*" is handled by the caller). nullopt when any member is malformed.
std::optional<std::vector<entity_tag>> parse_entity_tags(std::string_view field);

// Parses one entity tag such as a stored ETag: W/"x" or "x".
std::optional<entity_tag> parse_entity_tag(std::string_view s);

// Strong comparison: both strong and the same opaque-tag. Weak comparison: the same opaque-tag.
bool strong_match(const entity_tag& a, const entity_tag& b);
bool weak_match(const entity_tag& a, const entity_tag& b);

}  // namespace mediagate::http
