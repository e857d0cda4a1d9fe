// Entity tags: syntax and comparison (RFC 9110 §8.8.3).
#include "http/entity_tag.hpp"

#include <gtest/gtest.h>

#include <optional>
#include <string>
#include <vector>

namespace mediagate::http {
namespace {

struct tag_case {
  const char* name;
  std::string input;
  bool valid;
  bool weak;
  std::string opaque;  // quotes included
};

void PrintTo(const tag_case& c, std::ostream* os) { *os << c.name << ": [" << c.input << "]"; }

class parse_entity_tag_table : public ::testing::TestWithParam<tag_case> {};

TEST_P(parse_entity_tag_table, exact) {
  const auto& c = GetParam();
  const auto tag = parse_entity_tag(c.input);
  ASSERT_EQ(tag.has_value(), c.valid);
  if (!tag) return;
  EXPECT_EQ(tag->weak, c.weak);
  EXPECT_EQ(tag->opaque, c.opaque);
}

const tag_case kSingleTags[] = {
    {"strong", "\"xyzzy\"", true, false, "\"xyzzy\""},
    {"weak", "W/\"xyzzy\"", true, true, "\"xyzzy\""},
    {"empty_opaque", "\"\"", true, false, "\"\""},
    {"weak_empty_opaque", "W/\"\"", true, true, "\"\""},
    {"s3_md5", "\"d41d8cd98f00b204e9800998ecf8427e\"", true, false, "\"d41d8cd98f00b204e9800998ecf8427e\""},
    {"s3_multipart", "\"9b2cf535f27731c974343645a3985328-2\"", true, false,
     "\"9b2cf535f27731c974343645a3985328-2\""},
    {"comma_inside", "\"a,b\"", true, false, "\"a,b\""},
    {"exclamation", "\"!\"", true, false, "\"!\""},
    {"tilde_and_slash", "\"~/W/\"", true, false, "\"~/W/\""},
    {"obs_text", "\"\xC3\xA9\xFF\x80\"", true, false, "\"\xC3\xA9\xFF\x80\""},
    {"unquoted", "xyzzy", false, false, ""},
    {"weak_unquoted", "W/xyzzy", false, false, ""},
    {"lowercase_weak", "w/\"xyzzy\"", false, false, ""},
    {"space_after_weak", "W/ \"xyzzy\"", false, false, ""},
    {"leading_space", " \"xyzzy\"", false, false, ""},
    {"trailing_space", "\"xyzzy\" ", false, false, ""},
    {"missing_close", "\"xyzzy", false, false, ""},
    {"missing_open", "xyzzy\"", false, false, ""},
    {"lone_quote", "\"", false, false, ""},
    {"empty", "", false, false, ""},
    {"weak_only", "W/", false, false, ""},
    {"space_inside", "\"a b\"", false, false, ""},
    {"quote_inside", "\"a\"b\"", false, false, ""},
    {"tab_inside", "\"a\tb\"", false, false, ""},
    {"del_inside", "\"a\x7F\"", false, false, ""},
    {"control_inside", "\"a\x01\"", false, false, ""},
    {"nul_inside", std::string("\"a\0\"", 4), false, false, ""},
    {"two_tags", "\"a\", \"b\"", false, false, ""},
    {"star", "*", false, false, ""},
    {"double_weak", "W/W/\"a\"", false, false, ""},
};
INSTANTIATE_TEST_SUITE_P(rfc9110_8_8_3, parse_entity_tag_table, ::testing::ValuesIn(kSingleTags),
                         [](const auto& info) { return std::string(info.param.name); });

struct list_case {
  const char* name;
  std::string input;
  std::optional<std::vector<std::string>> tags;  // each as written: W/"x" or "x"
};

void PrintTo(const list_case& c, std::ostream* os) { *os << c.name << ": [" << c.input << "]"; }

class parse_entity_tags_table : public ::testing::TestWithParam<list_case> {};

TEST_P(parse_entity_tags_table, exact) {
  const auto& c = GetParam();
  const auto tags = parse_entity_tags(c.input);
  ASSERT_EQ(tags.has_value(), c.tags.has_value());
  if (!tags) return;
  std::vector<std::string> written;
  for (const auto& t : *tags) written.push_back((t.weak ? "W/" : "") + std::string(t.opaque));
  EXPECT_EQ(written, *c.tags);
}

using tags = std::vector<std::string>;

const list_case kLists[] = {
    {"one", "\"a\"", tags{"\"a\""}},
    {"two", "\"a\", \"b\"", tags{"\"a\"", "\"b\""}},
    {"rfc_example", "\"xyzzy\", \"r2d2xxxx\", \"c3piozzzz\"",
     tags{"\"xyzzy\"", "\"r2d2xxxx\"", "\"c3piozzzz\""}},
    {"mixed_weak", "W/\"xyzzy\", W/\"r2d2xxxx\", \"c3piozzzz\"",
     tags{"W/\"xyzzy\"", "W/\"r2d2xxxx\"", "\"c3piozzzz\""}},
    {"no_spaces", "\"a\",\"b\",W/\"c\"", tags{"\"a\"", "\"b\"", "W/\"c\""}},
    {"tabs", "\t\"a\"\t,\t\"b\"\t", tags{"\"a\"", "\"b\""}},
    {"comma_in_opaque", "\"a,b\", \"c\"", tags{"\"a,b\"", "\"c\""}},
    {"only_commas_in_opaque", "\",,,\"", tags{"\",,,\""}},
    {"weak_comma_in_opaque", "W/\"a, b\"", std::nullopt},  // a space is not an etagc
    {"weak_comma_no_space", "W/\"a,b\",\"c,d\"", tags{"W/\"a,b\"", "\"c,d\""}},
    {"empty_elements", ", \"a\" ,, \"b\" ,", tags{"\"a\"", "\"b\""}},
    {"empty_field", "", tags{}},
    {"only_commas", " , , ", tags{}},
    {"empty_opaque", "\"\", \"a\"", tags{"\"\"", "\"a\""}},
    {"missing_comma", "\"a\" \"b\"", std::nullopt},
    {"unquoted_member", "\"a\", b", std::nullopt},
    {"unterminated", "\"a\", \"b", std::nullopt},
    {"garbage_after", "\"a\"x", std::nullopt},
    {"star_in_list", "\"a\", *", std::nullopt},
    {"lowercase_weak", "w/\"a\"", std::nullopt},
    {"space_after_weak", "W/ \"a\"", std::nullopt},
    {"semicolon_separator", "\"a\"; \"b\"", std::nullopt},
    {"control_in_opaque", "\"a\x01\", \"b\"", std::nullopt},
};
INSTANTIATE_TEST_SUITE_P(lists, parse_entity_tags_table, ::testing::ValuesIn(kLists),
                         [](const auto& info) { return std::string(info.param.name); });

entity_tag tag(std::string_view written) {
  auto t = parse_entity_tag(written);
  EXPECT_TRUE(t.has_value()) << written;
  return t.value_or(entity_tag{});
}

// RFC 9110 §8.8.3.2's comparison table.
TEST(entity_tag_compare, rfc9110_8_8_3_2_table) {
  struct row {
    const char* a;
    const char* b;
    bool strong;
    bool weak;
  };
  const row rows[] = {
      {"W/\"1\"", "W/\"1\"", false, true},
      {"W/\"1\"", "W/\"2\"", false, false},
      {"W/\"1\"", "\"1\"", false, true},
      {"\"1\"", "\"1\"", true, true},
      // Beyond the RFC's table: symmetric, and case-sensitive opaque tags.
      {"\"1\"", "W/\"1\"", false, true},
      {"\"1\"", "\"2\"", false, false},
      {"\"a\"", "\"A\"", false, false},
      {"\"\"", "\"\"", true, true},
      {"\"a,b\"", "\"a,b\"", true, true},
  };
  for (const auto& r : rows) {
    SCOPED_TRACE(std::string(r.a) + " vs " + r.b);
    EXPECT_EQ(strong_match(tag(r.a), tag(r.b)), r.strong);
    EXPECT_EQ(weak_match(tag(r.a), tag(r.b)), r.weak);
    EXPECT_EQ(strong_match(tag(r.b), tag(r.a)), r.strong);
    EXPECT_EQ(weak_match(tag(r.b), tag(r.a)), r.weak);
  }
}

}  // namespace
}  // namespace mediagate::http
