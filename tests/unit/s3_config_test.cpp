// Credentials chain, endpoint and location parsing, and S3 error mapping.
#include <gtest/gtest.h>

#include <cstdio>
#include <filesystem>
#include <fstream>
#include <map>

#include "http/http_date.hpp"
#include "s3/credential_providers.hpp"
#include "s3/credentials.hpp"
#include "s3/s3_client.hpp"
#include "s3/s3_error.hpp"
#include "storage/s3_storage.hpp"

namespace {

using namespace mediagate;

s3::env_lookup fake_env(std::map<std::string, std::string> vars) {
  return [vars](std::string_view name) -> std::optional<std::string> {
    auto it = vars.find(std::string(name));
    if (it == vars.end()) return std::nullopt;
    return it->second;
  };
}

class temp_home : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = std::filesystem::temp_directory_path() /
           ("mg-home-" + std::to_string(::getpid()) + "-" +
            ::testing::UnitTest::GetInstance()->current_test_info()->name());
    std::filesystem::create_directories(dir_ / ".aws");
  }
  void TearDown() override { std::filesystem::remove_all(dir_); }
  void write(const std::string& name, const std::string& text) {
    std::ofstream(dir_ / ".aws" / name) << text;
  }
  std::filesystem::path dir_;
};

TEST(ini, parses_sections_comments_and_whitespace) {
  auto ini = s3::parse_ini(
      "# comment\n[default]\naws_access_key_id = AK \r\n; other\n[profile x]\nregion=eu-west-1\nbad line\n");
  EXPECT_EQ(ini["default"]["aws_access_key_id"], "AK");
  EXPECT_EQ(ini["profile x"]["region"], "eu-west-1");
  EXPECT_EQ(ini.size(), 2u);
}

TEST_F(temp_home, explicit_options_win_over_environment) {
  auto r = s3::resolve_static_credentials(
      {"OPT", "OPTSECRET", ""}, fake_env({{"AWS_ACCESS_KEY_ID", "ENV"}, {"AWS_SECRET_ACCESS_KEY", "S"}}));
  ASSERT_TRUE(r);
  EXPECT_EQ(r->creds.access_key_id, "OPT");
  EXPECT_EQ(r->source, "options");
}

TEST_F(temp_home, environment_with_session_token) {
  auto r = s3::resolve_static_credentials({}, fake_env({{"AWS_ACCESS_KEY_ID", "ENV"},
                                                        {"AWS_SECRET_ACCESS_KEY", "S"},
                                                        {"AWS_SESSION_TOKEN", "T"},
                                                        {"HOME", dir_.string()}}));
  ASSERT_TRUE(r);
  EXPECT_EQ(r->creds.access_key_id, "ENV");
  EXPECT_EQ(r->creds.session_token, "T");
  EXPECT_EQ(r->source, "environment");
}

TEST_F(temp_home, half_an_environment_falls_through_to_the_files) {
  write("credentials", "[default]\naws_access_key_id=FILEKEY\naws_secret_access_key=FILESECRET\n");
  auto r =
      s3::resolve_static_credentials({}, fake_env({{"AWS_ACCESS_KEY_ID", "ENV"}, {"HOME", dir_.string()}}));
  ASSERT_TRUE(r);
  EXPECT_EQ(r->creds.access_key_id, "FILEKEY");
}

TEST_F(temp_home, profile_from_credentials_and_region_from_config) {
  write("credentials",
        "[default]\naws_access_key_id=D\naws_secret_access_key=DS\n[media]\naws_access_key_id=M\n"
        "aws_secret_access_key=MS\naws_session_token=MT\n");
  write("config", "[default]\nregion=us-east-2\n[profile media]\nregion=eu-central-1\n");
  auto r = s3::resolve_static_credentials({}, fake_env({{"HOME", dir_.string()}, {"AWS_PROFILE", "media"}}));
  ASSERT_TRUE(r);
  EXPECT_EQ(r->creds.access_key_id, "M");
  EXPECT_EQ(r->creds.session_token, "MT");
  EXPECT_EQ(r->region, "eu-central-1");
}

