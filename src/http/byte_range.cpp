#include "http/byte_range.hpp"

#include <algorithm>
#include <optional>

#include "http/token.hpp"

namespace mediagate::http {
namespace {

// One range-spec before it is checked against the size: either first-last, first-, or -suffix.
struct range_spec {
  std::optional<std::uint64_t> first;
  std::optional<std::uint64_t> last;  // for a suffix range: the suffix length
};

std::optional<range_spec> parse_spec(std::string_view s) {
  const auto dash = s.find('-');
  if (dash == std::string_view::npos) return std::nullopt;
  const auto a = trim_ows(s.substr(0, dash));
  const auto b = trim_ows(s.substr(dash + 1));
  range_spec spec;
  if (a.empty()) {  // suffix-range = "-" suffix-length (RFC 9110 §14.1.1)
    spec.last = parse_decimal(b);
    if (!spec.last) return std::nullopt;
    return spec;
  }
  spec.first = parse_decimal(a);
  if (!spec.first) return std::nullopt;
  if (!b.empty()) {
    spec.last = parse_decimal(b);
    // An int-range whose last-pos is less than its first-pos is invalid (RFC 9110 §14.1.1).
    if (!spec.last || *spec.last < *spec.first) return std::nullopt;
  }
  return spec;
}

// Calls f with each element of a comma-separated list (trimmed, empty ones included) until f returns false;
// false when f stopped. No vector of elements: this runs for every range request.
template <class F>
bool each_element(std::string_view list, F&& f) {
  while (true) {
    const auto comma = list.find(',');
    if (!f(trim_ows(list.substr(0, comma)))) return false;
    if (comma == std::string_view::npos) return true;
    list.remove_prefix(comma + 1);
  }
}

}  // namespace

range_result parse_range(std::string_view header, std::uint64_t size, const range_limits& limits) {
  header = trim_ows(header);
  const auto eq = header.find('=');
  if (eq == std::string_view::npos) return {};
  // Range units are case-insensitive (RFC 9110 §14.1); any unit but bytes is ignored (§14.2).
  if (!iequals(trim_ows(header.substr(0, eq)), "bytes")) return {};

  // First the whole list is checked (any invalid element voids the header), then the ranges are made.
  const auto list = header.substr(eq + 1);
  std::size_t count = 0;
  range_spec first_spec;  // the only one, most of the time: not parsed twice
  const bool valid = each_element(list, [&](std::string_view element) {
    if (element.empty()) return true;              // empty list elements are allowed and skipped (§5.6.1)
    if (count == limits.max_ranges) return false;  // too many ranges: answer with the whole object
    const auto spec = parse_spec(element);
    if (!spec) return false;  // an invalid Range header is ignored (RFC 9110 §14.2)
    if (count++ == 0) first_spec = *spec;
    return true;
  });
  if (!valid || count == 0) return {};
  // A zero-length representation has no satisfiable range; we answer 200 with the empty body rather than
  // 416 so that players see an ordinary empty file (DESIGN.md).
  if (size == 0) return {};

  range_result result;
  result.ranges.reserve(count);
  const auto add = [&](const range_spec& spec) {
    byte_range r;
    if (!spec.first) {
      if (*spec.last == 0) return;  // "bytes=-0" is not satisfiable
      r.first = *spec.last >= size ? 0 : size - *spec.last;
      r.last = size - 1;
    } else {
      if (*spec.first >= size) return;  // starts at or past the end: not satisfiable
      r.first = *spec.first;
      r.last = spec.last ? std::min(*spec.last, size - 1) : size - 1;
    }
    result.ranges.push_back(r);
  };
  if (count == 1) {
    add(first_spec);
  } else {
    each_element(list, [&](std::string_view element) {
      if (!element.empty()) add(*parse_spec(element));
      return true;
    });
  }
  if (result.ranges.empty()) return {range_outcome::not_satisfiable, {}};

  if (result.ranges.size() > 1) {
    // No amplification: overlapping ranges or ranges that add up to more than the object get the whole
    // representation instead (RFC 9110 §14.2 allows ignoring such requests).
    auto sorted = result.ranges;
    std::sort(sorted.begin(), sorted.end(), [](auto& x, auto& y) { return x.first < y.first; });
    std::uint64_t total = 0;
    for (std::size_t i = 0; i < sorted.size(); ++i) {
      if (i > 0 && sorted[i].first <= sorted[i - 1].last) return {};
      total += sorted[i].length();
    }
    if (total > size) return {};
  }
  result.outcome = range_outcome::satisfiable;
  return result;
}

range_result range_of_spec(const range_spec_hint& hint, std::uint64_t size, const range_limits& limits) {
  if (limits.max_ranges == 0 || size == 0) return {};  // as parse_range: no range allowed; an empty object
  if (hint.first >= size) return {range_outcome::not_satisfiable, {}};
  return {range_outcome::satisfiable,
          {byte_range{hint.first, std::min(hint.last.value_or(size - 1), size - 1)}}};
}

std::optional<range_spec_hint> single_range_spec(std::string_view header) {
  header = trim_ows(header);
  const auto eq = header.find('=');
  if (eq == std::string_view::npos || !iequals(trim_ows(header.substr(0, eq)), "bytes")) return std::nullopt;
  std::optional<range_spec> only;
  const bool one = each_element(header.substr(eq + 1), [&](std::string_view element) {
    if (element.empty()) return true;
    if (only) return false;  // several ranges
    only = parse_spec(element);
    return only.has_value();
  });
  if (!one || !only || !only->first) return std::nullopt;  // several, none, invalid, or a suffix range
  return range_spec_hint{*only->first, only->last};
}

std::optional<content_range> parse_content_range(std::string_view v) {
  if (!v.starts_with("bytes ")) return std::nullopt;
  v.remove_prefix(6);
  const auto dash = v.find('-'), slash = v.find('/');
  if (dash == std::string_view::npos || slash == std::string_view::npos || slash < dash) return std::nullopt;
  auto first = parse_decimal(v.substr(0, dash));
  auto last = parse_decimal(v.substr(dash + 1, slash - dash - 1));
  auto size = parse_decimal(v.substr(slash + 1));
  if (!first || !last || !size || *last < *first || *last >= *size) return std::nullopt;
  return content_range{*first, *last, *size};
}

}  // namespace mediagate::http
