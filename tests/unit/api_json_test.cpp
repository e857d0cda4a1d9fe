// The API's JSON text: numbers as plain decimals (issue 11: "duration":1E1 for a 10-second item).
#include "server/api_json.hpp"

#include <gtest/gtest.h>

#include <boost/json/parse.hpp>
#include <limits>

namespace mediagate::server {
namespace {

TEST(PlainDecimal, PrintsThousandthsWithoutExponent) {
  EXPECT_EQ(plain_decimal(10.0), "10.0");
  EXPECT_EQ(plain_decimal(4.967), "4.967");
  EXPECT_EQ(plain_decimal(4.9671234), "4.967");
  EXPECT_EQ(plain_decimal(4.9675001), "4.968");
  EXPECT_EQ(plain_decimal(0.1), "0.1");
  EXPECT_EQ(plain_decimal(0.0), "0.0");
  EXPECT_EQ(plain_decimal(-0.0001), "0.0");
  EXPECT_EQ(plain_decimal(-2.5), "-2.5");
  EXPECT_EQ(plain_decimal(1e7), "10000000.0");
  EXPECT_EQ(plain_decimal(123456.0004), "123456.0");
  EXPECT_EQ(plain_decimal(std::numeric_limits<double>::quiet_NaN()), "null");
  EXPECT_EQ(plain_decimal(std::numeric_limits<double>::infinity()), "null");
  EXPECT_EQ(plain_decimal(std::numeric_limits<double>::max()).find('e'), std::string::npos);
}

TEST(ApiJsonText, SerializesLikeBoostExceptDoubles) {
  boost::json::value v = {{"duration", 10.0},
                          {"size", 123},
                          {"big", std::uint64_t{18446744073709551615ull}},
                          {"neg", -5},
                          {"title", "a \"quoted\" \\ title\n\x01"},
                          {"ok", true},
                          {"none", nullptr},
                          {"list", {1.5, 2, "x", boost::json::object{}}}};
  const auto text = api_json_text(v);
  EXPECT_NE(text.find("\"duration\":10.0"), std::string::npos) << text;
  EXPECT_NE(text.find("\"size\":123"), std::string::npos) << text;
  EXPECT_NE(text.find("\"big\":18446744073709551615"), std::string::npos) << text;
  EXPECT_NE(text.find("\"list\":[1.5,2,\"x\",{}]"), std::string::npos) << text;
  EXPECT_EQ(text.find('E'), std::string::npos) << text;
  // The same document as Boost.JSON's own text, read back.
  EXPECT_EQ(boost::json::parse(text), v);
}

TEST(ApiJsonText, ItemDurationIsPlain) {
  catalog::media_item item;
  item.id = "abc";
  item.key = "clip.mp4";
  item.content_type = "video/mp4";
  item.duration = 10.0;
  item.width = 640;
  item.height = 360;
  auto text = api_json_text(item_json(item));
  EXPECT_NE(text.find("\"duration\":10.0,"), std::string::npos) << text;
  item.duration = 4.96666;
  text = api_json_text(item_json(item));
  EXPECT_NE(text.find("\"duration\":4.967,"), std::string::npos) << text;
}

}  // namespace
}  // namespace mediagate::server