TEST_F(temp_home, keys_in_the_config_file_count_too) {
  write("config", "[profile p]\naws_access_key_id=C\naws_secret_access_key=CS\n");
  auto r = s3::resolve_static_credentials({}, fake_env({{"HOME", dir_.string()}, {"AWS_PROFILE", "p"}}));
  ASSERT_TRUE(r);
  EXPECT_EQ(r->creds.access_key_id, "C");
}

TEST_F(temp_home, nothing_found) {
  EXPECT_FALSE(s3::resolve_static_credentials({}, fake_env({{"HOME", dir_.string()}})));
  EXPECT_FALSE(s3::resolve_static_credentials({"ONLYKEY", "", ""}, fake_env({{"HOME", dir_.string()}})));
}

TEST(endpoint, parses_schemes_ports_and_ipv6) {
  auto a = s3::parse_endpoint("http://127.0.0.1:9000");
  ASSERT_TRUE(a);
  EXPECT_FALSE(a->tls);
  EXPECT_EQ(a->host, "127.0.0.1");
  EXPECT_EQ(a->port, 9000);
  EXPECT_EQ(a->host_header(), "127.0.0.1:9000");
  auto b = s3::parse_endpoint("https://s3.eu-west-1.amazonaws.com/");
  ASSERT_TRUE(b);
  EXPECT_TRUE(b->tls);
  EXPECT_EQ(b->port, 443);
  EXPECT_EQ(b->host_header(), "s3.eu-west-1.amazonaws.com");
  auto c = s3::parse_endpoint("http://[::1]:8080");
  ASSERT_TRUE(c);
  EXPECT_EQ(c->host, "::1");
  EXPECT_EQ(c->host_header(), "[::1]:8080");
  for (auto bad :
       {"ftp://x", "http://", "http://h:0", "http://h:70000", "http://h:abc", "http://h/path", "h:80"})
    EXPECT_FALSE(s3::parse_endpoint(bad)) << bad;
}

TEST(endpoint, connect_to_host_port) {
  auto a = s3::parse_host_port("127.0.0.1:7480");
  ASSERT_TRUE(a);
  EXPECT_EQ(a->first, "127.0.0.1");
  EXPECT_EQ(a->second, 7480);
  auto b = s3::parse_host_port("[::1]:443");
  ASSERT_TRUE(b);
  EXPECT_EQ(b->first, "::1");
  EXPECT_EQ(b->second, 443);
  auto c = s3::parse_host_port("gw.internal:8443");
  ASSERT_TRUE(c);
  EXPECT_EQ(c->first, "gw.internal");
  for (auto bad :
       {"", "host", "host:", ":80", "host:0", "host:65536", "host:8x", "::1:80", "[::1]", "[::1]80"})
    EXPECT_FALSE(s3::parse_host_port(bad)) << bad;
}

TEST(location, bucket_and_prefix) {
  auto a = storage::parse_s3_url("s3://media");
  ASSERT_TRUE(a);
  EXPECT_EQ(a->bucket, "media");
  EXPECT_EQ(a->prefix, "");
  auto b = storage::parse_s3_url("s3://media/videos/2024");
  ASSERT_TRUE(b);
  EXPECT_EQ(b->prefix, "videos/2024/");
  EXPECT_FALSE(storage::parse_s3_url("s3://"));
  EXPECT_FALSE(storage::parse_s3_url("http://media"));
}

