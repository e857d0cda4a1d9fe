#include "http/signed_link.hpp"

#include <gtest/gtest.h>

#include "common/crypto.hpp"

namespace mediagate::http {
namespace {

const signing_key kFirst{"k1", std::string(32, 'a')};
const signing_key kSecond{"k2", std::string(40, 'b')};
const std::vector<signing_key> kKeys{kFirst, kSecond};
constexpr std::int64_t kNow = 1'800'000'000;

link_verdict check(std::string_view query, std::string_view key, bool get = true,
                   std::string_view ip = "10.1.2.3", std::int64_t now = kNow, std::int64_t skew = 30) {
  return verify_link({query, key, get, ip}, kKeys, now, skew);
}

std::string signed_query(const link_grant& g, const signing_key& k = kFirst) { return sign_link(g, k); }

// The value of one parameter replaced, the rest kept.
std::string with_param(std::string query, std::string_view name, std::string_view value) {
  const auto at = query.find(std::string(name) + "=");
  const auto end = query.find('&', at);
  return query.replace(at, (end == std::string::npos ? query.size() : end) - at,
                       std::string(name) + "=" + std::string(value));
}

TEST(SignedLink, CanonicalStringNamesEveryField) {
  EXPECT_EQ(canonical_link_string({"a/b.mp4", 123, false, ""}),
            "mediagate-link-v1\nGET\na/b.mp4\n123\nexact\n");
  EXPECT_EQ(canonical_link_string({"a/", 9, true, "10.0.0.0/8"}),
            "mediagate-link-v1\nGET\na/\n9\nprefix\n10.0.0.0/8");
}

TEST(SignedLink, ASignedLinkOpensItsKey) {
  const auto q = signed_query({"movies/a b.mp4", kNow + 60, false, ""});
  EXPECT_EQ(check(q, "movies/a b.mp4"), link_verdict::ok);
  EXPECT_EQ(check(q, "movies/a b.mp4", true, "::1"), link_verdict::ok);
}

TEST(SignedLink, EveryFieldTamperedFails) {
  const auto q = signed_query({"movies/a.mp4", kNow + 60, false, ""});
  EXPECT_EQ(check(q, "movies/b.mp4"), link_verdict::bad_signature);  // another key
  EXPECT_EQ(check(q, "movies/a.mp4x"), link_verdict::bad_signature);
  EXPECT_EQ(check(with_param(q, "exp", std::to_string(kNow + 61)), "movies/a.mp4"),
            link_verdict::bad_signature);
  EXPECT_EQ(check(with_param(q, "kid", "k2"), "movies/a.mp4"), link_verdict::bad_signature);  // wrong key
  EXPECT_EQ(check(with_param(q, "kid", "k9"), "movies/a.mp4"), link_verdict::unknown_kid);
  EXPECT_EQ(check(q + "&pfx=1", "movies/a.mp4"), link_verdict::bad_signature);
  EXPECT_EQ(check(q + "&ip=10.0.0.0%2F8", "movies/a.mp4"), link_verdict::bad_signature);
  auto sig = q.substr(q.find("sig=") + 4);
  for (std::size_t i : {std::size_t{0}, sig.size() / 2, sig.size() - 1}) {
    auto flipped = sig;
    flipped[i] = flipped[i] == 'A' ? 'B' : 'A';
    EXPECT_EQ(check(with_param(q, "sig", flipped), "movies/a.mp4"), link_verdict::bad_signature) << i;
  }
}

TEST(SignedLink, ExpiryEdgesAndSkew) {
  const auto q = signed_query({"a.mp4", kNow, false, ""});
  EXPECT_EQ(check(q, "a.mp4", true, "1.2.3.4", kNow, 0), link_verdict::ok);
  EXPECT_EQ(check(q, "a.mp4", true, "1.2.3.4", kNow + 1, 0), link_verdict::expired);
  EXPECT_EQ(check(q, "a.mp4", true, "1.2.3.4", kNow + 30, 30), link_verdict::ok);
  EXPECT_EQ(check(q, "a.mp4", true, "1.2.3.4", kNow + 31, 30), link_verdict::expired);
}

TEST(SignedLink, RotationEveryKeyVerifies) {
  EXPECT_EQ(check(signed_query({"a.mp4", kNow + 5, false, ""}, kSecond), "a.mp4"), link_verdict::ok);
  EXPECT_EQ(verify_link({signed_query({"a.mp4", kNow + 5, false, ""}, kSecond), "a.mp4", true, ""}, {kFirst},
                        kNow, 0),
            link_verdict::unknown_kid);
}

TEST(SignedLink, MissingAndGarbled) {
  EXPECT_EQ(check("", "a.mp4"), link_verdict::missing);
  EXPECT_EQ(check("t=1", "a.mp4"), link_verdict::missing);
  const auto q = signed_query({"a.mp4", kNow + 5, false, ""});
  EXPECT_EQ(check(q.substr(0, q.find("&sig=")), "a.mp4"), link_verdict::garbled);
  EXPECT_EQ(check(with_param(q, "exp", "-5"), "a.mp4"), link_verdict::garbled);
  EXPECT_EQ(check(with_param(q, "exp", "99999999999999999999999"), "a.mp4"), link_verdict::garbled);
  EXPECT_EQ(check(with_param(q, "sig", "short"), "a.mp4"), link_verdict::garbled);
  EXPECT_EQ(check(q + "&exp=" + std::to_string(kNow + 5), "a.mp4"), link_verdict::garbled);  // repeated
  EXPECT_EQ(check(q + "&pfx=yes", "a.mp4"), link_verdict::garbled);
}

TEST(SignedLink, WrongMethodAndAddress) {
  const auto q = signed_query({"a.mp4", kNow + 5, false, "10.0.0.0/8"});
  EXPECT_EQ(check(q, "a.mp4", false), link_verdict::wrong_method);
  EXPECT_EQ(check(q, "a.mp4", true, "10.200.1.1"), link_verdict::ok);
  EXPECT_EQ(check(q, "a.mp4", true, "11.0.0.1"), link_verdict::wrong_address);
  EXPECT_EQ(check(q, "a.mp4", true, "::ffff:10.0.0.1"), link_verdict::ok);
}

TEST(SignedLink, PrefixLinksOpenTheirFolderOnly) {
  const auto q = signed_query({"course/week1/", kNow + 5, true, ""});
  EXPECT_EQ(check(q, "course/week1/index.m3u8"), link_verdict::ok);
  EXPECT_EQ(check(q, "course/week1/720p/seg-1.m4s"), link_verdict::ok);
  EXPECT_EQ(check(q, "course/week2/index.m3u8"), link_verdict::bad_signature);
  EXPECT_EQ(check(q, "course/index.m3u8"), link_verdict::bad_signature);
  // Without pfx=1 the same signature is for the exact string "course/week1/" only.
  EXPECT_EQ(check(q.substr(0, q.find("&pfx=1")) + q.substr(q.find("&sig=")), "course/week1/x.mp4"),
            link_verdict::bad_signature);
}

TEST(SignedLink, RedactsTheSignatureOnly) {
  EXPECT_EQ(redact_signature("/media/a.mp4?exp=1&kid=k&sig=SECRET&x=1"),
            "/media/a.mp4?exp=1&kid=k&sig=REDACTED&x=1");
  EXPECT_EQ(redact_signature("/media/a.mp4"), "/media/a.mp4");
  EXPECT_EQ(redact_signature("/media/a.mp4?xsig=1"), "/media/a.mp4?xsig=1");
}

TEST(SignedLink, CidrMatching) {
  EXPECT_TRUE(ip_in_cidr("192.168.1.7", "192.168.1.0/24"));
  EXPECT_FALSE(ip_in_cidr("192.168.2.7", "192.168.1.0/24"));
  EXPECT_TRUE(ip_in_cidr("192.168.1.7", "192.168.1.7"));
  EXPECT_TRUE(ip_in_cidr("1.2.3.4", "0.0.0.0/0"));
  EXPECT_TRUE(ip_in_cidr("2001:db8::1", "2001:db8::/32"));
  EXPECT_FALSE(ip_in_cidr("2001:db9::1", "2001:db8::/32"));
  EXPECT_FALSE(ip_in_cidr("1.2.3.4", "1.2.3.0/33"));
  EXPECT_FALSE(ip_in_cidr("garbage", "1.2.3.0/24"));
  EXPECT_FALSE(ip_in_cidr("1.2.3.4", "nonsense/8"));
}

TEST(SigningKeys, ParsesHexAndBase64urlWithComments) {
  const std::string hex64(64, 'f');
  const auto b64 = base64url(std::vector<std::uint8_t>(33, 7));
  auto parsed = parse_signing_keys("# keys\n\nk1 " + hex64 + "\r\nk2\t" + b64 + "  # old\n");
  ASSERT_EQ(parsed.error, "");
  ASSERT_EQ(parsed.keys.size(), 2u);
  EXPECT_EQ(parsed.keys[0].kid, "k1");
  EXPECT_EQ(parsed.keys[0].secret, std::string(32, '\xff'));
  EXPECT_EQ(parsed.keys[1].secret, std::string(33, '\x07'));
}

TEST(SigningKeys, RefusesWhatIsWrongWithTheLine) {
  EXPECT_NE(parse_signing_keys("k1 " + std::string(62, 'f')).error.find("at least 32"), std::string::npos);
  EXPECT_NE(parse_signing_keys("k1").error.find("line 1"), std::string::npos);
  EXPECT_NE(parse_signing_keys("k1 %%%%").error.find("base64url or hex"), std::string::npos);
  EXPECT_NE(parse_signing_keys("k/1 " + std::string(64, 'f')).error.find("key id"), std::string::npos);
  const auto twice = "k1 " + std::string(64, 'f') + "\nk1 " + std::string(64, 'e');
  EXPECT_NE(parse_signing_keys(twice).error.find("line 2"), std::string::npos);
  EXPECT_NE(parse_signing_keys("# nothing\n").error.find("no keys"), std::string::npos);
}

TEST(Base64url, RoundTripsEveryLength) {
  for (std::size_t n = 0; n < 40; ++n) {
    std::vector<std::uint8_t> bytes(n);
    for (std::size_t i = 0; i < n; ++i) bytes[i] = static_cast<std::uint8_t>(i * 37 + 251);
    const auto text = base64url(bytes);
    EXPECT_EQ(text.find_first_of("+/="), std::string::npos);
    auto back = base64url_decode(text);
    ASSERT_TRUE(back) << n;
    EXPECT_EQ(*back, std::string(bytes.begin(), bytes.end()));
  }
  EXPECT_FALSE(base64url_decode("a"));
  EXPECT_FALSE(base64url_decode("ab+c"));
  EXPECT_FALSE(base64url_decode("ab=="));
}

}  // namespace
}  // namespace mediagate::http
