#include "http/https_redirect.hpp"

#include <gtest/gtest.h>

namespace mediagate::http {
namespace {

TEST(https_location, keeps_the_host_and_target_and_sets_the_port) {
  EXPECT_EQ(https_location("example.com", "/media/a.mp4?x=1", 8443),
            "https://example.com:8443/media/a.mp4?x=1");
  EXPECT_EQ(https_location("example.com:80", "/", 443), "https://example.com/");
  EXPECT_EQ(https_location(" 127.0.0.1:8080 ", "/v/1", 8443), "https://127.0.0.1:8443/v/1");
  EXPECT_EQ(https_location("[::1]:8080", "/x", 9443), "https://[::1]:9443/x");
  EXPECT_EQ(https_location("[2001:db8::1]", "/x", 443), "https://[2001:db8::1]/x");
}

TEST(https_location, a_target_that_is_not_origin_form_becomes_the_root) {
  EXPECT_EQ(https_location("h", "*", 443), "https://h/");
  EXPECT_EQ(https_location("h", "http://other/x", 443), "https://h/");
}

TEST(https_location, refuses_hosts_that_are_not_plain_names) {
  for (const char* bad :
       {"", "   ", "a b", "evil.com/path", "evil.com@x", "h:", "h:port", "h:123456", "h:99999", "[::1", "[]",
        "[::1]x", "[::1]:", "[zz::1]", "a\r\nSet-Cookie: x", "h\"x", ":80"})
    EXPECT_EQ(https_location(bad, "/", 443), std::nullopt) << bad;
}

}  // namespace
}  // namespace mediagate::http