TEST(s3_errors, xml_body_and_mapping) {
  auto e = s3::parse_s3_error(404,
                              "<?xml version=\"1.0\"?><Error><Code>NoSuchKey</Code><Message>gone</Message>"
                              "<RequestId>r1</RequestId></Error>");
  EXPECT_EQ(e.code, "NoSuchKey");
  EXPECT_EQ(e.request_id, "r1");
  EXPECT_EQ(s3::to_storage_error(e, "b", "k").code, storage::errc::not_found);

  auto sig = s3::parse_s3_error(403, "<Error><Code>SignatureDoesNotMatch</Code></Error>");
  auto mapped = s3::to_storage_error(sig, "b", "k");
  EXPECT_EQ(mapped.code, storage::errc::upstream_rejected);
  EXPECT_NE(mapped.message.find("credentials"), std::string::npos);

  EXPECT_EQ(s3::to_storage_error(s3::parse_s3_error(403, ""), "b", "k").code,
            storage::errc::upstream_rejected);
  // Unsigned requests: a 403 names the bucket policy and the missing-key case, not credentials.
  auto anon = s3::to_storage_error(s3::parse_s3_error(403, ""), "b", "k", true);
  EXPECT_EQ(anon.code, storage::errc::upstream_rejected);
  EXPECT_NE(anon.message.find("anonymous"), std::string::npos) << anon.message;
  EXPECT_NE(anon.message.find("s3:GetObject"), std::string::npos) << anon.message;
  EXPECT_EQ(anon.message.find("credentials"), std::string::npos) << anon.message;
  EXPECT_EQ(s3::to_storage_error(s3::parse_s3_error(404, ""), "b", "k").code, storage::errc::not_found);
  EXPECT_EQ(s3::to_storage_error(s3::parse_s3_error(412, ""), "b", "k").code, storage::errc::changed);
  EXPECT_EQ(s3::to_storage_error(s3::parse_s3_error(503, "not xml"), "b", "k").code,
            storage::errc::upstream_unavailable);
  EXPECT_TRUE(s3::is_retryable(s3::parse_s3_error(503, "<Error><Code>SlowDown</Code></Error>")));
  EXPECT_FALSE(s3::is_retryable(sig));
  EXPECT_EQ(s3::to_storage_error(s3::parse_s3_error(400, "<Error><Code>RequestTimeTooSkewed</Code></Error>"),
                                 "b", "k")
                .code,
            storage::errc::upstream_rejected);
}

TEST(temporary_credentials, imds_document) {
  auto r = s3::parse_imds_credentials(R"({"Code":"Success","AccessKeyId":"ASIA1","SecretAccessKey":"sec",
      "Token":"tok","Expiration":"2026-11-23T22:00:00Z"})");
  auto* t = std::get_if<s3::timed_credentials>(&r);
  ASSERT_TRUE(t);
  EXPECT_EQ(t->creds.access_key_id, "ASIA1");
  EXPECT_EQ(t->creds.session_token, "tok");
  ASSERT_TRUE(t->expires);
  EXPECT_EQ(*t->expires, *http::parse_iso8601_utc("2026-11-23T22:00:00Z"));
  EXPECT_TRUE(std::holds_alternative<std::string>(s3::parse_imds_credentials("not json")));
  EXPECT_TRUE(std::holds_alternative<std::string>(s3::parse_imds_credentials(R"({"Code":"Failed"})")));
}

TEST(temporary_credentials, sts_answer_and_error) {
  auto r = s3::parse_sts_credentials(
      "<AssumeRoleWithWebIdentityResponse xmlns=\"https://sts.amazonaws.com/doc/2011-06-15/\">"
      "<AssumeRoleWithWebIdentityResult><Credentials><AccessKeyId>ASIA2</AccessKeyId><SecretAccessKey>s</"
      "SecretAccessKey>"
      "<SessionToken>t</SessionToken><Expiration>2026-11-23T22:00:00.000Z</Expiration></Credentials>"
      "</AssumeRoleWithWebIdentityResult></AssumeRoleWithWebIdentityResponse>");
  auto* t = std::get_if<s3::timed_credentials>(&r);
  ASSERT_TRUE(t);
  EXPECT_EQ(t->creds.access_key_id, "ASIA2");
  EXPECT_EQ(t->creds.session_token, "t");
  EXPECT_TRUE(t->expires);
  auto e = s3::parse_sts_credentials(
      "<ErrorResponse><Error><Code>InvalidIdentityToken</Code><Message>bad</Message>"
      "</Error></ErrorResponse>");
  ASSERT_TRUE(std::holds_alternative<std::string>(e));
  EXPECT_NE(std::get<std::string>(e).find("InvalidIdentityToken"), std::string::npos);
}

TEST(iso8601, forms) {
  EXPECT_EQ(http::parse_iso8601_utc("1994-11-06T08:49:37Z"), 784111777);
  EXPECT_EQ(http::parse_iso8601_utc("1994-11-06T08:49:37.000Z"), 784111777);
  EXPECT_FALSE(http::parse_iso8601_utc("1994-11-06 08:49:37Z"));
  EXPECT_FALSE(http::parse_iso8601_utc("1994-02-30T08:49:37Z"));
  EXPECT_FALSE(http::parse_iso8601_utc("1994-11-06T08:49:37+01:00"));
}

}  // namespace
