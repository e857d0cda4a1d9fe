#include "http/entity_tag.hpp"

namespace mediagate::http {
namespace {

// etagc = %x21 / %x23-7E / obs-text
bool is_etagc(unsigned char c) { return c == 0x21 || (c >= 0x23 && c != 0x7F); }

}  // namespace

std::optional<entity_tag> parse_entity_tag(std::string_view s) {
  entity_tag tag;
  if (s.size() >= 2 && s[0] == 'W' && s[1] == '/') {
    tag.weak = true;
    s.remove_prefix(2);
  }
  if (s.size() < 2 || s.front() != '"' || s.back() != '"') return std::nullopt;
  for (unsigned char c : s.substr(1, s.size() - 2))
    if (!is_etagc(c)) return std::nullopt;
  tag.opaque = s;
  return tag;
}

std::optional<std::vector<entity_tag>> parse_entity_tags(std::string_view field) {
  // Scanned by hand rather than split on commas: an opaque-tag may itself contain a comma.
  std::vector<entity_tag> tags;
  std::size_t i = 0;
  while (true) {
    while (i < field.size() && (field[i] == ' ' || field[i] == '\t' || field[i] == ',')) ++i;
    if (i == field.size()) return tags;
    const std::size_t start = i;
    if (field.substr(i, 2) == "W/") i += 2;
    if (i >= field.size() || field[i] != '"') return std::nullopt;
    const auto close = field.find('"', i + 1);
    if (close == std::string_view::npos) return std::nullopt;
    auto tag = parse_entity_tag(field.substr(start, close + 1 - start));
    if (!tag) return std::nullopt;
    tags.push_back(*tag);
    i = close + 1;
    while (i < field.size() && (field[i] == ' ' || field[i] == '\t')) ++i;
    if (i < field.size() && field[i] != ',') return std::nullopt;
  }
}

bool strong_match(const entity_tag& a, const entity_tag& b) {
  return !a.weak && !b.weak && a.opaque == b.opaque;
}

bool weak_match(const entity_tag& a, const entity_tag& b) { return a.opaque == b.opaque; }

}  // namespace mediagate::http
