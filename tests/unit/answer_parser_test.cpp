// The S3 client's answer parser: Beast's parsing, with only the kept fields stored.
#include "s3/answer_parser.hpp"

#include <gtest/gtest.h>

#include <boost/asio/buffer.hpp>
#include <boost/beast/http/error.hpp>
#include <string>
#include <string_view>

namespace {

using mediagate::s3::answer_parser;
namespace bhttp = boost::beast::http;

// Feeds `text` to `p` as the client does: what is unconsumed stays in front of the next bytes.
boost::beast::error_code feed(answer_parser& p, std::string_view text, std::size_t step = 0) {
  std::string pending;
  boost::beast::error_code ec;
  std::size_t at = 0;
  while (at < text.size() || !pending.empty()) {
    const std::size_t n = step == 0 ? text.size() - at : std::min(step, text.size() - at);
    pending.append(text.substr(at, n));
    at += n;
    const auto used = p.put(boost::asio::buffer(pending), ec);
    pending.erase(0, used);
    if (ec == bhttp::error::need_more) {
      if (at == text.size()) return ec;
      ec = {};
      continue;
    }
    if (ec || p.is_header_done()) return ec;
  }
  return ec;
}

constexpr std::string_view get_answer =
    "HTTP/1.1 206 Partial Content\r\n"
    "Server: nginx/1.22.1\r\n"
    "Date: Tue, 01 Dec 2026 12:00:00 GMT\r\n"
    "Content-Type: video/mp4\r\n"
    "Content-Length: 10\r\n"
    "Last-Modified: Mon, 30 Nov 2026 10:00:00 GMT\r\n"
    "Connection: keep-alive\r\n"
    "ETag: \"6929b8e0-bebc200\"\r\n"
    "x-amz-request-id: tx000001\r\n"
    "Content-Range: bytes 100-109/200000000\r\n"
    "\r\n"
    "0123456789";

TEST(answer_parser, keeps_the_fields_the_client_reads) {
  answer_parser p;
  ASSERT_FALSE(feed(p, get_answer));
  ASSERT_TRUE(p.is_header_done());
  EXPECT_EQ(p.status(), 206u);
  EXPECT_EQ(p.field("content-range"), "bytes 100-109/200000000");
  EXPECT_EQ(p.field("etag"), "\"6929b8e0-bebc200\"");
  EXPECT_EQ(p.field("last-modified"), "Mon, 30 Nov 2026 10:00:00 GMT");
  EXPECT_EQ(p.field("content-type"), "video/mp4");
  EXPECT_EQ(p.field("Content-Type"), "video/mp4");  // any case
  EXPECT_EQ(p.field("server"), "");                 // not kept
  EXPECT_EQ(p.field("x-amz-request-id"), "");
  ASSERT_TRUE(p.content_length());
  EXPECT_EQ(*p.content_length(), 10u);
  EXPECT_TRUE(p.keep_alive());
  EXPECT_FALSE(p.chunked());
}

TEST(answer_parser, the_same_when_the_head_comes_in_pieces) {
  for (std::size_t step : {1u, 7u, 64u}) {
    answer_parser p;
    ASSERT_FALSE(feed(p, get_answer, step)) << step;
    EXPECT_EQ(p.status(), 206u);
    EXPECT_EQ(p.field("content-range"), "bytes 100-109/200000000") << step;
    EXPECT_EQ(p.field("etag"), "\"6929b8e0-bebc200\"") << step;
  }
}

TEST(answer_parser, an_incomplete_head_needs_more) {
  answer_parser p;
  EXPECT_EQ(feed(p, get_answer.substr(0, 60)), bhttp::error::need_more);
  EXPECT_FALSE(p.is_header_done());
}

TEST(answer_parser, first_of_a_repeated_field_and_absent_ones) {
  answer_parser p;
  ASSERT_FALSE(feed(p,
                    "HTTP/1.1 200 OK\r\nETag: \"a\"\r\nETag: \"b\"\r\nContent-Length: 0\r\n"
                    "Connection: close\r\n\r\n"));
  EXPECT_EQ(p.status(), 200u);
  EXPECT_EQ(p.field("etag"), "\"a\"");
  EXPECT_EQ(p.field("content-range"), "");
  EXPECT_EQ(p.field("last-modified"), "");
  EXPECT_FALSE(p.keep_alive());
  EXPECT_TRUE(p.is_done());
}

TEST(answer_parser, values_longer_than_the_fixed_storage) {
  const std::string type(300, 't');
  const std::string etag = "\"" + std::string(200, 'e') + "\"";
  answer_parser p;
  ASSERT_FALSE(feed(p, "HTTP/1.1 200 OK\r\nETag: " + etag + "\r\nContent-Type: " + type +
                           "\r\nLast-Modified: x\r\nContent-Length: 0\r\n\r\n"));
  EXPECT_EQ(p.field("etag"), etag);
  EXPECT_EQ(p.field("content-type"), type);
  EXPECT_EQ(p.field("last-modified"), "x");
}

TEST(answer_parser, a_chunked_body_lands_in_the_given_buffers) {
  answer_parser p;
  const std::string_view text =
      "HTTP/1.1 500 Internal Server Error\r\nTransfer-Encoding: chunked\r\n\r\n"
      "5\r\n<Erro\r\n3\r\nr/>\r\n0\r\n\r\n";
  boost::beast::error_code ec;
  const auto used = p.put(boost::asio::buffer(text.data(), text.size()), ec);
  ASSERT_FALSE(ec);
  ASSERT_TRUE(p.is_header_done());
  EXPECT_TRUE(p.chunked());
  std::string_view rest = text.substr(used);
  std::string body;
  int full = 0;  // times the parser stopped for more room
  for (int step = 0; step < 100 && !p.is_done(); ++step) {
    char space[4];  // smaller than the first chunk
    p.body_data = space;
    p.body_size = sizeof space;
    rest.remove_prefix(p.put(boost::asio::buffer(rest.data(), rest.size()), ec));
    body.append(space, sizeof space - p.body_size);
    if (ec == bhttp::error::need_buffer) ++full;
    ASSERT_TRUE(!ec || ec == bhttp::error::need_buffer) << ec.message();
  }
  EXPECT_TRUE(p.is_done());
  EXPECT_EQ(body, "<Error/>");
  EXPECT_GT(full, 0);
}

TEST(answer_parser, malformed_heads_are_errors) {
  for (std::string_view bad :
       {"HTTP/1.1 2x6 Partial\r\n\r\n", "HTTP/1.1 200 OK\r\nContent-Length: 1x\r\n\r\n",
        "HTTP/1.1 200 OK\r\nBad Name: v\r\n\r\n", "NOTHTTP 200 OK\r\n\r\n"}) {
    answer_parser p;
    const auto ec = feed(p, bad);
    EXPECT_TRUE(ec && ec != bhttp::error::need_more) << bad;
  }
}

TEST(answer_parser, a_head_over_the_limit_is_an_error) {
  answer_parser p;
  std::string big = "HTTP/1.1 200 OK\r\n";
  for (int i = 0; i < 400; ++i) big += "x-amz-meta-" + std::to_string(i) + ": 0123456789\r\n";
  big += "\r\n";
  EXPECT_EQ(feed(p, big), bhttp::error::header_limit);
}

}  // namespace
