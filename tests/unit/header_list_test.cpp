#include "http/header_list.hpp"

#include <gtest/gtest.h>

#include <string>
#include <vector>

namespace mediagate::http {
namespace {

std::vector<std::pair<std::string, std::string>> fields(const header_list& h) {
  std::vector<std::pair<std::string, std::string>> out;
  for (const auto& [name, value] : h) out.emplace_back(name, value);
  return out;
}

TEST(header_list, keeps_fields_in_order_as_wire_text) {
  header_list h{{"ETag", "\"a\""}, {"Content-Length", "0"}};
  h.emplace_back("Vary", "Origin");
  EXPECT_EQ(h.wire(), "ETag: \"a\"\r\nContent-Length: 0\r\nVary: Origin\r\n");
  EXPECT_EQ(h.size(), 3u);
  const std::vector<std::pair<std::string, std::string>> want = {
      {"ETag", "\"a\""}, {"Content-Length", "0"}, {"Vary", "Origin"}};
  EXPECT_EQ(fields(h), want);
}

TEST(header_list, empty_list_and_empty_value) {
  header_list h;
  EXPECT_TRUE(h.empty());
  EXPECT_EQ(h.size(), 0u);
  EXPECT_EQ(h.begin(), h.end());
  h.emplace_back("X-Empty", "");
  EXPECT_FALSE(h.empty());
  EXPECT_EQ(h.find("x-empty"), "");
  EXPECT_EQ(h.wire(), "X-Empty: \r\n");
}

TEST(header_list, find_is_case_insensitive_and_takes_the_first) {
  header_list h{{"Vary", "Origin"}, {"vary", "Accept"}};
  EXPECT_EQ(h.find("VARY"), "Origin");
  EXPECT_EQ(h.find("Allow"), std::nullopt);
}

TEST(header_list, set_replaces_the_first_in_place_or_appends) {
  header_list h{{"A", "1"}, {"Content-Type", "video/mp4"}, {"B", "2"}};
  h.set("content-type", "multipart/byteranges; boundary=x");
  const std::vector<std::pair<std::string, std::string>> want = {
      {"A", "1"}, {"content-type", "multipart/byteranges; boundary=x"}, {"B", "2"}};
  EXPECT_EQ(fields(h), want);
  h.set("Allow", "GET");
  EXPECT_EQ(h.find("allow"), "GET");
  EXPECT_EQ(h.size(), 4u);
}

TEST(header_list, a_value_can_never_end_the_field) {
  // A value that came from a client or a file (an Origin, a stored type) cannot add a field or end the head.
  header_list h;
  std::string hostile = "https://a\r\nSet-Cookie: x=1\r\n\r\n";
  hostile += '\0';
  hostile += 'z';
  h.emplace_back("Access-Control-Allow-Origin", hostile);
  EXPECT_EQ(h.size(), 1u);
  const auto value = *h.find("Access-Control-Allow-Origin");
  EXPECT_EQ(value.find_first_of(std::string("\r\n\0", 3)), std::string_view::npos);
  EXPECT_EQ(value, "https://a  Set-Cookie: x=1     z");
  EXPECT_EQ(h.wire().find("\r\n"), h.wire().size() - 2);
}

}  // namespace
}  // namespace mediagate::http
