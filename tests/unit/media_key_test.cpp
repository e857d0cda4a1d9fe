// Request targets to storage keys: percent-decoding (RFC 3986 §2.1), refusal of anything that could escape
// the root, the query string, and the reverse encoding for links.
#include "http/media_key.hpp"

#include <gtest/gtest.h>

#include <optional>
#include <string>
#include <vector>

namespace mediagate::http {
namespace {

struct key_case {
  const char* name;
  std::string encoded;
  std::optional<std::string> key;
};

void PrintTo(const key_case& c, std::ostream* os) { *os << c.name << ": [" << c.encoded << "]"; }

class decode_media_key_table : public ::testing::TestWithParam<key_case> {};

TEST_P(decode_media_key_table, exact) {
  const auto& c = GetParam();
  EXPECT_EQ(decode_media_key(c.encoded), c.key);
}

const std::optional<std::string> refused = std::nullopt;

const key_case kAccepted[] = {
    {"plain", "video.mp4", "video.mp4"},
    {"nested", "a/b/c.mp4", "a/b/c.mp4"},
    {"space", "my%20movie.mp4", "my movie.mp4"},
    {"plus_kept_as_plus", "a+b.mp4", "a+b.mp4"},
    {"encoded_plus", "a%2Bb.mp4", "a+b.mp4"},
    {"lowercase_hex", "caf%c3%a9.mp4", "caf\xC3\xA9.mp4"},
    {"uppercase_hex", "caf%C3%A9.mp4", "caf\xC3\xA9.mp4"},
    {"raw_utf8", "caf\xC3\xA9/\xE2\x9C\x93.mp4", "caf\xC3\xA9/\xE2\x9C\x93.mp4"},
    {"encoded_four_byte_utf8", "%F0%9F%8E%AC.mp4", "\xF0\x9F\x8E\xAC.mp4"},
    {"max_code_point", "%F4%8F%BF%BF", "\xF4\x8F\xBF\xBF"},
    {"encoded_percent", "100%25.mp4", "100%.mp4"},
    {"encoded_slash_is_a_slash", "a%2Fb.mp4", "a/b.mp4"},
    {"three_dots", ".../x", ".../x"},
    {"dots_inside_names", "a..b/c..d/..e", "a..b/c..d/..e"},
    {"hidden_file", ".hidden/.x", ".hidden/.x"},
    {"dot_extension_only", "a/.mp4", "a/.mp4"},
    {"reserved_characters", "a!$&'()*,;=:@~-_.b", "a!$&'()*,;=:@~-_.b"},
    {"encoded_question_mark", "what%3F.mp4", "what?.mp4"},
    {"encoded_hash", "track%231.mp3", "track#1.mp3"},
    {"space_segment", "%20/x", " /x"},
};
INSTANTIATE_TEST_SUITE_P(accepted, decode_media_key_table, ::testing::ValuesIn(kAccepted),
                         [](const auto& info) { return std::string(info.param.name); });

const key_case kTraversal[] = {
    {"dotdot", "..", refused},
    {"dotdot_prefix", "../etc/passwd", refused},
    {"dotdot_middle", "a/../../etc/passwd", refused},
    {"dotdot_last", "a/..", refused},
    {"dot", ".", refused},
    {"dot_prefix", "./a", refused},
    {"dot_middle", "a/./b", refused},
    {"dot_last", "a/.", refused},
    {"encoded_dots_lower", "%2e%2e/etc/passwd", refused},
    {"encoded_dots_upper", "%2E%2E/etc/passwd", refused},
    {"half_encoded_dots", ".%2e/x", refused},
    {"half_encoded_dots_2", "%2e./x", refused},
    {"encoded_dotdot_last", "a/%2E%2E", refused},
    {"encoded_dot", "a/%2e/b", refused},
    {"encoded_slash_forms_dotdot", "..%2Fetc%2Fpasswd", refused},
    {"encoded_slash_lower_forms_dotdot", "..%2fx", refused},
    {"fully_encoded_traversal", "%2e%2e%2f%2e%2e%2fetc%2fpasswd", refused},
    {"encoded_slash_between_dotdot", "a%2F..%2Fb", refused},
    {"leading_slash", "/etc/passwd", refused},
    {"encoded_leading_slash", "%2Fetc/passwd", refused},
    {"double_slash_leading", "//etc/passwd", refused},
    {"double_slash_middle", "a//b", refused},
    {"encoded_double_slash", "a%2F%2Fb", refused},
    {"trailing_slash", "a/", refused},
    {"only_slash", "/", refused},
    {"empty", "", refused},
    {"backslash", "a\\b", refused},
    {"encoded_backslash", "a%5Cb", refused},
    {"encoded_backslash_lower", "a%5cb", refused},
    {"backslash_traversal", "..\\..\\windows", refused},
    {"encoded_backslash_traversal", "..%5C..%5Cwindows", refused},
    {"nul", "a%00b", refused},
    {"nul_before_extension", "secret%00.mp4", refused},
    {"raw_nul", std::string("a\0b", 3), refused},
    {"control_01", "a%01b", refused},
    {"tab", "a%09b", refused},
    {"newline", "a%0Ab", refused},
    {"carriage_return", "a%0D%0Ab", refused},
    {"control_1f", "a%1Fb", refused},
    {"del", "a%7Fb", refused},
    {"raw_control",
     "a\x01"
     "b",
     refused},
    {"overlong_dot_dot", "%C0%AE%C0%AE/x", refused},
    {"overlong_slash", "..%C0%AFx", refused},
    {"overlong_three_byte_slash", "..%E0%80%AFx", refused},
    {"lone_continuation", "a%80", refused},
    {"invalid_byte_ff", "a%FF", refused},
    {"invalid_byte_fe", "%FE", refused},
    {"truncated_sequence", "a%E2%9C", refused},
    {"truncated_at_end", "%C3", refused},
    {"surrogate", "%ED%A0%80", refused},
    {"above_max_code_point", "%F4%90%80%80", refused},
    {"five_byte_form", "%F8%88%80%80%80", refused},
    {"raw_invalid_utf8",
     "a\xFF"
     "b",
     refused},
};
INSTANTIATE_TEST_SUITE_P(traversal_and_bytes, decode_media_key_table, ::testing::ValuesIn(kTraversal),
                         [](const auto& info) { return std::string(info.param.name); });

const key_case kEscapes[] = {
    {"lone_percent", "%", refused},
    {"percent_one_digit", "%2", refused},
    {"percent_at_end", "a%", refused},
    {"one_digit_at_end", "a%4", refused},
    {"non_hex", "a%zzb", refused},
    {"non_hex_second", "a%4gb", refused},
    {"non_hex_first", "a%g4b", refused},
    {"sign", "a%+1b", refused},
    {"space_in_escape", "a% 1b", refused},
    {"double_percent", "a%%41", refused},
    {"escape_is_not_decoded_twice", "a%2541", "a%41"},
    {"double_encoded_dots_are_names", "%252e%252e/x", "%2e%2e/x"},
};
INSTANTIATE_TEST_SUITE_P(escapes, decode_media_key_table, ::testing::ValuesIn(kEscapes),
                         [](const auto& info) { return std::string(info.param.name); });

TEST(decode_media_key, length_limit_counts_decoded_bytes) {
  EXPECT_EQ(kMaxKeyBytes, 1024u);
  const std::string max(1024, 'a');
  EXPECT_EQ(decode_media_key(max), max);
  EXPECT_EQ(decode_media_key(std::string(1025, 'a')), std::nullopt);
  EXPECT_EQ(decode_media_key(std::string(100000, 'a')), std::nullopt);

  std::string encoded;  // 3072 bytes of text, 1024 bytes of key
  for (int i = 0; i < 1024; ++i) encoded += "%61";
  EXPECT_EQ(decode_media_key(encoded), max);
  EXPECT_EQ(decode_media_key(encoded + "%61"), std::nullopt);

  // Multi-byte characters count by bytes: 1022 + 2 fits, 1023 + 2 does not.
  EXPECT_EQ(decode_media_key(std::string(1022, 'a') + "%C3%A9"), std::string(1022, 'a') + "\xC3\xA9");
  EXPECT_EQ(decode_media_key(std::string(1023, 'a') + "%C3%A9"), std::nullopt);

  // Deep paths within the limit are fine.
  std::string deep;
  for (int i = 0; i < 511; ++i) deep += "a/";
  deep += "b";
  EXPECT_EQ(decode_media_key(deep), deep);
}

TEST(percent_decode, plus_handling) {
  EXPECT_EQ(percent_decode("a+b"), "a+b");
  EXPECT_EQ(percent_decode("a+b", false), "a+b");
  EXPECT_EQ(percent_decode("a+b", true), "a b");
  EXPECT_EQ(percent_decode("a%2Bb", true), "a+b");
  EXPECT_EQ(percent_decode("%20%41%7e"), " A~");
  EXPECT_EQ(percent_decode(""), "");
  EXPECT_EQ(percent_decode("%"), std::nullopt);
  EXPECT_EQ(percent_decode("%0"), std::nullopt);
  EXPECT_EQ(percent_decode("%0g"), std::nullopt);
  EXPECT_EQ(percent_decode("%00"), std::string(1, '\0'));  // decoding itself accepts NUL; keys refuse it
  EXPECT_EQ(percent_decode("%FF"), "\xFF");
}

TEST(encode_key_for_url, exact) {
  EXPECT_EQ(encode_key_for_url("a/b/c.mp4"), "a/b/c.mp4");
  EXPECT_EQ(encode_key_for_url("my movie.mp4"), "my%20movie.mp4");
  EXPECT_EQ(encode_key_for_url("a+b"), "a%2Bb");
  EXPECT_EQ(encode_key_for_url("100%"), "100%25");
  EXPECT_EQ(encode_key_for_url("caf\xC3\xA9"), "caf%C3%A9");
  EXPECT_EQ(encode_key_for_url("what?#x"), "what%3F%23x");
  EXPECT_EQ(encode_key_for_url("AZaz09-_.~/"), "AZaz09-_.~/");
  EXPECT_EQ(encode_key_for_url("a\\b\"<>"), "a%5Cb%22%3C%3E");
  EXPECT_EQ(encode_key_for_url(""), "");
}

TEST(encode_key_for_url, round_trips_through_decode_media_key) {
  std::vector<std::string> keys = {"a",
                                   "a/b",
                                   "my movie (2024).mp4",
                                   "caf\xC3\xA9/\xF0\x9F\x8E\xAC.webm",
                                   "100% & more?.mp4",
                                   "a+b=c;d,e",
                                   "#1 hit.mp3",
                                   "x/.../y",
                                   ".hidden"};
  for (int c = 0x20; c < 0x7F; ++c) {
    if (c == '/' || c == '\\') continue;
    keys.push_back(std::string("k") + static_cast<char>(c) + "k");
  }
  for (const auto& key : keys) EXPECT_EQ(decode_media_key(encode_key_for_url(key)), key) << key;
}

TEST(split_target, origin_form) {
  auto t = split_target("/media/a.mp4?x=1&y=2");
  EXPECT_EQ(t.path, "/media/a.mp4");
  EXPECT_EQ(t.query, "x=1&y=2");
  t = split_target("/media/a.mp4");
  EXPECT_EQ(t.path, "/media/a.mp4");
  EXPECT_EQ(t.query, "");
  t = split_target("/a?");
  EXPECT_EQ(t.path, "/a");
  EXPECT_EQ(t.query, "");
  t = split_target("/a?b?c");
  EXPECT_EQ(t.path, "/a");
  EXPECT_EQ(t.query, "b?c");
  t = split_target("/");
  EXPECT_EQ(t.path, "/");
  EXPECT_EQ(t.query, "");
  t = split_target("*");
  EXPECT_EQ(t.path, "*");
  EXPECT_EQ(t.query, "");
}

TEST(split_target, absolute_form) {
  auto t = split_target("http://host:8080/media/x?y=1");
  EXPECT_EQ(t.path, "/media/x");
  EXPECT_EQ(t.query, "y=1");
  t = split_target("HTTPS://Host/media/x");
  EXPECT_EQ(t.path, "/media/x");
  EXPECT_EQ(t.query, "");
  t = split_target("http://host");
  EXPECT_EQ(t.path, "/");
  EXPECT_EQ(t.query, "");
  t = split_target("http://host?q=1");
  EXPECT_EQ(t.path, "/");
  EXPECT_EQ(t.query, "q=1");
  t = split_target("http://host:80/");
  EXPECT_EQ(t.path, "/");
  EXPECT_EQ(t.query, "");
}

TEST(query_param, exact) {
  EXPECT_EQ(query_param("a=1&b=2", "a"), "1");
  EXPECT_EQ(query_param("a=1&b=2", "b"), "2");
  EXPECT_EQ(query_param("a=1&b=2", "c"), std::nullopt);
  EXPECT_EQ(query_param("", "a"), std::nullopt);
  EXPECT_EQ(query_param("a", "a"), "");
  EXPECT_EQ(query_param("a=", "a"), "");
  EXPECT_EQ(query_param("a=1&a=2", "a"), "1");   // the first occurrence
  EXPECT_EQ(query_param("ab=1&a=2", "a"), "2");  // names match whole, not by prefix
  EXPECT_EQ(query_param("ba=1", "a"), std::nullopt);
  EXPECT_EQ(query_param("A=1", "a"), std::nullopt);  // names are case-sensitive
  EXPECT_EQ(query_param("&&a=1&", "a"), "1");
  EXPECT_EQ(query_param("a=b=c", "a"), "b=c");
  EXPECT_EQ(query_param("q=my%20movie", "q"), "my movie");
  EXPECT_EQ(query_param("q=my+movie", "q"), "my movie");  // form encoding in queries
  EXPECT_EQ(query_param("q=a%2Bb", "q"), "a+b");
  EXPECT_EQ(query_param("q=%26%3D", "q"), "&=");
  EXPECT_EQ(query_param("q=caf%C3%A9", "q"), "caf\xC3\xA9");
  EXPECT_EQ(query_param("q=%zz", "q"), std::nullopt);  // a malformed escape is no value
  EXPECT_EQ(query_param("x=%zz&q=1", "q"), "1");       // other parameters' escapes do not matter
}

}  // namespace
}  // namespace mediagate::http
