// The router's /media/ handler in process, against a fake storage: every outcome's status, headers and
// body, and the bytes a media response's segments and readers produce.
#include <gtest/gtest.h>

#include <string>

#include "harness.hpp"
#include "http/http_date.hpp"

namespace mediagate::testing_support {
namespace {

constexpr std::int64_t kModified = 1'700'000'000;

// Bytes whose every offset differs from its neighbours, so a skipped or repeated byte shows.
std::string counter_bytes(std::size_t n) {
  std::string s(n, '\0');
  for (std::size_t i = 0; i < n; ++i) s[i] = static_cast<char>((i * 7 + i / 251) & 0xff);
  return s;
}

class media_handler : public ::testing::Test {
 protected:
  void SetUp() override {
    h.store.put("clip.mp4", object, "", kModified);
    h.config.cache_control = "public, max-age=60";
  }
  std::string etag() const { return h.store.find("clip.mp4")->etag; }

  service_harness h;
  std::string object = counter_bytes(1000);
};

TEST_F(media_handler, whole_object) {
  auto r = h.get("/media/clip.mp4");
  EXPECT_EQ(r.status, 200u);
  EXPECT_EQ(header(r, "Content-Length"), "1000");
  EXPECT_EQ(header(r, "Content-Type"), "video/mp4");
  EXPECT_EQ(header(r, "ETag"), etag());
  EXPECT_EQ(header(r, "Last-Modified"), http::format_http_date(kModified));
  EXPECT_EQ(header(r, "Cache-Control"), "public, max-age=60");
  EXPECT_EQ(header(r, "Accept-Ranges"), "bytes");
  EXPECT_EQ(header(r, "X-Content-Type-Options"), "nosniff");
  EXPECT_EQ(header(r, "Content-Disposition"), std::nullopt);
  EXPECT_EQ(header(r, "Content-Security-Policy"), std::nullopt);
  EXPECT_EQ(header(r, "Access-Control-Allow-Origin"), std::nullopt);
  EXPECT_EQ(header(r, "Content-Range"), std::nullopt);
  ASSERT_NE(r.media, nullptr);
  EXPECT_EQ(r.media->what, "clip.mp4");
  auto body = body_of(r);
  EXPECT_EQ(body.failure.has_value(), false);
  EXPECT_EQ(body.bytes, object);
  EXPECT_EQ(h.store.counters().stats, 1);
}

TEST_F(media_handler, head_has_length_but_no_body) {
  test_request req("HEAD", "/media/clip.mp4");
  auto r = h.handle(req);
  EXPECT_EQ(r.status, 200u);
  EXPECT_EQ(header(r, "Content-Length"), "1000");
  EXPECT_EQ(r.media, nullptr);
  EXPECT_EQ(r.body, "");
  EXPECT_EQ(h.store.counters().opens, 0);  // nothing to read for HEAD of a typed object
}

TEST_F(media_handler, single_range) {
  auto r = h.get("/media/clip.mp4", {{"Range", "bytes=100-199"}});
  EXPECT_EQ(r.status, 206u);
  EXPECT_EQ(header(r, "Content-Range"), "bytes 100-199/1000");
  EXPECT_EQ(header(r, "Content-Length"), "100");
  EXPECT_EQ(body_of(r).bytes, object.substr(100, 100));
  ASSERT_EQ(h.store.counters().opened.size(), 1u);
  EXPECT_EQ(h.store.counters().opened[0], (http::byte_range{100, 199}));
}

TEST_F(media_handler, suffix_range) {
  auto r = h.get("/media/clip.mp4", {{"Range", "bytes=-10"}});
  EXPECT_EQ(r.status, 206u);
  EXPECT_EQ(header(r, "Content-Range"), "bytes 990-999/1000");
  EXPECT_EQ(body_of(r).bytes, object.substr(990));
}

TEST_F(media_handler, unsatisfiable_range_is_416_with_content_range) {
  auto r = h.get("/media/clip.mp4", {{"Range", "bytes=1000-"}});
  EXPECT_EQ(r.status, 416u);
  EXPECT_EQ(header(r, "Content-Range"), "bytes */1000");
  const std::string text = "range not satisfiable: the object is 1000 bytes long\n";
  EXPECT_EQ(header(r, "Content-Length"), std::to_string(text.size()));
  EXPECT_EQ(body_of(r).bytes, text);
  EXPECT_EQ(h.store.counters().opens, 0);
}

TEST_F(media_handler, multi_range_is_multipart_with_exact_length) {
  auto r = h.get("/media/clip.mp4", {{"Range", "bytes=0-9, 500-519,990-"}});
  EXPECT_EQ(r.status, 206u);
  const auto type = header(r, "Content-Type");
  ASSERT_TRUE(type.has_value());
  const std::string prefix = "multipart/byteranges; boundary=";
  ASSERT_TRUE(type->starts_with(prefix)) << *type;
  const auto boundary = type->substr(prefix.size());
  EXPECT_TRUE(boundary.starts_with("mediagate-")) << boundary;
  EXPECT_EQ(header(r, "Content-Range"), std::nullopt);

  const auto part = [&](bool first, const char* range) {
    return std::string(first ? "" : "\r\n") + "--" + boundary +
           "\r\nContent-Type: video/mp4\r\nContent-Range: bytes " + range + "/1000\r\n\r\n";
  };
  const std::string expected = part(true, "0-9") + object.substr(0, 10) + part(false, "500-519") +
                               object.substr(500, 20) + part(false, "990-999") + object.substr(990) +
                               "\r\n--" + boundary + "--\r\n";
  EXPECT_EQ(header(r, "Content-Length"), std::to_string(expected.size()));

  // The plan's segments add up to what Content-Length announced.
  ASSERT_NE(r.media, nullptr);
  std::uint64_t sum = 0;
  for (const auto& s : r.media->segments) sum += s.literal.size() + (s.range ? s.range->length() : 0);
  EXPECT_EQ(std::to_string(sum), header(r, "Content-Length"));

  auto body = body_of(r);
  EXPECT_FALSE(body.failure.has_value());
  EXPECT_EQ(body.bytes, expected);
  EXPECT_EQ(h.store.counters().opens, 3);
}

TEST_F(media_handler, failed_open_of_second_range_surfaces_after_first_part) {
  h.store.fail_open_number(2, errc::upstream_unavailable);
  auto r = h.get("/media/clip.mp4", {{"Range", "bytes=0-9,500-519"}});
  EXPECT_EQ(r.status, 206u);  // the first range opened: the answer was honest when it was made
  auto body = body_of(r);
  ASSERT_TRUE(body.failure.has_value());
  EXPECT_EQ(body.failure->code, errc::upstream_unavailable);
  // The first part is complete; the second part's header came, its bytes did not.
  const auto first = body.bytes.find(object.substr(0, 10));
  ASSERT_NE(first, std::string::npos);
  EXPECT_TRUE(body.bytes.ends_with("Content-Range: bytes 500-519/1000\r\n\r\n")) << body.bytes;
  EXPECT_EQ(body.bytes.find(object.substr(500, 20)), std::string::npos);
}

TEST_F(media_handler, reader_breaking_mid_range_is_an_error_not_short_bytes) {
  h.store.break_reads_after("clip.mp4", 300, errc::upstream_timeout);
  auto r = h.get("/media/clip.mp4");
  EXPECT_EQ(r.status, 200u);
  auto body = body_of(r);
  ASSERT_TRUE(body.failure.has_value());
  EXPECT_EQ(body.failure->code, errc::upstream_timeout);
  EXPECT_EQ(body.bytes, object.substr(0, 300));
}

// Segments and readers produce exactly the planned bytes, whatever the reader's and buffer's chunk sizes.
TEST_F(media_handler, planned_bytes_for_many_ranges_and_chunk_sizes) {
  const char* ranges[] = {"bytes=0-0", "bytes=999-999", "bytes=1-998",
                          "bytes=0-",  "bytes=-1",      "bytes=123-456"};
  for (std::size_t chunk : {1u, 3u, 64u, 4096u}) {
    h.store.set_max_chunk(chunk);
    for (const char* range : ranges) {
      auto r = h.get("/media/clip.mp4", {{"Range", range}});
      ASSERT_EQ(r.status, 206u) << range;
      const auto parsed = http::parse_range(std::string_view(range).substr(0), 1000);
      ASSERT_EQ(parsed.ranges.size(), 1u);
      const auto& want = parsed.ranges[0];
      auto body = body_of(r, chunk == 1 ? 5 : 17);
      EXPECT_FALSE(body.failure.has_value()) << range;
      EXPECT_EQ(body.bytes, object.substr(want.first, want.length())) << range << " chunk " << chunk;
      EXPECT_EQ(header(r, "Content-Length"), std::to_string(want.length()));
    }
  }
}

TEST_F(media_handler, not_modified_carries_validators_and_no_body) {
  auto r = h.get("/media/clip.mp4", {{"If-None-Match", "\"other\", " + etag()}});
  EXPECT_EQ(r.status, 304u);
  EXPECT_EQ(header(r, "ETag"), etag());
  EXPECT_EQ(header(r, "Last-Modified"), http::format_http_date(kModified));
  EXPECT_EQ(header(r, "Cache-Control"), "public, max-age=60");
  EXPECT_EQ(header(r, "Content-Length"), std::nullopt);
  EXPECT_EQ(r.media, nullptr);
  EXPECT_EQ(r.body, "");
  EXPECT_EQ(h.store.counters().opens, 0);
}

TEST_F(media_handler, if_modified_since_not_modified) {
  auto r = h.get("/media/clip.mp4", {{"If-Modified-Since", http::format_http_date(kModified)}});
  EXPECT_EQ(r.status, 304u);
  EXPECT_EQ(header(r, "ETag"), etag());
  auto older = h.get("/media/clip.mp4", {{"If-Modified-Since", http::format_http_date(kModified - 1)}});
  EXPECT_EQ(older.status, 200u);
}

TEST_F(media_handler, repeated_if_none_match_lines_form_one_list) {
  auto r = h.get("/media/clip.mp4", {{"If-None-Match", "\"a\""}, {"If-None-Match", etag()}});
  EXPECT_EQ(r.status, 304u);
}

TEST_F(media_handler, if_match_mismatch_is_412) {
  auto r = h.get("/media/clip.mp4", {{"If-Match", "\"nope\""}});
  EXPECT_EQ(r.status, 412u);
  const std::string text = "precondition failed: the object does not match the request's conditions\n";
  EXPECT_EQ(header(r, "Content-Length"), std::to_string(text.size()));
  EXPECT_EQ(body_of(r).bytes, text);
  EXPECT_EQ(header(r, "ETag"), etag());
}

TEST_F(media_handler, if_range_matching_gives_range_and_repeated_if_range_gives_whole_object) {
  auto one = h.get("/media/clip.mp4", {{"Range", "bytes=0-9"}, {"If-Range", etag()}});
  EXPECT_EQ(one.status, 206u);
  auto stale = h.get("/media/clip.mp4", {{"Range", "bytes=0-9"}, {"If-Range", "\"old\""}});
  EXPECT_EQ(stale.status, 200u);
  auto twice = h.get("/media/clip.mp4", {{"Range", "bytes=0-9"}, {"If-Range", etag()}, {"If-Range", etag()}});
  EXPECT_EQ(twice.status, 200u);
  EXPECT_EQ(header(twice, "Content-Length"), "1000");
  EXPECT_EQ(header(twice, "Content-Range"), std::nullopt);
  EXPECT_EQ(body_of(twice).bytes, object);
}

TEST_F(media_handler, repeated_range_is_ignored) {
  auto r = h.get("/media/clip.mp4", {{"Range", "bytes=0-9"}, {"Range", "bytes=10-19"}});
  EXPECT_EQ(r.status, 200u);
  EXPECT_EQ(header(r, "Content-Length"), "1000");
}

TEST_F(media_handler, repeated_if_unmodified_since_uses_the_earliest_date) {
  const auto before = http::format_http_date(kModified - 100);
  const auto after = http::format_http_date(kModified + 100);
  EXPECT_EQ(h.get("/media/clip.mp4", {{"If-Unmodified-Since", after}}).status, 200u);
  EXPECT_EQ(h.get("/media/clip.mp4", {{"If-Unmodified-Since", before}}).status, 412u);
  EXPECT_EQ(
      h.get("/media/clip.mp4", {{"If-Unmodified-Since", after}, {"If-Unmodified-Since", before}}).status,
      412u);
  EXPECT_EQ(
      h.get("/media/clip.mp4", {{"If-Unmodified-Since", before}, {"If-Unmodified-Since", after}}).status,
      412u);
  EXPECT_EQ(h.get("/media/clip.mp4", {{"If-Unmodified-Since", after},
                                      {"If-Unmodified-Since", http::format_http_date(kModified + 5)}})
                .status,
            200u);
  // An unparseable line does not count as a date; the valid one decides.
  EXPECT_EQ(h.get("/media/clip.mp4", {{"If-Unmodified-Since", "yesterday"}, {"If-Unmodified-Since", before}})
                .status,
            412u);
}

struct type_case {
  const char* key;
  const char* stored_type;
  bool attachment;
};

class media_types : public ::testing::TestWithParam<type_case> {};

TEST_P(media_types, html_and_scripts_are_sandboxed_downloads_media_is_inline) {
  service_harness h;
  const auto& c = GetParam();
  h.store.put(c.key, "<html><script>alert(1)</script></html>", c.stored_type);
  auto r = h.get(std::string("/media/") + c.key);
  ASSERT_EQ(r.status, 200u);
  EXPECT_EQ(header(r, "X-Content-Type-Options"), "nosniff");
  if (c.attachment) {
    EXPECT_EQ(header(r, "Content-Disposition"), "attachment");
    EXPECT_EQ(header(r, "Content-Security-Policy"), "sandbox");
  } else {
    EXPECT_EQ(header(r, "Content-Disposition"), std::nullopt);
    EXPECT_EQ(header(r, "Content-Security-Policy"), std::nullopt);
  }
}

INSTANTIATE_TEST_SUITE_P(
    types, media_types,
    ::testing::Values(type_case{"page.html", "", true}, type_case{"app.js", "", true},
                      type_case{"icon.svg", "", true}, type_case{"data.xml", "", true},
                      type_case{"stored-html", "text/html; charset=utf-8", true},
                      type_case{"sniffed-html", "", true},  // no extension, no type: the bytes say HTML
                      type_case{"movie.mp4", "", false}, type_case{"movie.webm", "", false},
                      type_case{"song.mp3", "", false}, type_case{"photo.png", "", false},
                      type_case{"stored-video", "video/mp4", false}, type_case{"subs.vtt", "", false}));

TEST_F(media_handler, cors_origin_is_announced) {
  h.config.cors_origins = {"https://example.test"};
  auto r = h.get("/media/clip.mp4", {{"Origin", "https://example.test"}});
  EXPECT_EQ(header(r, "Access-Control-Allow-Origin"), "https://example.test");
  EXPECT_EQ(header(r, "Vary"), "Origin");
  EXPECT_EQ(header(r, "Access-Control-Expose-Headers"),
            "Content-Range, Content-Length, Accept-Ranges, ETag, Last-Modified");
  auto other = h.get("/media/clip.mp4", {{"Origin", "https://evil.test"}});
  EXPECT_FALSE(header(other, "Access-Control-Allow-Origin"));
}

TEST_F(media_handler, hidden_components_are_404_without_asking_storage) {
  h.store.put(".secret", "x");
  h.store.put("dir/.poster.jpg", "x");
  for (const char* target :
       {"/media/.secret", "/media/dir/.poster.jpg", "/media/%2esecret", "/media/.tmp/x.mp4"}) {
    auto r = h.get(target);
    expect_text(r, 404, "not found\n");
  }
  EXPECT_EQ(h.store.counters().stats, 0);
}

TEST_F(media_handler, bad_keys_are_400_without_asking_storage) {
  for (const char* target : {"/media/%zz", "/media/a%0", "/media/a%00b", "/media/", "/media/a/../b",
                             "/media/a//b", "/media/a%5cb", "/media/%ff%fe"}) {
    auto r = h.get(target);
    expect_text(r, 400, "bad request: the media key is not a valid path\n");
  }
  EXPECT_EQ(h.store.counters().stats, 0);
}

TEST_F(media_handler, escaped_key_reaches_storage_decoded) {
  h.store.put("a dir/clip 1.mp4", "0123456789");
  auto r = h.get("/media/a%20dir/clip%201.mp4");
  EXPECT_EQ(r.status, 200u);
  EXPECT_EQ(body_of(r).bytes, "0123456789");
}

TEST_F(media_handler, write_methods_are_405_with_allow) {
  test_request post("POST", "/media/clip.mp4");
  auto r = h.handle(post);
  expect_text(r, 405, "method not allowed: media supports GET and HEAD\n");
  EXPECT_EQ(header(r, "Allow"), "GET, HEAD");
  EXPECT_FALSE(r.close);
  test_request put_with_body("PUT", "/media/clip.mp4");
  put_with_body.content_length = 5;
  auto closing = h.handle(put_with_body);
  EXPECT_EQ(closing.status, 405u);
  EXPECT_TRUE(closing.close);  // the unread body could be taken for the next request
  EXPECT_EQ(h.store.counters().stats, 0);
}

struct error_case {
  storage_op op;
  errc code;
  unsigned status;
};

class media_storage_errors : public ::testing::TestWithParam<error_case> {};

TEST_P(media_storage_errors, map_to_status_with_message) {
  service_harness h;
  h.store.put("clip.mp4", "0123456789");
  const auto& c = GetParam();
  h.store.fail(c.op, "clip.mp4", c.code);
  auto r = h.get("/media/clip.mp4");
  expect_text(r, c.status, "injected failure for clip.mp4\n");
  EXPECT_EQ(header(r, "ETag"), std::nullopt);
  // Server-side failures are logged with the key; client-side ones are not.
  const bool logged = h.log.text().find("clip.mp4: injected failure") != std::string::npos;
  EXPECT_EQ(logged, c.status >= 500) << h.log.text();
}

INSTANTIATE_TEST_SUITE_P(errors, media_storage_errors,
                         ::testing::Values(error_case{storage_op::stat, errc::not_found, 404},
                                           error_case{storage_op::stat, errc::forbidden, 403},
                                           error_case{storage_op::stat, errc::upstream_rejected, 502},
                                           error_case{storage_op::stat, errc::upstream_unavailable, 502},
                                           error_case{storage_op::stat, errc::upstream_timeout, 504},
                                           error_case{storage_op::stat, errc::io_error, 500},
                                           error_case{storage_op::stat, errc::changed, 503},
                                           error_case{storage_op::stat, errc::conflict, 409},
                                           error_case{storage_op::open, errc::not_found, 404},
                                           error_case{storage_op::open, errc::forbidden, 403},
                                           error_case{storage_op::open, errc::upstream_rejected, 502},
                                           error_case{storage_op::open, errc::upstream_unavailable, 502},
                                           error_case{storage_op::open, errc::upstream_timeout, 504},
                                           error_case{storage_op::open, errc::io_error, 500},
                                           error_case{storage_op::open, errc::changed, 503}));

TEST_F(media_handler, missing_object_is_404) {
  expect_text(h.get("/media/nothing.mp4"), 404, "no object at nothing.mp4\n");
}

TEST_F(media_handler, changed_once_on_open_is_planned_again) {
  h.store.fail(storage_op::open, "clip.mp4", errc::changed, 1);
  auto r = h.get("/media/clip.mp4", {{"Range", "bytes=10-19"}});
  EXPECT_EQ(r.status, 206u);
  EXPECT_EQ(body_of(r).bytes, object.substr(10, 10));
  EXPECT_EQ(h.store.counters().stats, 2);
  EXPECT_EQ(h.store.counters().opens, 2);  // the one that failed, then the second plan's
}

TEST_F(media_handler, changed_twice_on_open_is_503) {
  h.store.fail(storage_op::open, "clip.mp4", errc::changed, 2);
  auto r = h.get("/media/clip.mp4");
  expect_text(r, 503, "injected failure for clip.mp4\n");
  EXPECT_EQ(h.store.counters().stats, 2);
}

TEST_F(media_handler, replacement_after_planning_fails_later_ranges_as_changed) {
  // The fake checks the ETag on open like the real backends: a replacement after stat is `changed`.
  // Two ranges: the response opens its second range while it is sent (one range has its reader at once).
  auto first = h.get("/media/clip.mp4", {{"Range", "bytes=0-1,4-5"}});
  ASSERT_EQ(first.status, 206u);
  h.store.put("clip.mp4", "new bytes!");
  // The first response's opener still names the old version: opening a range of it fails as changed.
  auto reopened = run(first.media->open(http::byte_range{0, 9}));
  ASSERT_FALSE(reopened.ok());
  EXPECT_EQ(reopened.err().code, errc::changed);
  auto second = h.get("/media/clip.mp4");
  EXPECT_EQ(second.status, 200u);
  EXPECT_EQ(body_of(second).bytes, "new bytes!");
}

TEST_F(media_handler, sniffing_failure_is_an_honest_status) {
  h.store.put("noext", "<html></html>");
  h.store.fail(storage_op::open, "noext", errc::upstream_timeout);
  auto r = h.get("/media/noext");
  expect_text(r, 504, "injected failure for noext\n");
}

TEST_F(media_handler, empty_object_has_no_body) {
  h.store.put("empty.mp4", "");
  auto r = h.get("/media/empty.mp4");
  EXPECT_EQ(r.status, 200u);
  EXPECT_EQ(header(r, "Content-Length"), "0");
  EXPECT_EQ(r.media, nullptr);
  // No range of it is satisfiable, but players get an ordinary empty file, not 416 (DESIGN.md).
  auto ranged = h.get("/media/empty.mp4", {{"Range", "bytes=0-"}});
  EXPECT_EQ(ranged.status, 200u);
  EXPECT_EQ(header(ranged, "Content-Length"), "0");
  EXPECT_EQ(header(ranged, "Content-Range"), std::nullopt);
}

}  // namespace
}  // namespace mediagate::testing_support
