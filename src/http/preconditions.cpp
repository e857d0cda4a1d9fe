#include "http/preconditions.hpp"

#include "http/entity_tag.hpp"
#include "http/http_date.hpp"
#include "http/token.hpp"

namespace mediagate::http {
namespace {

enum class match_mode { strong, weak };

// Whether a list-valued If-Match / If-None-Match field matches the current ETag. "*" matches any current
// representation, and we only evaluate against existing ones. A malformed list matches nothing.
bool list_matches(std::string_view field, std::string_view current_etag, match_mode mode) {
  if (trim_ows(field) == "*") return true;
  auto current = parse_entity_tag(current_etag);
  auto tags = parse_entity_tags(field);
  if (!current || !tags) return false;
  for (const auto& tag : *tags)
    if (mode == match_mode::strong ? strong_match(tag, *current) : weak_match(tag, *current)) return true;
  return false;
}

}  // namespace

precondition_outcome evaluate_preconditions(method m, const conditional_headers& h, const validators& v) {
  // Step 1: If-Match (strong comparison), §13.1.1.
  if (h.if_match) {
    if (!list_matches(*h.if_match, v.etag, match_mode::strong))
      return precondition_outcome::precondition_failed;
  } else if (h.if_unmodified_since) {
    // Step 2: If-Unmodified-Since, only without If-Match; an invalid date is ignored (§13.1.4).
    if (auto date = parse_http_date(*h.if_unmodified_since); date && v.last_modified > *date)
      return precondition_outcome::precondition_failed;
  }
  // Step 3: If-None-Match (weak comparison), §13.1.2.
  if (h.if_none_match) {
    if (list_matches(*h.if_none_match, v.etag, match_mode::weak))
      return m == method::other ? precondition_outcome::precondition_failed
                                : precondition_outcome::not_modified;
  } else if (h.if_modified_since && m != method::other) {
    // Step 4: If-Modified-Since, only without If-None-Match and only for GET/HEAD (§13.1.3).
    if (auto date = parse_http_date(*h.if_modified_since); date && v.last_modified <= *date)
      return precondition_outcome::not_modified;
  }
  return precondition_outcome::proceed;
}

bool if_range_allows_range(const std::optional<std::string_view>& if_range, const validators& v) {
  if (!if_range) return true;
  const auto value = trim_ows(*if_range);
  if (value.starts_with("\"") || value.starts_with("W/")) {
    auto tag = parse_entity_tag(value);
    auto current = parse_entity_tag(v.etag);
    return tag && current && strong_match(*tag, *current);
  }
  auto date = parse_http_date(value);
  return date && *date == v.last_modified;
}

}  // namespace mediagate::http
