#pragma once
// Conditional requests (RFC 9110 §13): evaluated in the order of §13.2.2, before any Range.
#include <cstdint>
#include <optional>
#include <string_view>

namespace mediagate::http {

enum class method { get, head, other };

struct conditional_headers {
  std::optional<std::string_view> if_match;
  std::optional<std::string_view> if_none_match;
  std::optional<std::string_view> if_modified_since;
  std::optional<std::string_view> if_unmodified_since;
  std::optional<std::string_view> if_range;
};

// The validators of the selected representation.
struct validators {
  std::string_view etag;           // strong ETag with quotes
  std::int64_t last_modified = 0;  // seconds since the epoch
};

enum class precondition_outcome { proceed, not_modified, precondition_failed };

precondition_outcome evaluate_preconditions(method m, const conditional_headers& h, const validators& v);

// Whether a Range may be honoured given If-Range (RFC 9110 §13.1.5): true without If-Range; with an entity
// tag only on a strong match; with a date only when it equals Last-Modified exactly.
bool if_range_allows_range(const std::optional<std::string_view>& if_range, const validators& v);

}  // namespace mediagate::http
