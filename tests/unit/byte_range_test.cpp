// Range header parsing (RFC 9110 §14.1, §14.2) and the lexical helpers it rests on (§5.6).
#include "http/byte_range.hpp"

#include <gtest/gtest.h>

#include <cstdint>
#include <ostream>
#include <string>
#include <vector>

#include "http/token.hpp"
#include "printers.hpp"

namespace mediagate::http {

// Readable failure messages for the result types.
void PrintTo(range_outcome o, std::ostream* os) {
  switch (o) {
    case range_outcome::none:
      *os << "none";
      break;
    case range_outcome::satisfiable:
      *os << "satisfiable";
      break;
    case range_outcome::not_satisfiable:
      *os << "not_satisfiable";
      break;
  }
}

namespace {

constexpr std::uint64_t kMax = UINT64_MAX;

struct range_case {
  const char* name;
  std::string header;
  std::uint64_t size;
  range_outcome outcome;
  std::vector<byte_range> ranges;  // expected, in request order; empty unless satisfiable
};

void PrintTo(const range_case& c, std::ostream* os) {
  *os << c.name << ": \"" << c.header << "\" size " << c.size;
}

class parse_range_table : public ::testing::TestWithParam<range_case> {};

TEST_P(parse_range_table, exact_outcome_and_ranges) {
  const auto& c = GetParam();
  const auto r = parse_range(c.header, c.size);
  EXPECT_EQ(r.outcome, c.outcome);
  EXPECT_EQ(r.ranges, c.ranges);
  // Whatever is planned must lie inside the representation, and never be empty.
  for (const auto& br : r.ranges) {
    EXPECT_LE(br.first, br.last);
    EXPECT_LT(br.last, c.size);
  }
}

using enum range_outcome;

// RFC 9110 §14.1.2's examples, for a representation of 10000 bytes.
const range_case kRfcExamples[] = {
    {"first_500", "bytes=0-499", 10000, satisfiable, {{0, 499}}},
    {"second_500", "bytes=500-999", 10000, satisfiable, {{500, 999}}},
    {"final_500_suffix", "bytes=-500", 10000, satisfiable, {{9500, 9999}}},
    {"final_500_open", "bytes=9500-", 10000, satisfiable, {{9500, 9999}}},
    {"first_and_last_byte", "bytes=0-0,-1", 10000, satisfiable, {{0, 0}, {9999, 9999}}},
    // Adjacent ranges do not overlap: multipart is allowed.
    {"adjacent", "bytes=500-600,601-999", 10000, satisfiable, {{500, 600}, {601, 999}}},
    // Overlapping ranges: this server sends the whole representation instead (no amplification).
    {"overlapping", "bytes=500-700,601-999", 10000, none, {}},
};
INSTANTIATE_TEST_SUITE_P(rfc9110_14_1_2, parse_range_table, ::testing::ValuesIn(kRfcExamples),
                         [](const auto& info) { return std::string(info.param.name); });

const range_case kSingleRanges[] = {
    {"open_from_zero", "bytes=0-", 10000, satisfiable, {{0, 9999}}},
    {"safari_probe", "bytes=0-1", 10000, satisfiable, {{0, 1}}},
    {"last_byte_closed", "bytes=9999-9999", 10000, satisfiable, {{9999, 9999}}},
    {"last_byte_open", "bytes=9999-", 10000, satisfiable, {{9999, 9999}}},
    {"whole_closed", "bytes=0-9999", 10000, satisfiable, {{0, 9999}}},
    {"end_clamped", "bytes=9000-20000", 10000, satisfiable, {{9000, 9999}}},
    {"end_clamped_by_one", "bytes=0-10000", 10000, satisfiable, {{0, 9999}}},
    {"end_is_u64_max", "bytes=5-18446744073709551615", 10000, satisfiable, {{5, 9999}}},
    {"suffix_equal_to_size", "bytes=-10000", 10000, satisfiable, {{0, 9999}}},
    {"suffix_larger_than_size", "bytes=-10001", 10000, satisfiable, {{0, 9999}}},
    {"suffix_u64_max", "bytes=-18446744073709551615", 10000, satisfiable, {{0, 9999}}},
    {"suffix_one", "bytes=-1", 10000, satisfiable, {{9999, 9999}}},
    {"leading_zeros",
     "bytes=0000000000000000000000000000001-0000000000000000000000000002",
     10000,
     satisfiable,
     {{1, 2}}},
    {"one_byte_object_first", "bytes=0-0", 1, satisfiable, {{0, 0}}},
    {"one_byte_object_suffix", "bytes=-1", 1, satisfiable, {{0, 0}}},
    {"one_byte_object_big_suffix", "bytes=-7", 1, satisfiable, {{0, 0}}},
    {"one_byte_object_open", "bytes=0-", 1, satisfiable, {{0, 0}}},
    {"huge_object_tail", "bytes=18446744073709551613-", kMax, satisfiable, {{kMax - 2, kMax - 1}}},
    {"huge_object_suffix", "bytes=-2", kMax, satisfiable, {{kMax - 2, kMax - 1}}},
    {"huge_object_clamp", "bytes=0-18446744073709551615", kMax, satisfiable, {{0, kMax - 1}}},
};
INSTANTIATE_TEST_SUITE_P(single, parse_range_table, ::testing::ValuesIn(kSingleRanges),
                         [](const auto& info) { return std::string(info.param.name); });

const range_case kUnitsAndWhitespace[] = {
    {"unit_upper", "BYTES=0-1", 10000, satisfiable, {{0, 1}}},
    {"unit_mixed", "Bytes=0-1", 10000, satisfiable, {{0, 1}}},
    {"unit_odd_case", "bYtEs=0-1", 10000, satisfiable, {{0, 1}}},
    {"ows_around_header", " \tbytes=0-1\t ", 10000, satisfiable, {{0, 1}}},
    {"ows_after_equals", "bytes= 0-1", 10000, satisfiable, {{0, 1}}},
    {"ows_around_elements", "bytes=0-1 , 5-6", 10000, satisfiable, {{0, 1}, {5, 6}}},
    {"tabs_around_elements", "bytes=0-1\t,\t5-6", 10000, satisfiable, {{0, 1}, {5, 6}}},
    {"no_ows_list", "bytes=0-1,5-6", 10000, satisfiable, {{0, 1}, {5, 6}}},
    {"empty_element_middle", "bytes=0-1,,5-6", 10000, satisfiable, {{0, 1}, {5, 6}}},
    {"empty_element_leading", "bytes=,0-1", 10000, satisfiable, {{0, 1}}},
    {"empty_element_trailing", "bytes=0-1,", 10000, satisfiable, {{0, 1}}},
    {"empty_elements_ows", "bytes= , ,0-1, ,", 10000, satisfiable, {{0, 1}}},
    {"unknown_unit", "items=0-1", 10000, none, {}},
    {"unit_prefix", "byte=0-1", 10000, none, {}},
    {"unit_suffix", "bytess=0-1", 10000, none, {}},
    {"empty_unit", "=0-1", 10000, none, {}},
    {"no_unit_no_equals", "0-1", 10000, none, {}},
    {"unit_only", "bytes", 10000, none, {}},
    {"unit_equals_only", "bytes=", 10000, none, {}},
    {"only_empty_elements", "bytes=,,", 10000, none, {}},
    {"only_ows_elements", "bytes= , \t, ", 10000, none, {}},
    {"empty_header", "", 10000, none, {}},
    {"whitespace_header", "   ", 10000, none, {}},
};
INSTANTIATE_TEST_SUITE_P(units_and_lists, parse_range_table, ::testing::ValuesIn(kUnitsAndWhitespace),
                         [](const auto& info) { return std::string(info.param.name); });

// Syntactically invalid ranges-specifiers: ignored, the whole representation is sent (RFC 9110 §14.2).
const range_case kMalformed[] = {
    {"end_before_start", "bytes=500-499", 10000, none, {}},
    {"end_before_start_zero", "bytes=1-0", 10000, none, {}},
    {"end_before_start_among_good", "bytes=0-1,9-8", 10000, none, {}},
    {"bare_dash", "bytes=-", 10000, none, {}},
    {"double_dash", "bytes=--1", 10000, none, {}},
    {"three_numbers", "bytes=0-1-2", 10000, none, {}},
    {"no_dash", "bytes=5", 10000, none, {}},
    {"letters", "bytes=a-b", 10000, none, {}},
    {"hex", "bytes=0x10-0x20", 10000, none, {}},
    {"plus_sign", "bytes=+1-2", 10000, none, {}},
    {"negative_end", "bytes=1--2", 10000, none, {}},
    {"decimal_point", "bytes=1.5-2", 10000, none, {}},
    {"semicolon", "bytes=0-1;", 10000, none, {}},
    {"trailing_garbage", "bytes=0-1x", 10000, none, {}},
    {"one_bad_element", "bytes=0-1,x-2,5-6", 10000, none, {}},
    {"missing_comma", "bytes=0-1 5-6", 10000, none, {}},
    {"second_equals", "bytes=0-1=2", 10000, none, {}},
    {"nul_byte",
     std::string("bytes=0-\0"
                 "1",
                 10),
     10000,
     none,
     {}},
    {"fullwidth_digit", "bytes=\xEF\xBC\x91-2", 10000, none, {}},
    // Numbers that do not fit in 64 bits (20+ digits) make the header invalid: never wrapped around.
    {"overflow_first_by_one", "bytes=18446744073709551616-", 10000, none, {}},
    {"overflow_first", "bytes=99999999999999999999-", 10000, none, {}},
    {"overflow_last", "bytes=0-99999999999999999999", 10000, none, {}},
    {"overflow_suffix", "bytes=-99999999999999999999", 10000, none, {}},
    {"overflow_wraps_to_small", "bytes=18446744073709551617-18446744073709551618", 10000, none, {}},
    {"overflow_many_digits", "bytes=0-123456789012345678901234567890", 10000, none, {}},
    {"overflow_among_good", "bytes=0-1,18446744073709551616-18446744073709551617", 10000, none, {}},
};
INSTANTIATE_TEST_SUITE_P(malformed, parse_range_table, ::testing::ValuesIn(kMalformed),
                         [](const auto& info) { return std::string(info.param.name); });

// Every range starts at or past the end: 416 (RFC 9110 §14.1.1, §15.5.17).
const range_case kUnsatisfiable[] = {
    {"start_equals_size", "bytes=10000-", 10000, not_satisfiable, {}},
    {"start_equals_size_closed", "bytes=10000-10005", 10000, not_satisfiable, {}},
    {"start_past_size", "bytes=20000-30000", 10000, not_satisfiable, {}},
    {"start_u64_max", "bytes=18446744073709551615-", 10000, not_satisfiable, {}},
    {"suffix_zero", "bytes=-0", 10000, not_satisfiable, {}},
    {"suffix_zero_leading_zeros", "bytes=-000", 10000, not_satisfiable, {}},
    {"all_past_end", "bytes=10000-10001,20000-,-0", 10000, not_satisfiable, {}},
    {"one_byte_object_start_one", "bytes=1-", 1, not_satisfiable, {}},
    // Unsatisfiable members of a list are dropped when another member is satisfiable (§14.1.1).
    {"suffix_zero_with_good", "bytes=-0,0-1", 10000, satisfiable, {{0, 1}}},
    {"past_end_with_good", "bytes=20000-,5-9", 10000, satisfiable, {{5, 9}}},
    {"past_end_between_good", "bytes=0-1,20000-,5-9", 10000, satisfiable, {{0, 1}, {5, 9}}},
};
INSTANTIATE_TEST_SUITE_P(unsatisfiable, parse_range_table, ::testing::ValuesIn(kUnsatisfiable),
                         [](const auto& info) { return std::string(info.param.name); });

// A zero-length representation has no satisfiable range, but the server answers 200 with the empty body
// (DESIGN.md: never pass S3's 416 through; players see an ordinary empty file).
const range_case kZeroLength[] = {
    {"open", "bytes=0-", 0, none, {}},       {"closed", "bytes=0-0", 0, none, {}},
    {"suffix", "bytes=-1", 0, none, {}},     {"suffix_zero", "bytes=-0", 0, none, {}},
    {"past_end", "bytes=5-10", 0, none, {}}, {"multi", "bytes=0-0,2-3", 0, none, {}},
    {"malformed", "bytes=x", 0, none, {}},   {"unknown_unit", "items=0-", 0, none, {}},
};
INSTANTIATE_TEST_SUITE_P(zero_length, parse_range_table, ::testing::ValuesIn(kZeroLength),
                         [](const auto& info) { return std::string(info.param.name); });

// Several ranges: multipart unless they overlap or add up to more than the object (RFC 9110 §14.2, security
// considerations §17.15: a server may ignore or coalesce such requests).
const range_case kMultiple[] = {
    {"two_disjoint", "bytes=0-9,20-29", 100, satisfiable, {{0, 9}, {20, 29}}},
    {"kept_in_request_order", "bytes=90-99,0-9,50-59", 100, satisfiable, {{90, 99}, {0, 9}, {50, 59}}},
    {"adjacent_three", "bytes=0-9,10-19,20-29", 100, satisfiable, {{0, 9}, {10, 19}, {20, 29}}},
    {"adjacent_reversed", "bytes=10-19,0-9", 100, satisfiable, {{10, 19}, {0, 9}}},
    {"suffix_and_prefix_disjoint", "bytes=0-49,-50", 100, satisfiable, {{0, 49}, {50, 99}}},
    {"whole_object_in_two", "bytes=0-49,50-", 100, satisfiable, {{0, 49}, {50, 99}}},
    {"clamped_second", "bytes=0-9,90-1000", 100, satisfiable, {{0, 9}, {90, 99}}},
    {"same_range_twice", "bytes=0-9,0-9", 100, none, {}},
    {"same_byte_twice", "bytes=5-5,5-5", 100, none, {}},
    {"touching_by_one_byte", "bytes=0-10,10-20", 100, none, {}},
    {"contained", "bytes=0-99,10-20", 100, none, {}},
    {"contained_reversed", "bytes=10-20,0-99", 100, none, {}},
    {"overlap_non_neighbours", "bytes=0-50,60-70,40-45", 100, none, {}},
    {"suffix_overlaps_prefix", "bytes=0-60,-50", 100, none, {}},
    {"open_overlaps_closed", "bytes=50-,60-70", 100, none, {}},
    {"two_wholes", "bytes=0-,0-", 100, none, {}},
    {"two_suffixes_over_size", "bytes=-60,-60", 100, none, {}},
    {"sum_exceeds_size", "bytes=-100,0-0", 100, none, {}},
    {"clamped_overlap", "bytes=90-200,95-300", 100, none, {}},
    {"first_and_last_byte_small", "bytes=0-0,-1", 2, satisfiable, {{0, 0}, {1, 1}}},
    {"first_and_last_byte_same", "bytes=0-0,-1", 1, none, {}},
};
INSTANTIATE_TEST_SUITE_P(multiple, parse_range_table, ::testing::ValuesIn(kMultiple),
                         [](const auto& info) { return std::string(info.param.name); });

std::string disjoint_ranges(std::size_t n) {
  std::string h = "bytes=";
  for (std::size_t i = 0; i < n; ++i)
    h += (i ? "," : "") + std::to_string(2 * i) + "-" + std::to_string(2 * i);
  return h;
}

TEST(parse_range_limits, default_limit_is_sixteen_ranges) {
  const auto at_limit = parse_range(disjoint_ranges(16), 10000);
  ASSERT_EQ(at_limit.outcome, range_outcome::satisfiable);
  ASSERT_EQ(at_limit.ranges.size(), 16u);
  for (std::size_t i = 0; i < 16; ++i) EXPECT_EQ(at_limit.ranges[i], (byte_range{2 * i, 2 * i}));

  const auto over = parse_range(disjoint_ranges(17), 10000);
  EXPECT_EQ(over.outcome, range_outcome::none);
  EXPECT_TRUE(over.ranges.empty());
}

TEST(parse_range_limits, configured_limit) {
  const range_limits two{2};
  EXPECT_EQ(parse_range("bytes=0-0,2-2", 100, two).outcome, range_outcome::satisfiable);
  EXPECT_EQ(parse_range("bytes=0-0,2-2,4-4", 100, two).outcome, range_outcome::none);
  // Empty list elements are not ranges and do not count.
  const auto with_empties = parse_range("bytes=0-0,,, ,2-2,", 100, two);
  EXPECT_EQ(with_empties.outcome, range_outcome::satisfiable);
  EXPECT_EQ(with_empties.ranges, (std::vector<byte_range>{{0, 0}, {2, 2}}));

  const range_limits one{1};
  EXPECT_EQ(parse_range("bytes=0-0", 100, one).outcome, range_outcome::satisfiable);
  EXPECT_EQ(parse_range("bytes=0-0,2-2", 100, one).outcome, range_outcome::none);
}

TEST(parse_range_limits, thousands_of_ranges_are_refused_quickly) {
  const auto r = parse_range(disjoint_ranges(5000), 1'000'000);
  EXPECT_EQ(r.outcome, range_outcome::none);
  EXPECT_TRUE(r.ranges.empty());
  std::string many_empty = "bytes=";
  many_empty.append(100000, ',');
  many_empty += "0-0";
  const auto e = parse_range(many_empty, 10);
  EXPECT_EQ(e.outcome, range_outcome::satisfiable);
  EXPECT_EQ(e.ranges, (std::vector<byte_range>{{0, 0}}));
}

TEST(parse_range_limits, planned_bytes_never_exceed_the_object) {
  // Every combination of small ranges over a small object: what is planned is inside the object, and a
  // multipart plan never carries more bytes than the object (no amplification).
  const std::vector<std::string> specs = {"0-0", "0-",  "-1", "-3", "1-2", "2-",
                                          "3-9", "4-4", "-0", "5-", "2-1"};
  for (std::uint64_t size = 0; size <= 5; ++size) {
    for (const auto& a : specs) {
      for (const auto& b : specs) {
        const auto header = "bytes=" + a + "," + b;
        SCOPED_TRACE(header + " size " + std::to_string(size));
        const auto r = parse_range(header, size);
        std::uint64_t total = 0;
        for (const auto& br : r.ranges) {
          EXPECT_LE(br.first, br.last);
          EXPECT_LT(br.last, size);
          total += br.length();
        }
        EXPECT_LE(total, size);
        if (r.outcome != range_outcome::satisfiable) {
          EXPECT_TRUE(r.ranges.empty());
        }
        if (size == 0) {
          EXPECT_EQ(r.outcome, range_outcome::none);
        }
      }
    }
  }
}

TEST(byte_range, length_is_inclusive) {
  EXPECT_EQ((byte_range{0, 0}.length()), 1u);
  EXPECT_EQ((byte_range{0, 499}.length()), 500u);
  EXPECT_EQ((byte_range{9500, 9999}.length()), 500u);
  EXPECT_EQ((byte_range{0, kMax - 1}.length()), kMax);
}

// --- token.hpp: the lexical helpers (RFC 9110 §5.6) ---

TEST(token, trim_ows_removes_only_space_and_tab) {
  EXPECT_EQ(trim_ows(""), "");
  EXPECT_EQ(trim_ows("   "), "");
  EXPECT_EQ(trim_ows(" \t a b \t "), "a b");
  EXPECT_EQ(trim_ows("x"), "x");
  EXPECT_EQ(trim_ows("\r\nx\r\n"), "\r\nx\r\n");  // CR and LF are not OWS
  EXPECT_EQ(trim_ows("\vx"), "\vx");
}

TEST(token, iequals_is_ascii_case_insensitive) {
  EXPECT_TRUE(iequals("", ""));
  EXPECT_TRUE(iequals("bytes", "BYTES"));
  EXPECT_TRUE(iequals("Content-Type", "content-type"));
  EXPECT_FALSE(iequals("bytes", "byte"));
  EXPECT_FALSE(iequals("bytes", "bytez"));
  EXPECT_FALSE(iequals("[", "{"));  // '[' is 'A'-'a' away from '{' but not a letter
  EXPECT_FALSE(iequals("@", "`"));
  EXPECT_FALSE(iequals("\xC3\xA9", "\xC3\x89"));  // é / É: not ASCII
}

TEST(token, split_list_keeps_empty_elements_trimmed) {
  EXPECT_EQ(split_list(""), (std::vector<std::string_view>{""}));
  EXPECT_EQ(split_list("a"), (std::vector<std::string_view>{"a"}));
  EXPECT_EQ(split_list(" a , b\t,c "), (std::vector<std::string_view>{"a", "b", "c"}));
  EXPECT_EQ(split_list(",a,,b,"), (std::vector<std::string_view>{"", "a", "", "b", ""}));
}

TEST(token, parse_decimal) {
  EXPECT_EQ(parse_decimal("0"), 0u);
  EXPECT_EQ(parse_decimal("007"), 7u);
  EXPECT_EQ(parse_decimal("1234567890"), 1234567890u);
  EXPECT_EQ(parse_decimal("18446744073709551615"), kMax);
  EXPECT_EQ(parse_decimal("000000000000000000000018446744073709551615"), kMax);
  EXPECT_EQ(parse_decimal("18446744073709551616"), std::nullopt);
  EXPECT_EQ(parse_decimal("18446744073709551620"), std::nullopt);
  EXPECT_EQ(parse_decimal("99999999999999999999"), std::nullopt);
  EXPECT_EQ(parse_decimal("184467440737095516150"), std::nullopt);
  EXPECT_EQ(parse_decimal(""), std::nullopt);
  EXPECT_EQ(parse_decimal(" 1"), std::nullopt);
  EXPECT_EQ(parse_decimal("1 "), std::nullopt);
  EXPECT_EQ(parse_decimal("+1"), std::nullopt);
  EXPECT_EQ(parse_decimal("-1"), std::nullopt);
  EXPECT_EQ(parse_decimal("1e3"), std::nullopt);
  EXPECT_EQ(parse_decimal("0x1"), std::nullopt);
  EXPECT_EQ(parse_decimal("١"), std::nullopt);  // ARABIC-INDIC DIGIT ONE
}

// The range read together with the metadata, before the size is known: one plain range, nothing else.
TEST(single_range_spec, plain_ranges_only) {
  auto hint =
      [](std::string_view h) -> std::optional<std::pair<std::uint64_t, std::optional<std::uint64_t>>> {
    auto r = single_range_spec(h);
    if (!r) return std::nullopt;
    return std::pair{r->first, r->last};
  };
  using P = std::pair<std::uint64_t, std::optional<std::uint64_t>>;
  EXPECT_EQ(hint("bytes=0-1"), (P{0, 1}));
  EXPECT_EQ(hint("bytes=0-"), (P{0, std::nullopt}));
  EXPECT_EQ(hint("bytes=1048576-"), (P{1048576, std::nullopt}));
  EXPECT_EQ(hint(" BYTES = 5 - 9 "), (P{5, 9}));
  EXPECT_EQ(hint("bytes=5-9,"), (P{5, 9}));  // empty list elements are skipped, as parse_range does
  EXPECT_EQ(hint("bytes=18446744073709551615-"), (P{18446744073709551615ULL, std::nullopt}));
  EXPECT_EQ(hint("bytes=-500"), std::nullopt);  // suffix: the first byte depends on the size
  EXPECT_EQ(hint("bytes=0-1,5-9"), std::nullopt);
  EXPECT_EQ(hint("bytes=9-5"), std::nullopt);
  EXPECT_EQ(hint("bytes=a-"), std::nullopt);
  EXPECT_EQ(hint("bytes=18446744073709551616-"), std::nullopt);
  EXPECT_EQ(hint("items=0-1"), std::nullopt);
  EXPECT_EQ(hint("bytes="), std::nullopt);
  EXPECT_EQ(hint("bytes 0-1"), std::nullopt);
  EXPECT_EQ(hint(""), std::nullopt);
}

TEST(content_range, parses_a_206s_field) {
  const auto r = parse_content_range("bytes 0-99/1000");
  ASSERT_TRUE(r);
  EXPECT_EQ(r->first, 0u);
  EXPECT_EQ(r->last, 99u);
  EXPECT_EQ(r->size, 1000u);
  const auto end = parse_content_range("bytes 999-999/1000");
  ASSERT_TRUE(end);
  EXPECT_EQ(end->last, 999u);
  EXPECT_TRUE(parse_content_range("bytes 0-18446744073709551614/18446744073709551615"));
}

TEST(content_range, refuses_anything_else) {
  for (const char* v : {"", "bytes", "bytes */1000", "bytes 0-99/*", "bytes 5-4/1000", "bytes 0-1000/1000",
                        "bytes 0-99", "bytes 0/99-1000", "items 0-99/1000", "bytes -1-99/1000",
                        "bytes  0-99/1000", "bytes 0-99/18446744073709551616"})
    EXPECT_FALSE(parse_content_range(v)) << v;
}

// The plan reuses the hint read before the size was known; it must answer exactly as parsing the header
// again.
TEST(range_of_spec, equals_parse_range_for_every_header_single_range_spec_accepts) {
  const std::string_view headers[] = {"bytes=0-1",        "bytes=0-",
                                      "bytes=5-9",        " BYTES = 5 - 9 ",
                                      "bytes=5-9,",       ",bytes=0-0",
                                      "bytes=0-0",        "bytes=999-",
                                      "bytes=999-999",    "bytes=1000-",
                                      "bytes=1000-2000",  "bytes=998-5000",
                                      "bytes=0-99999999", "bytes=18446744073709551615-",
                                      "bytes=,,3-4,,"};
  const std::uint64_t sizes[] = {0, 1, 5, 999, 1000, 1001, 18446744073709551615ULL};
  const std::size_t maxes[] = {0, 1, 16};
  int compared = 0;
  for (auto h : headers) {
    const auto spec = single_range_spec(h);
    if (!spec) continue;
    for (auto size : sizes) {
      for (auto max : maxes) {
        const range_limits limits{max};
        const auto want = parse_range(h, size, limits);
        const auto got = range_of_spec(*spec, size, limits);
        EXPECT_EQ(got.outcome, want.outcome) << h << " size " << size << " max " << max;
        ASSERT_EQ(got.ranges.size(), want.ranges.size()) << h << " size " << size << " max " << max;
        for (std::size_t i = 0; i < got.ranges.size(); ++i) {
          EXPECT_EQ(got.ranges[i].first, want.ranges[i].first) << h << " size " << size;
          EXPECT_EQ(got.ranges[i].last, want.ranges[i].last) << h << " size " << size;
        }
        ++compared;
      }
    }
  }
  EXPECT_EQ(compared, 14 * 7 * 3);  // every header above but ",bytes=0-0" (not a bytes unit)
}

}  // namespace
}  // namespace mediagate::http
