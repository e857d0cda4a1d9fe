// Conditional requests (RFC 9110 §13.1, evaluated in the order of §13.2.2) and If-Range (§13.1.5).
#include "http/preconditions.hpp"

#include <gtest/gtest.h>

#include <optional>
#include <ostream>
#include <string>
#include <string_view>

namespace mediagate::http {

void PrintTo(precondition_outcome o, std::ostream* os) {
  switch (o) {
    case precondition_outcome::proceed:
      *os << "proceed";
      break;
    case precondition_outcome::not_modified:
      *os << "not_modified (304)";
      break;
    case precondition_outcome::precondition_failed:
      *os << "precondition_failed (412)";
      break;
  }
}

namespace {

using enum precondition_outcome;
using opt = std::optional<std::string_view>;

constexpr std::string_view kEtag = "\"abc\"";
constexpr std::int64_t kLastModified = 784111777;  // Sun, 06 Nov 1994 08:49:37 GMT

// The same instant in the three HTTP-date forms (RFC 9110 §5.6.7), and its neighbours.
constexpr std::string_view kAt = "Sun, 06 Nov 1994 08:49:37 GMT";
constexpr std::string_view kAtRfc850 = "Sunday, 06-Nov-94 08:49:37 GMT";
constexpr std::string_view kAtAsctime = "Sun Nov  6 08:49:37 1994";
constexpr std::string_view kBefore = "Sun, 06 Nov 1994 08:49:36 GMT";
constexpr std::string_view kBeforeRfc850 = "Sunday, 06-Nov-94 08:49:36 GMT";
constexpr std::string_view kBeforeAsctime = "Sun Nov  6 08:49:36 1994";
constexpr std::string_view kAfter = "Sun, 06 Nov 1994 08:49:38 GMT";
constexpr std::string_view kMuchLater = "Fri, 01 Jan 2100 00:00:00 GMT";
constexpr std::string_view kMuchEarlier = "Thu, 01 Jan 1970 00:00:00 GMT";

struct precondition_case {
  const char* name;
  method m;
  conditional_headers h;
  precondition_outcome expected;
  std::string_view etag = kEtag;
};

void PrintTo(const precondition_case& c, std::ostream* os) { *os << c.name; }

class preconditions_table : public ::testing::TestWithParam<precondition_case> {};

TEST_P(preconditions_table, exact_outcome) {
  const auto& c = GetParam();
  EXPECT_EQ(evaluate_preconditions(c.m, c.h, validators{c.etag, kLastModified}), c.expected);
}

// conditional_headers fields, in order: if_match, if_none_match, if_modified_since, if_unmodified_since,
// if_range.
conditional_headers if_match(std::string_view v) { return {v, {}, {}, {}, {}}; }
conditional_headers if_none_match(std::string_view v) { return {{}, v, {}, {}, {}}; }
conditional_headers if_modified_since(std::string_view v) { return {{}, {}, v, {}, {}}; }
conditional_headers if_unmodified_since(std::string_view v) { return {{}, {}, {}, v, {}}; }

const precondition_case kNone[] = {
    {"get_without_conditions", method::get, {}, proceed},
    {"head_without_conditions", method::head, {}, proceed},
    {"other_without_conditions", method::other, {}, proceed},
    // If-Range alone is not a precondition: it only decides about Range (§13.1.5).
    {"if_range_alone_mismatching", method::get, {{}, {}, {}, {}, "\"zzz\""}, proceed},
};
INSTANTIATE_TEST_SUITE_P(none, preconditions_table, ::testing::ValuesIn(kNone),
                         [](const auto& info) { return std::string(info.param.name); });

// §13.1.1 If-Match: strong comparison, "*" matches any current representation; false → 412 for every method.
const precondition_case kIfMatch[] = {
    {"same_tag", method::get, if_match("\"abc\""), proceed},
    {"same_tag_head", method::head, if_match("\"abc\""), proceed},
    {"same_tag_other", method::other, if_match("\"abc\""), proceed},
    {"other_tag", method::get, if_match("\"xyz\""), precondition_failed},
    {"other_tag_head", method::head, if_match("\"xyz\""), precondition_failed},
    {"other_tag_other", method::other, if_match("\"xyz\""), precondition_failed},
    {"case_differs", method::get, if_match("\"ABC\""), precondition_failed},
    {"star", method::get, if_match("*"), proceed},
    {"star_with_ows", method::get, if_match(" * "), proceed},
    {"star_other_method", method::other, if_match("*"), proceed},
    {"list_second_matches", method::get, if_match("\"xyz\", \"abc\""), proceed},
    {"list_first_matches", method::get, if_match("\"abc\",\"xyz\""), proceed},
    {"list_with_empty_elements", method::get, if_match(" , \"xyz\" ,, \"abc\" ,"), proceed},
    {"list_none_matches", method::get, if_match("\"xyz\", \"abcd\", \"ab\""), precondition_failed},
    {"weak_tag_never_matches", method::get, if_match("W/\"abc\""), precondition_failed},
    {"weak_tag_in_list", method::get, if_match("\"xyz\", W/\"abc\""), precondition_failed},
    {"weak_current_never_matches", method::get, if_match("W/\"abc\""), precondition_failed, "W/\"abc\""},
    {"strong_vs_weak_current", method::get, if_match("\"abc\""), precondition_failed, "W/\"abc\""},
    {"comma_in_opaque_matches", method::get, if_match("\"x\", \"a,b\""), proceed, "\"a,b\""},
    {"comma_in_opaque_split_parts_do_not", method::get, if_match("\"a\", \"b\""), precondition_failed,
     "\"a,b\""},
    {"unquoted_is_malformed", method::get, if_match("abc"), precondition_failed},
    {"unterminated_is_malformed", method::get, if_match("\"abc"), precondition_failed},
    {"malformed_list_with_match", method::get, if_match("\"abc\" junk"), precondition_failed},
    {"empty_field", method::get, if_match(""), precondition_failed},
    {"star_inside_list", method::get, if_match("\"xyz\", *"), precondition_failed},
};
INSTANTIATE_TEST_SUITE_P(if_match, preconditions_table, ::testing::ValuesIn(kIfMatch),
                         [](const auto& info) { return std::string(info.param.name); });

// §13.1.4 If-Unmodified-Since: only when If-Match is absent; false when modified after the date; an invalid
// date is ignored.
const precondition_case kIfUnmodifiedSince[] = {
    {"equal", method::get, if_unmodified_since(kAt), proceed},
    {"later", method::get, if_unmodified_since(kAfter), proceed},
    {"much_later", method::get, if_unmodified_since(kMuchLater), proceed},
    {"earlier", method::get, if_unmodified_since(kBefore), precondition_failed},
    {"earlier_head", method::head, if_unmodified_since(kBefore), precondition_failed},
    {"earlier_other", method::other, if_unmodified_since(kBefore), precondition_failed},
    {"epoch", method::get, if_unmodified_since(kMuchEarlier), precondition_failed},
    {"earlier_rfc850", method::get, if_unmodified_since(kBeforeRfc850), precondition_failed},
    {"earlier_asctime", method::get, if_unmodified_since(kBeforeAsctime), precondition_failed},
    {"equal_rfc850", method::get, if_unmodified_since(kAtRfc850), proceed},
    {"equal_asctime", method::get, if_unmodified_since(kAtAsctime), proceed},
    {"invalid_date_ignored", method::get, if_unmodified_since("yesterday"), proceed},
    {"invalid_day_ignored", method::get, if_unmodified_since("Sun, 30 Feb 1994 08:49:37 GMT"), proceed},
    {"empty_ignored", method::get, if_unmodified_since(""), proceed},
    {"two_dates_ignored", method::get,
     if_unmodified_since("Sun, 06 Nov 1994 08:49:36 GMT, Sun, 06 Nov 1994 08:49:36 GMT"), proceed},
    // With If-Match present, If-Unmodified-Since is not evaluated (§13.2.2 step 2).
    {"ignored_when_if_match_matches", method::get, {"\"abc\"", {}, {}, kBefore, {}}, proceed},
    {"ignored_when_if_match_star", method::get, {"*", {}, {}, kBefore, {}}, proceed},
    {"if_match_fails_despite_later_date", method::get, {"\"xyz\"", {}, {}, kAfter, {}}, precondition_failed},
};
INSTANTIATE_TEST_SUITE_P(if_unmodified_since, preconditions_table, ::testing::ValuesIn(kIfUnmodifiedSince),
                         [](const auto& info) { return std::string(info.param.name); });

// §13.1.2 If-None-Match: weak comparison; false → 304 for GET/HEAD, 412 for other methods.
const precondition_case kIfNoneMatch[] = {
    {"same_tag_get", method::get, if_none_match("\"abc\""), not_modified},
    {"same_tag_head", method::head, if_none_match("\"abc\""), not_modified},
    {"same_tag_other", method::other, if_none_match("\"abc\""), precondition_failed},
    {"weak_tag_matches_weakly", method::get, if_none_match("W/\"abc\""), not_modified},
    {"weak_current_matches_weakly", method::get, if_none_match("\"abc\""), not_modified, "W/\"abc\""},
    {"both_weak", method::get, if_none_match("W/\"abc\""), not_modified, "W/\"abc\""},
    {"star_get", method::get, if_none_match("*"), not_modified},
    {"star_head", method::head, if_none_match("*"), not_modified},
    {"star_other", method::other, if_none_match("*"), precondition_failed},
    {"other_tag", method::get, if_none_match("\"xyz\""), proceed},
    {"other_tag_other_method", method::other, if_none_match("\"xyz\""), proceed},
    {"case_differs", method::get, if_none_match("\"ABC\""), proceed},
    {"list_second_matches", method::get, if_none_match("\"xyz\", W/\"abc\""), not_modified},
    {"rfc_example_list", method::get, if_none_match("\"xyzzy\", \"r2d2xxxx\", \"c3piozzzz\""), proceed},
    {"list_with_empty_elements", method::get, if_none_match(",, \"xyz\" , ,\"abc\","), not_modified},
    {"comma_in_opaque_matches", method::get, if_none_match("\"a,b\""), not_modified, "\"a,b\""},
    {"comma_in_opaque_split_parts_do_not", method::get, if_none_match("\"a\", \"b\""), proceed, "\"a,b\""},
    {"unquoted_is_malformed", method::get, if_none_match("abc"), proceed},
    {"unterminated_is_malformed", method::get, if_none_match("\"abc"), proceed},
    {"malformed_list_with_match", method::get, if_none_match("\"abc\" \"xyz\""), proceed},
    {"empty_field", method::get, if_none_match(""), proceed},
};
INSTANTIATE_TEST_SUITE_P(if_none_match, preconditions_table, ::testing::ValuesIn(kIfNoneMatch),
                         [](const auto& info) { return std::string(info.param.name); });

// §13.1.3 If-Modified-Since: only without If-None-Match, only for GET/HEAD; invalid dates ignored.
const precondition_case kIfModifiedSince[] = {
    {"equal_get", method::get, if_modified_since(kAt), not_modified},
    {"equal_head", method::head, if_modified_since(kAt), not_modified},
    {"later", method::get, if_modified_since(kAfter), not_modified},
    {"much_later", method::get, if_modified_since(kMuchLater), not_modified},
    {"earlier", method::get, if_modified_since(kBefore), proceed},
    {"epoch", method::get, if_modified_since(kMuchEarlier), proceed},
    {"equal_rfc850", method::get, if_modified_since(kAtRfc850), not_modified},
    {"equal_asctime", method::get, if_modified_since(kAtAsctime), not_modified},
    {"earlier_rfc850", method::get, if_modified_since(kBeforeRfc850), proceed},
    {"earlier_asctime", method::head, if_modified_since(kBeforeAsctime), proceed},
    {"ignored_for_other_methods", method::other, if_modified_since(kAt), proceed},
    {"ignored_for_other_methods_later", method::other, if_modified_since(kMuchLater), proceed},
    {"invalid_date_ignored", method::get, if_modified_since("Sun, 06 Nov 1994 08:49:37 UTC"), proceed},
    {"lowercase_month_ignored", method::get, if_modified_since("Sun, 06 nov 1994 08:49:37 GMT"), proceed},
    {"empty_ignored", method::get, if_modified_since(""), proceed},
    {"two_dates_ignored", method::get,
     if_modified_since("Sun, 06 Nov 1994 08:49:37 GMT, Sun, 06 Nov 1994 08:49:37 GMT"), proceed},
    // With If-None-Match present, If-Modified-Since is not evaluated (§13.2.2 step 4).
    {"ignored_when_if_none_match_misses", method::get, {{}, "\"xyz\"", kAt, {}, {}}, proceed},
    {"ignored_when_if_none_match_malformed", method::get, {{}, "junk", kMuchLater, {}, {}}, proceed},
    {"if_none_match_wins_over_earlier_date", method::get, {{}, "\"abc\"", kBefore, {}, {}}, not_modified},
};
INSTANTIATE_TEST_SUITE_P(if_modified_since, preconditions_table, ::testing::ValuesIn(kIfModifiedSince),
                         [](const auto& info) { return std::string(info.param.name); });

// The order of §13.2.2: If-Match / If-Unmodified-Since before If-None-Match / If-Modified-Since.
const precondition_case kOrder[] = {
    {"if_match_fails_before_if_none_match_matches",
     method::get,
     {"\"xyz\"", "\"abc\"", {}, {}, {}},
     precondition_failed},
    {"if_match_passes_then_if_none_match_matches",
     method::get,
     {"\"abc\"", "\"abc\"", {}, {}, {}},
     not_modified},
    {"if_match_passes_then_if_none_match_misses", method::get, {"\"abc\"", "\"xyz\"", {}, {}, {}}, proceed},
    {"if_match_passes_then_if_none_match_other_method",
     method::other,
     {"\"abc\"", "*", {}, {}, {}},
     precondition_failed},
    {"ius_fails_before_if_none_match_matches",
     method::get,
     {{}, "\"abc\"", {}, kBefore, {}},
     precondition_failed},
    {"ius_fails_before_ims_not_modified", method::get, {{}, {}, kAt, kBefore, {}}, precondition_failed},
    {"ius_passes_then_ims_not_modified", method::get, {{}, {}, kAt, kAt, {}}, not_modified},
    {"if_match_passes_then_ims_not_modified", method::head, {"*", {}, kAfter, {}, {}}, not_modified},
    {"all_pass", method::get, {"\"abc\"", "\"xyz\"", kBefore, kAfter, {}}, proceed},
    {"all_four_present_if_match_fails",
     method::get,
     {"\"nope\"", "\"abc\"", kAt, kAt, {}},
     precondition_failed},
};
INSTANTIATE_TEST_SUITE_P(order, preconditions_table, ::testing::ValuesIn(kOrder),
                         [](const auto& info) { return std::string(info.param.name); });

// §13.1.5 If-Range: an entity tag must match by strong comparison, a date must equal Last-Modified exactly;
// otherwise the Range is ignored.
struct if_range_case {
  const char* name;
  opt if_range;
  bool allows;
  std::string_view etag = kEtag;
};

void PrintTo(const if_range_case& c, std::ostream* os) { *os << c.name; }

class if_range_table : public ::testing::TestWithParam<if_range_case> {};

TEST_P(if_range_table, exact) {
  const auto& c = GetParam();
  EXPECT_EQ(if_range_allows_range(c.if_range, validators{c.etag, kLastModified}), c.allows);
}

const if_range_case kIfRange[] = {
    {"absent", std::nullopt, true},
    {"strong_match", "\"abc\"", true},
    {"strong_match_ows", " \"abc\"\t", true},
    {"strong_mismatch", "\"xyz\"", false},
    {"case_differs", "\"ABC\"", false},
    {"weak_same_opaque", "W/\"abc\"", false},
    {"weak_other", "W/\"xyz\"", false},
    {"weak_current_weak_tag", "W/\"abc\"", false, "W/\"abc\""},
    {"weak_current_strong_tag", "\"abc\"", false, "W/\"abc\""},
    {"list_is_not_an_entity_tag", "\"abc\", \"xyz\"", false},
    {"star_is_not_an_entity_tag", "*", false},
    {"unquoted", "abc", false},
    {"unterminated", "\"abc", false},
    {"empty", "", false},
    {"comma_in_opaque", "\"a,b\"", true, "\"a,b\""},
    {"date_equal", kAt, true},
    {"date_equal_rfc850", kAtRfc850, true},
    {"date_equal_asctime", kAtAsctime, true},
    {"date_one_second_earlier", kBefore, false},
    {"date_one_second_later", kAfter, false},
    {"date_much_later", kMuchLater, false},
    {"date_invalid", "Sun, 06 Nov 1994 08:49:37 UTC", false},
    {"date_feb_30", "Wed, 30 Feb 1994 08:49:37 GMT", false},
    {"garbage", "yesterday", false},
};
INSTANTIATE_TEST_SUITE_P(rfc9110_13_1_5, if_range_table, ::testing::ValuesIn(kIfRange),
                         [](const auto& info) { return std::string(info.param.name); });

TEST(if_range_dates, a_wednesday_is_a_date_not_a_weak_tag) {
  // "W/" introduces a weak entity tag; "Wed, " a date (RFC 9110 §13.1.5 tells them apart by their first
  // bytes).
  const validators v{kEtag, 784975777};  // Wed, 16 Nov 1994 08:49:37 GMT
  EXPECT_TRUE(if_range_allows_range("Wed, 16 Nov 1994 08:49:37 GMT", v));
  EXPECT_TRUE(if_range_allows_range("Wednesday, 16-Nov-94 08:49:37 GMT", v));
  EXPECT_TRUE(if_range_allows_range("Wed Nov 16 08:49:37 1994", v));
  EXPECT_FALSE(if_range_allows_range("Wed, 16 Nov 1994 08:49:38 GMT", v));
}

}  // namespace
}  // namespace mediagate::http
