// The streaming multipart/form-data parser: the same events whatever the chunking of the body.
#include "server/api_form_data.hpp"

#include <gtest/gtest.h>

#include <random>

namespace mediagate::server {
namespace {

struct parsed {
  std::vector<form_part_header> headers;
  std::vector<std::string> bodies;
  bool ok = false;
  bool done = false;
  std::string error;
};

// Feeds `body` in pieces of the given sizes (cycled) and collects the events.
parsed parse(const std::string& boundary, const std::string& body, std::vector<std::size_t> pieces) {
  form_data_parser p(boundary);
  parsed out;
  out.ok = true;
  std::size_t pos = 0, i = 0;
  while (pos < body.size() && out.ok) {
    const auto n = std::min(pieces[i++ % pieces.size()], body.size() - pos);
    out.ok = p.feed(std::string_view(body).substr(pos, n));
    pos += n;
    while (p.has_event()) {
      auto e = p.pop_event();
      if (e.kind == form_event::part_begin) {
        out.headers.push_back(e.header);
        out.bodies.emplace_back();
      } else if (e.kind == form_event::data) {
        out.bodies.back() += e.bytes;
      }
    }
  }
  out.done = p.done();
  out.error = p.error();
  return out;
}

std::string sample_body(const std::string& boundary, const std::string& file) {
  return "preamble to ignore\r\n--" + boundary +
         "\r\nContent-Disposition: form-data; name=\"title\"\r\n\r\nMy \"title\"\r\n--" + boundary +
         "\r\nContent-Disposition: form-data; name=\"file\"; filename=\"a \\\"b\\\".mp4\"\r\n"
         "Content-Type: video/mp4\r\n\r\n" +
         file + "\r\n--" + boundary + "--\r\nepilogue";
}

TEST(form_data, boundary_from_content_type) {
  EXPECT_EQ(form_data_boundary("multipart/form-data; boundary=abc"), "abc");
  EXPECT_EQ(form_data_boundary("Multipart/Form-Data;boundary=\"a b:c\""), "a b:c");
  EXPECT_EQ(form_data_boundary("multipart/form-data; charset=utf-8; boundary=----WebKitFormBoundaryx7"),
            "----WebKitFormBoundaryx7");
  EXPECT_FALSE(form_data_boundary("multipart/form-data"));
  EXPECT_FALSE(form_data_boundary("multipart/mixed; boundary=abc"));
  EXPECT_FALSE(form_data_boundary("multipart/form-data; boundary="));
  EXPECT_FALSE(form_data_boundary("multipart/form-data; boundary=" + std::string(71, 'a')));
}

TEST(form_data, same_events_for_every_chunking) {
  const std::string boundary = "----boundary42";
  // File bytes that contain near-delimiters: CRLF, "--", and the boundary without its leading CRLF.
  std::string file = "\r\n--" + boundary.substr(0, 8) + "\r\n----boundary4\r\nX--" + boundary + "X\r\n-";
  std::mt19937 rng(7);
  for (int i = 0; i < 3000; ++i) file += static_cast<char>(rng() & 0xff);
  const auto body = sample_body(boundary, file);
  for (std::size_t piece : {1u, 2u, 3u, 7u, 16u, 17u, 100u, 4096u, 1u << 20}) {
    auto r = parse(boundary, body, {piece});
    ASSERT_TRUE(r.ok) << piece << ": " << r.error;
    EXPECT_TRUE(r.done) << piece;
    ASSERT_EQ(r.headers.size(), 2u) << piece;
    EXPECT_EQ(r.headers[0].name, "title");
    EXPECT_FALSE(r.headers[0].filename);
    EXPECT_EQ(r.bodies[0], "My \"title\"");
    EXPECT_EQ(r.headers[1].name, "file");
    EXPECT_EQ(r.headers[1].filename, "a \"b\".mp4");
    EXPECT_EQ(r.headers[1].content_type, "video/mp4");
    EXPECT_EQ(r.bodies[1], file) << piece;
  }
  auto irregular = parse(boundary, body, {5, 1, 13, 2, 300});
  ASSERT_TRUE(irregular.ok);
  EXPECT_EQ(irregular.bodies.at(1), file);
}

TEST(form_data, body_starting_with_the_delimiter_and_empty_parts) {
  const std::string body =
      "--b\r\nContent-Disposition: form-data; name=\"f\"; filename=\"\"\r\n\r\n\r\n--b--";
  auto r = parse("b", body, {1});
  ASSERT_TRUE(r.ok) << r.error;
  EXPECT_TRUE(r.done);
  ASSERT_EQ(r.bodies.size(), 1u);
  EXPECT_EQ(r.bodies[0], "");
  EXPECT_EQ(r.headers[0].filename, "");
}

TEST(form_data, malformed_input_fails_and_truncated_input_is_not_done) {
  auto no_disposition = parse("b", "--b\r\nContent-Type: text/plain\r\n\r\nx\r\n--b--", {1000});
  EXPECT_FALSE(no_disposition.ok);
  auto garbage = parse("b", "--bXYZ\r\n", {1000});
  EXPECT_FALSE(garbage.ok);
  auto huge_header = parse("b", "--b\r\nX: " + std::string(20000, 'a'), {1000});
  EXPECT_FALSE(huge_header.ok);
  auto truncated = parse("b", "--b\r\nContent-Disposition: form-data; name=\"f\"\r\n\r\npartial", {3});
  EXPECT_TRUE(truncated.ok);
  EXPECT_FALSE(truncated.done);
}

}  // namespace
}  // namespace mediagate::server
