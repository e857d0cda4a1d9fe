#include "s3/sigv4.hpp"

#include <gtest/gtest.h>

#include <chrono>
#include <stdexcept>
#include <string>

#include "common/crypto.hpp"

namespace mediagate::s3 {
namespace {

using namespace std::chrono;

// The credentials and time of the examples in the S3 API Reference, "Signature Calculations for the
// Authorization Header: Transferring Payload in a Single Chunk (AWS Signature Version 4)".
const credentials example_credentials{"AKIAIOSFODNN7EXAMPLE", "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY", ""};
const system_clock::time_point example_time = sys_days{2013y / May / 24};
constexpr std::string_view example_host = "examplebucket.s3.amazonaws.com";

std::string header(const signed_headers& signed_request, std::string_view name) {
  for (const auto& [key, value] : signed_request.headers) {
    if (key == name) return value;
  }
  return "<missing>";
}

std::string authorization(std::string_view signed_header_names, std::string_view signature) {
  return "AWS4-HMAC-SHA256 Credential=AKIAIOSFODNN7EXAMPLE/20130524/us-east-1/s3/aws4_request, "
         "SignedHeaders=" +
         std::string(signed_header_names) + ", Signature=" + std::string(signature);
}

// --- crypto ---------------------------------------------------------------------------------------------

TEST(crypto, sha256_known_digests) {
  EXPECT_EQ(sha256_hex(""), empty_payload_sha256);
  EXPECT_EQ(sha256_hex("abc"), "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
  // The payload of the PUT object example.
  EXPECT_EQ(sha256_hex("Welcome to Amazon S3."),
            "44ce7dd67c959e0d3524ffac1771dfbba87d2b6b4b4e99e42034a8b803f8b072");
}

TEST(crypto, hmac_sha256_rfc4231) {
  // RFC 4231 §4.2 (test case 1) and §4.3 (test case 2).
  EXPECT_EQ(hex(hmac_sha256(std::string(20, '\x0b'), "Hi There")),
            "b0344c61d8db38535ca8afceaf0bf12b881dc200c9833da726e9376c2e32cff7");
  EXPECT_EQ(hex(hmac_sha256(std::string_view("Jefe"), "what do ya want for nothing?")),
            "5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843");
}

TEST(crypto, hmac_sha256_accepts_an_empty_key) {
  EXPECT_EQ(hex(hmac_sha256(std::string_view(), "")),
            "b613679a0814d9ec772f95d778c35fc5ff1697c493715653c6c712144292c5ad");
}

TEST(crypto, hasher_matches_one_shot_and_resets) {
  sha256_hasher hasher;
  hasher.update(std::string_view("Welcome to "));
  hasher.update(std::string_view("Amazon S3."));
  EXPECT_EQ(hex(hasher.finish()), sha256_hex("Welcome to Amazon S3."));
  EXPECT_EQ(hex(hasher.finish()), empty_payload_sha256);
}

TEST(crypto, hex_is_lowercase_two_digits_per_byte) {
  const std::uint8_t bytes[] = {0x00, 0x0f, 0xa0, 0xff};
  EXPECT_EQ(hex(bytes), "000fa0ff");
}

// --- encoding and dates
// -------------------------------------------------------------------------------------

TEST(uri_encode, keeps_only_unreserved_characters) {
  EXPECT_EQ(uri_encode("AZaz09-_.~", false), "AZaz09-_.~");
  EXPECT_EQ(uri_encode("a b+c=d", false), "a%20b%2Bc%3Dd");
  EXPECT_EQ(uri_encode("!*'()$&,;:@?#[]%", false), "%21%2A%27%28%29%24%26%2C%3B%3A%40%3F%23%5B%5D%25");
}

TEST(uri_encode, encodes_utf8_bytes_in_uppercase_hex) {
  EXPECT_EQ(uri_encode("é", false), "%C3%A9");
  EXPECT_EQ(uri_encode("\xff\x80", false), "%FF%80");
}

TEST(uri_encode, slash_kept_only_in_paths) {
  EXPECT_EQ(uri_encode("/bucket/my key+é.mp4", true), "/bucket/my%20key%2B%C3%A9.mp4");
  EXPECT_EQ(uri_encode("a/b", false), "a%2Fb");
  // S3 keys are not normalised: empty and dot segments stay.
  EXPECT_EQ(uri_encode("/b//./../k", true), "/b//./../k");
}

TEST(amz_date, formats_utc_basic_iso8601) {
  EXPECT_EQ(amz_date(example_time), "20130524T000000Z");
  EXPECT_EQ(amz_date(sys_days{2024y / February / 29} + 23h + 59min + 59s + 999ms), "20240229T235959Z");
  EXPECT_EQ(amz_date(system_clock::time_point{}), "19700101T000000Z");
}

TEST(derive_signing_key, matches_aws_documented_example) {
  // "Examples of how to derive a signing key for Signature Version 4" in the AWS General Reference.
  EXPECT_EQ(
      hex(derive_signing_key("wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY", "20120215", "us-east-1", "iam")),
      "f4780e2d9f65fa895f9c67b32ce1baf0b0d8a43505a000a1a9e090d414db404d");
}

// --- the S3 API Reference examples ------------------------------------------------------------------------

// The GetObject with a Range of the S3 API Reference's SigV4 examples.
request_to_sign example_get_with_range() {
  return {.method = "GET",
          .host = std::string(example_host),
          .path = "/test.txt",
          .query = {},
          .headers = {{"Range", "bytes=0-9"}},
          .payload_sha256 = std::string(empty_payload_sha256)};
}

TEST(sign_v4, aws_example_get_object_with_range) {
  const request_to_sign request = example_get_with_range();
  const signed_headers signed_request =
      sign_v4(request, example_credentials, "us-east-1", "s3", example_time);

  EXPECT_EQ(signed_request.canonical_request,
            "GET\n/test.txt\n\n"
            "host:examplebucket.s3.amazonaws.com\nrange:bytes=0-9\n"
            "x-amz-content-sha256:e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855\n"
            "x-amz-date:20130524T000000Z\n\n"
            "host;range;x-amz-content-sha256;x-amz-date\n"
            "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855");
  EXPECT_EQ(signed_request.string_to_sign,
            "AWS4-HMAC-SHA256\n20130524T000000Z\n20130524/us-east-1/s3/aws4_request\n"
            "7344ae5b7ee6c3e7e6b0fe0640412a37625d1fbfff95c48bbb2dc43964946972");
  EXPECT_EQ(header(signed_request, "authorization"),
            authorization("host;range;x-amz-content-sha256;x-amz-date",
                          "f0e8bdb87c964420e857bd35b5d6ed310bd44f0170aba48dd91039c6036bdb41"));
  EXPECT_EQ(header(signed_request, "host"), example_host);
  EXPECT_EQ(header(signed_request, "x-amz-date"), "20130524T000000Z");
  EXPECT_EQ(header(signed_request, "x-amz-content-sha256"), empty_payload_sha256);
  EXPECT_EQ(header(signed_request, "x-amz-security-token"), "<missing>");
  EXPECT_EQ(signed_request.canonical_path, "/test.txt");
  EXPECT_EQ(signed_request.canonical_query, "");
}

// The signer keeps hash states for inputs that begin alike (sigv4.cpp, first_block): signatures after
// requests that share the first 64 bytes of their canonical request or string to sign, or not, in any
// order, are those of the documented example and of hashes computed afresh (EVP, crypto.hpp).
TEST(sign_v4, inputs_that_begin_alike_sign_as_fresh_ones) {
  const request_to_sign example = example_get_with_range();
  request_to_sign same_start = example;  // the canonical request differs from byte 64 on
  same_start.headers = {{"Range", "bytes=0-8"}};
  request_to_sign other = example;
  other.path = "/other.txt";
  const auto key = derive_signing_key(example_credentials.secret_access_key, "20130524", "us-east-1", "s3");
  const std::string documented = "f0e8bdb87c964420e857bd35b5d6ed310bd44f0170aba48dd91039c6036bdb41";
  const std::pair<const request_to_sign*, int> order[] = {{&example, 0},    {&example, 0}, {&same_start, 0},
                                                          {&example, 0},    {&other, 0},   {&example, 1},
                                                          {&same_start, 1}, {&example, 0}};
  signing_key_cache cache;
  for (const auto& [request, later] : order) {
    for (const bool cached : {false, true}) {
      const auto time = example_time + std::chrono::seconds(later);
      const auto s = cached ? sign_v4(*request, example_credentials, "us-east-1", "s3", time, cache)
                            : sign_v4(*request, example_credentials, "us-east-1", "s3", time);
      const std::string_view to_sign = s.string_to_sign;
      EXPECT_EQ(to_sign.substr(to_sign.rfind('\n') + 1), sha256_hex(s.canonical_request));
      const std::string signature = hex(hmac_sha256(key, s.string_to_sign));
      EXPECT_NE(header(s, "authorization").find("Signature=" + signature), std::string::npos);
      if (request == &example && later == 0) {
        EXPECT_EQ(signature, documented);
      }
    }
  }
}

TEST(sign_v4, aws_example_put_object) {
  request_to_sign request{
      .method = "PUT",
      .host = std::string(example_host),
      .path = "/test$file.text",
      .query = {},
      .headers = {{"Date", "Fri, 24 May 2013 00:00:00 GMT"}, {"x-amz-storage-class", "REDUCED_REDUNDANCY"}},
      .payload_sha256 = sha256_hex("Welcome to Amazon S3.")};
  const signed_headers signed_request =
      sign_v4(request, example_credentials, "us-east-1", "s3", example_time);
  EXPECT_EQ(signed_request.canonical_path, "/test%24file.text");
  EXPECT_EQ(header(signed_request, "authorization"),
            authorization("date;host;x-amz-content-sha256;x-amz-date;x-amz-storage-class",
                          "98ad721746da40c64f1a55b78f14c238d841ea1380cd77a1b5971af0ece108bd"));
}

TEST(sign_v4, aws_example_get_bucket_lifecycle) {
  request_to_sign request{.method = "GET",
                          .host = std::string(example_host),
                          .path = "/",
                          .query = {{"lifecycle", ""}},
                          .headers = {},
                          .payload_sha256 = ""};
  const signed_headers signed_request =
      sign_v4(request, example_credentials, "us-east-1", "s3", example_time);
  EXPECT_EQ(signed_request.canonical_query, "lifecycle=");
  EXPECT_EQ(header(signed_request, "authorization"),
            authorization("host;x-amz-content-sha256;x-amz-date",
                          "fea454ca298b7da1c68078a5d1bdbfbbe0d65c699e0f91ac7a200a0136783543"));
}

TEST(sign_v4, aws_example_list_objects) {
  request_to_sign request{.method = "GET",
                          .host = std::string(example_host),
                          .path = "/",
                          .query = {{"prefix", "J"}, {"max-keys", "2"}},
                          .headers = {},
                          .payload_sha256 = std::string(empty_payload_sha256)};
  const signed_headers signed_request =
      sign_v4(request, example_credentials, "us-east-1", "s3", example_time);
  EXPECT_EQ(signed_request.canonical_query, "max-keys=2&prefix=J");
  EXPECT_EQ(header(signed_request, "authorization"),
            authorization("host;x-amz-content-sha256;x-amz-date",
                          "34b48302e7b5fa45bde8084f4b7868a86f0a534bc59db6670ed5711ef69dc6f7"));
}

// --- canonical form details ------------------------------------------------------------------------------

request_to_sign simple_get(std::string path) {
  return {.method = "GET",
          .host = "127.0.0.1:9000",
          .path = std::move(path),
          .query = {},
          .headers = {},
          .payload_sha256 = std::string(unsigned_payload)};
}

TEST(sign_v4, encodes_the_path_once) {
  const auto signed_request =
      sign_v4(simple_get("/bucket/my key+é.mp4"), example_credentials, "us-east-1", "s3", example_time);
  EXPECT_EQ(signed_request.canonical_path, "/bucket/my%20key%2B%C3%A9.mp4");
  EXPECT_EQ(signed_request.canonical_request.substr(0, 34), "GET\n/bucket/my%20key%2B%C3%A9.mp4\n");
  // A key that looks encoded already is encoded again: '%' is data in an S3 key.
  EXPECT_EQ(
      sign_v4(simple_get("/b/100%25"), example_credentials, "us-east-1", "s3", example_time).canonical_path,
      "/b/100%2525");
}

TEST(sign_v4, empty_path_is_root) {
  EXPECT_EQ(sign_v4(simple_get(""), example_credentials, "us-east-1", "s3", example_time).canonical_path,
            "/");
}

TEST(sign_v4, query_is_encoded_then_sorted_by_name_then_value) {
  request_to_sign request = simple_get("/bucket");
  request.query = {{"prefix", "a b/c"}, {"list-type", "2"}, {"delimiter", "/"}, {"x", "2"},
                   {"x", "10"},         {"uploads", ""},    {"é", "+"}};
  const auto signed_request = sign_v4(request, example_credentials, "us-east-1", "s3", example_time);
  EXPECT_EQ(signed_request.canonical_query,
            "%C3%A9=%2B&delimiter=%2F&list-type=2&prefix=a%20b%2Fc&uploads=&x=10&x=2");
}

TEST(sign_v4, headers_are_lowercased_trimmed_sorted_and_merged) {
  request_to_sign request = simple_get("/b/k");
  request.headers = {{"X-Amz-Meta-B", "  two   words \t here "},
                     {"If-Match", "\"etag\""},
                     {"x-amz-meta-a", "first"},
                     {"X-AMZ-META-A", "second"}};
  const auto signed_request = sign_v4(request, example_credentials, "us-east-1", "s3", example_time);
  EXPECT_EQ(signed_request.canonical_request,
            "GET\n/b/k\n\n"
            "host:127.0.0.1:9000\nif-match:\"etag\"\n"
            "x-amz-content-sha256:UNSIGNED-PAYLOAD\nx-amz-date:20130524T000000Z\n"
            "x-amz-meta-a:first,second\nx-amz-meta-b:two words here\n\n"
            "host;if-match;x-amz-content-sha256;x-amz-date;x-amz-meta-a;x-amz-meta-b\n"
            "UNSIGNED-PAYLOAD");
}

// Values longer than a word (the signer scans them 8 bytes per step before looking at each byte): spaces
// and controls at every position are still found, trimmed or refused.
TEST(sign_v4, long_values_are_trimmed_and_checked_at_every_position) {
  const std::string word(37, 'w');
  for (std::size_t at = 0; at <= word.size(); ++at) {
    request_to_sign request = simple_get("/b/k");
    const std::string spaced = word.substr(0, at) + " \t " + word.substr(at);
    request.headers = {{"x-amz-meta-a", spaced}, {"x-amz-meta-b", word}};
    const auto signed_request = sign_v4(request, example_credentials, "us-east-1", "s3", example_time);
    const std::string trimmed =
        at == 0 || at == word.size() ? word : word.substr(0, at) + " " + word.substr(at);
    EXPECT_NE(signed_request.canonical_request.find("\nx-amz-meta-a:" + trimmed + "\nx-amz-meta-b:" + word +
                                                    "\n\n"),
              std::string::npos)
        << at;
    for (const char bad : {'\r', '\n', '\0'}) {
      request.headers = {{"x-amz-meta-a", word.substr(0, at) + bad + word.substr(at)}};
      EXPECT_THROW(sign_v4(request, example_credentials, "us-east-1", "s3", example_time),
                   std::invalid_argument)
          << at << " " << int(bad);
    }
  }
}

TEST(sign_v4, session_token_is_sent_and_signed) {
  const credentials temporary{"ASIAEXAMPLE", "secret", "token/with+base64=="};
  const auto signed_request = sign_v4(simple_get("/b/k"), temporary, "eu-west-1", "s3", example_time);
  EXPECT_EQ(header(signed_request, "x-amz-security-token"), "token/with+base64==");
  EXPECT_NE(signed_request.canonical_request.find("\nx-amz-security-token:token/with+base64==\n\n"),
            std::string::npos);
  EXPECT_NE(header(signed_request, "authorization")
                .find("Credential=ASIAEXAMPLE/20130524/eu-west-1/s3/aws4_request, "
                      "SignedHeaders=host;x-amz-content-sha256;x-amz-date;x-amz-security-token, "),
            std::string::npos);
  // The signer's own headers come in a fixed order, authorization last.
  ASSERT_EQ(signed_request.headers.size(), 5u);
  EXPECT_EQ(signed_request.headers[0].first, "host");
  EXPECT_EQ(signed_request.headers[4].first, "authorization");
}

TEST(sign_v4, empty_payload_hash_means_empty_body) {
  request_to_sign request = simple_get("/b/k");
  request.payload_sha256 = "";
  EXPECT_EQ(
      header(sign_v4(request, example_credentials, "us-east-1", "s3", example_time), "x-amz-content-sha256"),
      empty_payload_sha256);
}

TEST(sign_v4, rejects_headers_the_signer_owns_or_that_would_split) {
  for (const char* name :
       {"Host", "x-amz-date", "X-Amz-Content-SHA256", "x-amz-security-token", "Authorization"}) {
    request_to_sign request = simple_get("/b/k");
    request.headers = {{name, "x"}};
    EXPECT_THROW(sign_v4(request, example_credentials, "us-east-1", "s3", example_time),
                 std::invalid_argument)
        << name;
  }
  request_to_sign request = simple_get("/b/k");
  request.headers = {{"x-amz-meta-a", "a\r\nx-injected: 1"}};
  EXPECT_THROW(sign_v4(request, example_credentials, "us-east-1", "s3", example_time), std::invalid_argument);
  request.headers = {{"bad name", "x"}};
  EXPECT_THROW(sign_v4(request, example_credentials, "us-east-1", "s3", example_time), std::invalid_argument);
}

TEST(sign_v4, signature_depends_on_the_clock_only_through_the_timestamp) {
  const auto a = sign_v4(simple_get("/b/k"), example_credentials, "us-east-1", "s3", example_time + 300ms);
  const auto b = sign_v4(simple_get("/b/k"), example_credentials, "us-east-1", "s3", example_time);
  const auto c = sign_v4(simple_get("/b/k"), example_credentials, "us-east-1", "s3", example_time + 1s);
  EXPECT_EQ(header(a, "authorization"), header(b, "authorization"));
  EXPECT_NE(header(b, "authorization"), header(c, "authorization"));
}

// --- signing key cache -----------------------------------------------------------------------------------

TEST(signing_key_cache, returns_the_derived_key_and_reuses_it) {
  signing_key_cache cache;
  const auto expected = derive_signing_key("secret", "20130524", "us-east-1", "s3");
  EXPECT_EQ(cache.get("secret", "20130524", "us-east-1", "s3"), expected);
  EXPECT_EQ(cache.get("secret", "20130524", "us-east-1", "s3"), expected);
  EXPECT_EQ(cache.size(), 1u);
  EXPECT_NE(cache.get("other", "20130524", "us-east-1", "s3"), expected);
  EXPECT_NE(cache.get("secret", "20130524", "eu-west-1", "s3"), expected);
  EXPECT_EQ(cache.size(), 3u);
}

TEST(signing_key_cache, a_new_day_replaces_the_old_key) {
  signing_key_cache cache;
  cache.get("secret", "20130524", "us-east-1", "s3");
  EXPECT_EQ(cache.get("secret", "20130525", "us-east-1", "s3"),
            derive_signing_key("secret", "20130525", "us-east-1", "s3"));
  EXPECT_EQ(cache.size(), 1u);
}

TEST(signing_key_cache, stays_small) {
  signing_key_cache cache;
  for (int i = 0; i < 100; ++i) cache.get("secret" + std::to_string(i), "20130524", "us-east-1", "s3");
  EXPECT_LE(cache.size(), 8u);
}

TEST(signing_key_cache, signing_with_the_cache_gives_the_same_headers) {
  signing_key_cache cache;
  for (int day = 0; day < 3; ++day) {
    const auto now = example_time + days{day} + 5h;
    const auto plain = sign_v4(simple_get("/b/k"), example_credentials, "us-east-1", "s3", now);
    const auto cached = sign_v4(simple_get("/b/k"), example_credentials, "us-east-1", "s3", now, cache);
    EXPECT_EQ(plain.headers, cached.headers);
  }
}

// --- anonymous requests -----------------------------------------------------------------------------------

TEST(unsigned_request, same_path_and_query_as_a_signed_request_and_only_the_host_header) {
  request_to_sign request;
  request.method = "GET";
  request.host = "127.0.0.1:7480";
  request.path = "/bucket/my key+é.mp4";
  request.query = {{"prefix", "a b/c"}, {"list-type", "2"}, {"é", "+"}};
  request.headers = {{"range", "bytes=0-1"}};
  const auto plain = unsigned_request(request);
  const auto signed_request = sign_v4(request, credentials{"AKID", "secret", ""}, "us-east-1", "s3",
                                      std::chrono::system_clock::time_point{});
  EXPECT_EQ(plain.canonical_path, signed_request.canonical_path);
  EXPECT_EQ(plain.canonical_query, signed_request.canonical_query);
  ASSERT_EQ(plain.headers.size(), 1u);
  EXPECT_EQ(plain.headers[0], (std::pair<std::string, std::string>{"host", "127.0.0.1:7480"}));
  EXPECT_TRUE(plain.canonical_request.empty());
  EXPECT_TRUE(plain.string_to_sign.empty());
}

TEST(unsigned_request, empty_path_is_root) {
  request_to_sign request;
  request.method = "HEAD";
  request.host = "s3.example";
  EXPECT_EQ(unsigned_request(request).canonical_path, "/");
}

// --- signing into reused strings (the client's hot path) ---------------------------------------------------

request_view view_of(const request_to_sign& r) {
  return {r.method, r.host, r.path, r.query, r.headers, r.payload_sha256};
}

// The signature recomputed from the string to sign with the plain HMAC and a freshly derived key, so a
// signer that keeps keyed state between calls is checked against one that keeps none.
std::string expected_signature(const signed_headers& s, const credentials& c, std::string_view date,
                               std::string_view region) {
  return hex(hmac_sha256(derive_signing_key(c.secret_access_key, date, region, "s3"), s.string_to_sign));
}

TEST(sign_v4_into, reused_output_matches_a_fresh_signature_whatever_came_before) {
  // Requests of different shapes one after another into one output: fewer and more headers than the call
  // before, a session token present then absent, more headers than the signer keeps on its stack, a query,
  // an anonymous request in between, and keys that change (region, secret, day) and come back.
  std::vector<request_to_sign> requests;
  requests.push_back(simple_get("/bucket/a"));
  auto ranged = simple_get("/bucket/some/longer key é.mp4");
  ranged.headers = {{"range", "bytes=1000000-1065535"}, {"if-match", "\"0123456789abcdef0123456789abcdef\""}};
  requests.push_back(ranged);
  auto many = simple_get("/bucket/many");
  for (int i = 0; i < 20; ++i)
    many.headers.emplace_back("X-Meta-" + std::to_string(19 - i), " v  " + std::to_string(i));
  many.headers.emplace_back("x-meta-3", "again");
  requests.push_back(many);
  auto listing = simple_get("/bucket");
  listing.query = {{"list-type", "2"}, {"prefix", "a b/"}};
  requests.push_back(listing);
  const std::vector<credentials> creds = {example_credentials,
                                          {"AKID2", "other secret", "token/with+base64=="}};
  const std::vector<std::string> regions = {"us-east-1", "eu-west-1"};

  signing_key_cache cache;
  signed_headers reused;
  int signed_count = 0;
  for (int round = 0; round < 3; ++round)
    for (const auto& request : requests)
      for (const auto& c : creds)
        for (const auto& region : regions) {
          const auto now = example_time + days{round % 2} + hours{round};
          if ((signed_count++ % 5) == 4) {  // an anonymous one in between, into the same output
            unsigned_request(view_of(request), reused);
            const auto fresh = unsigned_request(request);
            EXPECT_EQ(reused.headers, fresh.headers);
            EXPECT_EQ(reused.canonical_path, fresh.canonical_path);
            EXPECT_EQ(reused.canonical_query, fresh.canonical_query);
            EXPECT_TRUE(reused.canonical_request.empty());
          }
          sign_v4(view_of(request), c, region, "s3", now, cache, reused);
          const auto fresh = sign_v4(request, c, region, "s3", now);
          EXPECT_EQ(reused.headers, fresh.headers);
          EXPECT_EQ(reused.canonical_path, fresh.canonical_path);
          EXPECT_EQ(reused.canonical_query, fresh.canonical_query);
          EXPECT_EQ(reused.canonical_request, fresh.canonical_request);
          EXPECT_EQ(reused.string_to_sign, fresh.string_to_sign);
          const auto auth = header(reused, "authorization");
          EXPECT_TRUE(auth.ends_with("Signature=" +
                                     expected_signature(reused, c, amz_date(now).substr(0, 8), region)))
              << auth;
        }
}

TEST(sign_v4_into, many_headers_are_sorted_and_merged_as_with_few) {
  auto request = simple_get("/b/k");
  for (int i = 0; i < 14; ++i)
    request.headers.emplace_back("x-amz-meta-" + std::string(1, char('n' - i)), "v");
  request.headers.emplace_back("X-Amz-Meta-N", "second");
  signing_key_cache cache;
  signed_headers out;
  sign_v4(view_of(request), example_credentials, "us-east-1", "s3", example_time, cache, out);
  const auto at = out.canonical_request.find("x-amz-meta-a:v\nx-amz-meta-b:v\n");
  EXPECT_NE(at, std::string::npos) << out.canonical_request;
  EXPECT_NE(out.canonical_request.find("\nx-amz-meta-n:v,second\n"), std::string::npos)
      << out.canonical_request;
  EXPECT_NE(header(out, "authorization").find("x-amz-meta-m;x-amz-meta-n, Signature="), std::string::npos);
  EXPECT_NE(header(out, "authorization").find("x-amz-date;x-amz-meta-a;x-amz-meta-b;"), std::string::npos);
}

TEST(sign_v4_into, rejects_what_sign_v4_rejects) {
  auto request = simple_get("/b/k");
  request.headers = {{"range", "bytes=0-1\r\nx-evil: 1"}};
  signing_key_cache cache;
  signed_headers out;
  EXPECT_THROW(sign_v4(view_of(request), example_credentials, "us-east-1", "s3", example_time, cache, out),
               std::invalid_argument);
  request.headers = {{"Authorization", "x"}};
  EXPECT_THROW(sign_v4(view_of(request), example_credentials, "us-east-1", "s3", example_time, cache, out),
               std::invalid_argument);
}

// --- reads whose signature is reused ----------------------------------------------------------------------

TEST(read_may_leave_unsigned, range_and_the_preconditions_in_any_case) {
  for (const char* name :
       {"range", "Range", "if-match", "If-None-Match", "IF-MODIFIED-SINCE", "if-unmodified-since"})
    EXPECT_TRUE(read_may_leave_unsigned(name)) << name;
  for (const char* name : {"host", "x-amz-date", "x-amz-security-token", "content-type", "if-range", "ranges",
                           "rang", "x-amz-checksum-mode", ""})
    EXPECT_FALSE(read_may_leave_unsigned(name)) << name;
}

// Signs a read without headers of its own into `memo`, as the S3 client does on a miss.
const signed_headers& remember_read(read_signatures& memo, std::string_view method, const std::string& path,
                                    const query_list& query, system_clock::time_point t,
                                    const credentials& creds = example_credentials) {
  auto& out = memo.claim();
  request_to_sign r = simple_get(path);
  r.method = std::string(method);
  r.query = query;
  out = sign_v4(r, creds, "us-east-1", "s3", t);
  memo.remember(method, path, query, t, creds);
  return out;
}

TEST(read_signatures, found_only_for_the_same_inputs_within_the_same_second) {
  read_signatures memo;
  const query_list none;
  EXPECT_EQ(memo.find("GET", "/b/k", none, example_time, example_credentials), nullptr);
  const auto& kept = remember_read(memo, "GET", "/b/k", none, example_time + 200ms);
  EXPECT_EQ(memo.find("GET", "/b/k", none, example_time, example_credentials), &kept);
  EXPECT_EQ(memo.find("GET", "/b/k", none, example_time + 999ms, example_credentials), &kept);
  EXPECT_EQ(memo.find("GET", "/b/k", none, example_time + 1s, example_credentials), nullptr);
  EXPECT_EQ(memo.find("GET", "/b/k", none, example_time - 1ms, example_credentials), nullptr);
  EXPECT_EQ(memo.find("HEAD", "/b/k", none, example_time, example_credentials), nullptr);
  EXPECT_EQ(memo.find("GET", "/b/k2", none, example_time, example_credentials), nullptr);
  EXPECT_EQ(memo.find("GET", "/b/", none, example_time, example_credentials), nullptr);
  const query_list version{{"versionId", "3"}};
  EXPECT_EQ(memo.find("GET", "/b/k", version, example_time, example_credentials), nullptr);
  credentials other = example_credentials;
  other.session_token = "token";
  EXPECT_EQ(memo.find("GET", "/b/k", none, example_time, other), nullptr);
  other = example_credentials;
  other.secret_access_key += "x";
  EXPECT_EQ(memo.find("GET", "/b/k", none, example_time, other), nullptr);
  other = example_credentials;
  other.access_key_id = "AKIDOTHER";
  EXPECT_EQ(memo.find("GET", "/b/k", none, example_time, other), nullptr);
  // What was found is what was signed for those inputs.
  EXPECT_EQ(header(kept, "authorization"),
            header(sign_v4(simple_get("/b/k"), example_credentials, "us-east-1", "s3", example_time),
                   "authorization"));
}

TEST(read_signatures, keeps_the_last_few_and_forgets_the_oldest) {
  read_signatures memo;
  const query_list none;
  const auto key = [](std::size_t i) { return "/b/k" + std::to_string(i); };
  for (std::size_t i = 0; i < read_signatures::capacity; ++i)
    remember_read(memo, "GET", key(i), none, example_time);
  for (std::size_t i = 0; i < read_signatures::capacity; ++i) {
    const auto* found = memo.find("GET", key(i), none, example_time, example_credentials);
    ASSERT_NE(found, nullptr) << i;
    EXPECT_NE(header(*found, "authorization").find("Signature="), std::string::npos);
  }
  remember_read(memo, "GET", key(read_signatures::capacity), none, example_time);
  EXPECT_EQ(memo.find("GET", key(0), none, example_time, example_credentials), nullptr);  // the oldest went
  for (std::size_t i = 1; i <= read_signatures::capacity; ++i)
    EXPECT_NE(memo.find("GET", key(i), none, example_time, example_credentials), nullptr) << i;
  // A claimed entry is forgotten until remembered: a signer that threw leaves nothing to reuse.
  memo.claim();
  EXPECT_EQ(memo.find("GET", key(1), none, example_time, example_credentials), nullptr);
  EXPECT_NE(memo.find("GET", key(2), none, example_time, example_credentials), nullptr);
  // Each kept signature is its own object's.
  EXPECT_NE(header(*memo.find("GET", key(2), none, example_time, example_credentials), "authorization"),
            header(*memo.find("GET", key(3), none, example_time, example_credentials), "authorization"));
}

// What makes the reuse sound: a read without signed headers of its own signs the same within a second.
TEST(read_signatures, a_read_without_signed_headers_signs_alike_within_a_second) {
  const auto at = [](system_clock::time_point t) {
    return header(sign_v4(simple_get("/b/k"), example_credentials, "us-east-1", "s3", t), "authorization");
  };
  EXPECT_EQ(at(example_time), at(example_time + 999ms));
  EXPECT_NE(at(example_time), at(example_time + 1s));
}

}  // namespace
}  // namespace mediagate::s3
