// The response plan (DESIGN.md step 3): status, header fields and body segments for every combination of
// method, conditional headers and Range (RFC 9110 §13-§15), and the serialised head (RFC 9112 §4).
#include "http/response_plan.hpp"

#include <gtest/gtest.h>

#include <cstdint>
#include <cstdio>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "http/response_head.hpp"
#include "http/token.hpp"
#include "printers.hpp"

namespace mediagate::http {
namespace {

constexpr std::uint64_t kSize = 10000;
constexpr std::string_view kEtag = "\"v1-abc\"";
constexpr std::int64_t kLastModified = 784111777;
constexpr std::string_view kLastModifiedText = "Sun, 06 Nov 1994 08:49:37 GMT";
constexpr std::string_view kType = "video/mp4";

// A fake object of known bytes: no run of it looks like a boundary, and every offset has a distinct pattern.
std::string make_object(std::uint64_t size) {
  std::string s(size, '\0');
  for (std::uint64_t i = 0; i < size; ++i) s[i] = static_cast<char>((i * 131 + i / 251 + 7) % 256);
  return s;
}

const std::string& object() {
  static const std::string o = make_object(kSize);
  return o;
}

representation rep(std::uint64_t size = kSize, std::string_view type = kType) {
  return {size, kEtag, kLastModified, type};
}

request_view get(std::optional<std::string_view> range = std::nullopt, conditional_headers c = {}) {
  return {method::get, c, range};
}
request_view head(std::optional<std::string_view> range = std::nullopt, conditional_headers c = {}) {
  return {method::head, c, range};
}

std::vector<std::string> values(const response_plan& p, std::string_view name) {
  std::vector<std::string> out;
  for (const auto& [n, v] : p.headers)
    if (iequals(n, name)) out.emplace_back(v);
  return out;
}

// The single value of a header field; fails the test when it appears more than once.
std::optional<std::string> field(const response_plan& p, std::string_view name) {
  auto v = values(p, name);
  EXPECT_LE(v.size(), 1u) << "header field repeated: " << name;
  if (v.empty()) return std::nullopt;
  return v.front();
}

// The body a connection would send: each literal, then the planned bytes of the object.
std::string materialize(const response_plan& p, const std::string& obj) {
  std::string out;
  for (const auto& seg : p.body) {
    out += seg.literal;
    if (seg.range) {
      EXPECT_LE(seg.range->first, seg.range->last);
      EXPECT_LT(seg.range->last, obj.size());
      if (seg.range->last < obj.size()) out += obj.substr(seg.range->first, seg.range->length());
    }
  }
  return out;
}

std::uint64_t planned_object_bytes(const response_plan& p) {
  std::uint64_t n = 0;
  for (const auto& seg : p.body)
    if (seg.range) n += seg.range->length();
  return n;
}

// Invariants of every plan (DESIGN.md "Ranges"): an exact Content-Length except on 304; a 200 never carries
// Content-Range; a 304 has no body and no Content-Length; HEAD never gets 206 and never a body; validators
// always present.
void check_invariants(const request_view& req, const response_plan& p, const std::string& obj) {
  EXPECT_EQ(field(p, "ETag"), std::string(kEtag));
  EXPECT_EQ(field(p, "Last-Modified"), std::string(kLastModifiedText));
  EXPECT_TRUE(values(p, "Transfer-Encoding").empty());
  EXPECT_TRUE(values(p, "Content-Encoding").empty());
  if (p.status == 304) {
    EXPECT_TRUE(p.body.empty());
    EXPECT_EQ(field(p, "Content-Length"), std::nullopt);
    EXPECT_EQ(field(p, "Content-Range"), std::nullopt);
    return;
  }
  EXPECT_EQ(field(p, "Content-Length"), std::to_string(p.content_length));
  EXPECT_EQ(field(p, "Accept-Ranges"), "bytes");
  if (p.status == 200) {
    EXPECT_EQ(field(p, "Content-Range"), std::nullopt);
  }
  if (req.m == method::head) {
    EXPECT_NE(p.status, 206u);
    EXPECT_TRUE(p.body.empty());
  } else {
    EXPECT_EQ(materialize(p, obj).size(), p.content_length);
  }
}

response_plan plan(const request_view& req, const representation& r = rep(), const plan_options& o = {},
                   const std::string& obj = object()) {
  auto p = plan_response(req, r, o);
  check_invariants(req, p, obj);
  return p;
}

// --- 200 ---

TEST(plan_200, get_without_range_sends_the_whole_object) {
  const auto p = plan(get());
  EXPECT_EQ(p.status, 200u);
  EXPECT_EQ(p.content_length, kSize);
  EXPECT_EQ(field(p, "Content-Length"), "10000");
  EXPECT_EQ(field(p, "Content-Type"), "video/mp4");
  EXPECT_EQ(field(p, "Cache-Control"), "public, max-age=3600");
  EXPECT_EQ(field(p, "Accept-Ranges"), "bytes");
  EXPECT_EQ(field(p, "Content-Range"), std::nullopt);
  EXPECT_EQ(materialize(p, object()), object());
}

TEST(plan_200, head_without_range_has_the_get_length_and_no_body) {
  const auto p = plan(head());
  EXPECT_EQ(p.status, 200u);
  EXPECT_EQ(p.content_length, kSize);
  EXPECT_EQ(field(p, "Content-Length"), "10000");
  EXPECT_EQ(field(p, "Content-Type"), "video/mp4");
  EXPECT_TRUE(p.body.empty());
}

TEST(plan_200, head_never_gets_206_or_416) {
  // Range handling is defined for GET only (RFC 9110 §14.2).
  for (const char* range : {"bytes=0-499", "bytes=0-", "bytes=0-1", "bytes=-500", "bytes=0-0,-1",
                            "bytes=500-600,601-999", "bytes=10000-", "bytes=-0", "bytes=x"}) {
    SCOPED_TRACE(range);
    const auto p = plan(head(range));
    EXPECT_EQ(p.status, 200u);
    EXPECT_EQ(p.content_length, kSize);
    EXPECT_EQ(field(p, "Content-Range"), std::nullopt);
    EXPECT_EQ(field(p, "Content-Type"), "video/mp4");
  }
}

TEST(plan_200, other_methods_ignore_range) {
  const auto p = plan({method::other, {}, "bytes=0-1"});
  EXPECT_EQ(p.status, 200u);
  EXPECT_EQ(field(p, "Content-Range"), std::nullopt);
}

TEST(plan_200, ignored_ranges_send_the_whole_object) {
  for (const char* range : {"items=0-1", "bytes=500-700,601-999", "bytes=1-0", "bytes=0-99999999999999999999",
                            "bytes=", "bytes=abc", "bytes=0-0,0-0", "bytes=-6000,0-5000"}) {
    SCOPED_TRACE(range);
    const auto p = plan(get(range));
    EXPECT_EQ(p.status, 200u);
    EXPECT_EQ(p.content_length, kSize);
    EXPECT_EQ(field(p, "Content-Type"), "video/mp4");
    EXPECT_EQ(materialize(p, object()), object());
  }
}

TEST(plan_200, too_many_ranges_send_the_whole_object) {
  plan_options o;
  o.limits.max_ranges = 3;
  EXPECT_EQ(plan(get("bytes=0-0,2-2,4-4"), rep(), o).status, 206u);
  const auto p = plan(get("bytes=0-0,2-2,4-4,6-6"), rep(), o);
  EXPECT_EQ(p.status, 200u);
  EXPECT_EQ(materialize(p, object()), object());
}

TEST(plan_200, zero_length_object_any_range_is_200_empty) {
  const std::string empty;
  for (std::optional<std::string_view> range :
       {std::optional<std::string_view>{}, std::optional<std::string_view>{"bytes=0-"},
        std::optional<std::string_view>{"bytes=0-0"}, std::optional<std::string_view>{"bytes=-1"},
        std::optional<std::string_view>{"bytes=-0"}, std::optional<std::string_view>{"bytes=5-"},
        std::optional<std::string_view>{"bytes=0-0,1-1"}}) {
    SCOPED_TRACE(std::string(range.value_or("(none)")));
    for (auto m : {method::get, method::head}) {
      const auto p = plan({m, {}, range}, rep(0), {}, empty);
      EXPECT_EQ(p.status, 200u);
      EXPECT_EQ(p.content_length, 0u);
      EXPECT_EQ(field(p, "Content-Length"), "0");
      EXPECT_EQ(field(p, "Content-Range"), std::nullopt);
      EXPECT_EQ(materialize(p, empty), "");
    }
  }
}

TEST(plan_200, empty_type_and_cache_control_are_omitted) {
  plan_options o;
  o.cache_control = "";
  const auto p = plan(get(), rep(kSize, ""), o);
  EXPECT_EQ(p.status, 200u);
  EXPECT_TRUE(values(p, "Content-Type").empty());
  EXPECT_TRUE(values(p, "Cache-Control").empty());
}

// --- 206, one range ---

struct single_case {
  const char* name;
  const char* range;
  std::uint64_t first;
  std::uint64_t last;
};

class plan_206_single : public ::testing::TestWithParam<single_case> {};

TEST_P(plan_206_single, exact_head_and_bytes) {
  const auto& c = GetParam();
  const auto p = plan(get(c.range));
  ASSERT_EQ(p.status, 206u);
  const auto length = c.last - c.first + 1;
  EXPECT_EQ(p.content_length, length);
  EXPECT_EQ(field(p, "Content-Length"), std::to_string(length));
  EXPECT_EQ(field(p, "Content-Range"),
            "bytes " + std::to_string(c.first) + "-" + std::to_string(c.last) + "/10000");
  EXPECT_EQ(field(p, "Content-Type"), "video/mp4");  // a single range is never multipart
  EXPECT_EQ(materialize(p, object()), object().substr(c.first, length));
  EXPECT_EQ(planned_object_bytes(p), length);
}

const single_case kSingle[] = {
    {"rfc_first_500", "bytes=0-499", 0, 499},
    {"rfc_second_500", "bytes=500-999", 500, 999},
    {"rfc_suffix_500", "bytes=-500", 9500, 9999},
    {"rfc_open_9500", "bytes=9500-", 9500, 9999},
    {"chrome_open_zero", "bytes=0-", 0, 9999},
    {"safari_probe", "bytes=0-1", 0, 1},
    {"last_byte", "bytes=9999-", 9999, 9999},
    {"clamped_end", "bytes=9000-999999", 9000, 9999},
    {"suffix_over_size", "bytes=-20000", 0, 9999},
    {"unit_case", "Bytes=10-19", 10, 19},
    {"whitespace", " bytes= 10-19 , ", 10, 19},
    {"unsatisfiable_member_dropped", "bytes=20000-,10-19", 10, 19},
    {"suffix_zero_member_dropped", "bytes=-0,10-19", 10, 19},
};
INSTANTIATE_TEST_SUITE_P(rfc9110_14_1_2, plan_206_single, ::testing::ValuesIn(kSingle),
                         [](const auto& info) { return std::string(info.param.name); });

TEST(plan_206, huge_object_content_range) {
  const std::uint64_t size = 9223372036854775808ull;
  const auto p = plan_response(get("bytes=-1"), rep(size), {});
  EXPECT_EQ(p.status, 206u);
  EXPECT_EQ(field(p, "Content-Range"), "bytes 9223372036854775807-9223372036854775807/9223372036854775808");
  EXPECT_EQ(field(p, "Content-Length"), "1");
  ASSERT_EQ(p.body.size(), 1u);
  EXPECT_EQ(p.body[0].range, (byte_range{size - 1, size - 1}));
}

// --- 206, multipart/byteranges (RFC 9110 §14.6) ---

struct part {
  std::optional<std::string> content_type;
  std::string content_range;
  std::uint64_t first = 0;
  std::uint64_t last = 0;
  std::string bytes;
};

// Parses a multipart/byteranges body strictly (RFC 2046 §5.1.1 framing, RFC 9110 §14.6): each part's
// length is taken from its Content-Range, so that a wrong length in the framing shows up as a parse error.
std::optional<std::vector<part>> parse_multipart(const std::string& body, const std::string& boundary) {
  const std::string delimiter = "--" + boundary;
  std::vector<part> parts;
  std::size_t pos = 0;
  auto take = [&](std::string_view s) {
    if (body.compare(pos, s.size(), s) != 0) return false;
    pos += s.size();
    return true;
  };
  if (!take(delimiter) || !take("\r\n")) return std::nullopt;
  while (true) {
    part p;
    bool has_range = false;
    while (true) {  // header fields up to the empty line
      const auto eol = body.find("\r\n", pos);
      if (eol == std::string::npos) return std::nullopt;
      const auto line = body.substr(pos, eol - pos);
      pos = eol + 2;
      if (line.empty()) break;
      const auto colon = line.find(':');
      if (colon == std::string::npos) return std::nullopt;
      const auto name = line.substr(0, colon);
      const auto value = std::string(trim_ows(std::string_view(line).substr(colon + 1)));
      if (iequals(name, "Content-Type")) {
        if (p.content_type) return std::nullopt;
        p.content_type = value;
      } else if (iequals(name, "Content-Range")) {
        if (has_range) return std::nullopt;
        has_range = true;
        p.content_range = value;
        unsigned long long a = 0, b = 0, n = 0;
        int consumed = 0;
        if (std::sscanf(value.c_str(), "bytes %llu-%llu/%llu%n", &a, &b, &n, &consumed) != 3 ||
            static_cast<std::size_t>(consumed) != value.size() || b < a)
          return std::nullopt;
        p.first = a;
        p.last = b;
      } else {
        return std::nullopt;  // nothing else belongs in a part header here
      }
    }
    if (!has_range) return std::nullopt;
    const auto length = p.last - p.first + 1;
    if (pos + length > body.size()) return std::nullopt;
    p.bytes = body.substr(pos, length);
    pos += length;
    parts.push_back(std::move(p));
    if (!take("\r\n") || !take(delimiter)) return std::nullopt;
    if (take("--")) {
      if (!take("\r\n")) return std::nullopt;
      return pos == body.size() ? std::optional(parts) : std::nullopt;
    }
    if (!take("\r\n")) return std::nullopt;
  }
}

// Checks a multipart plan against the expected ranges, through the bytes a connection would send.
void expect_multipart(const response_plan& p, const std::vector<byte_range>& expected,
                      std::string_view boundary, std::string_view part_type,
                      const std::string& obj = object()) {
  ASSERT_EQ(p.status, 206u);
  EXPECT_EQ(field(p, "Content-Range"), std::nullopt);  // only the parts carry Content-Range
  ASSERT_EQ(field(p, "Content-Type"), "multipart/byteranges; boundary=" + std::string(boundary));
  const auto body = materialize(p, obj);
  EXPECT_EQ(body.size(), p.content_length);
  EXPECT_EQ(field(p, "Content-Length"), std::to_string(body.size()));
  const auto parts = parse_multipart(body, std::string(boundary));
  ASSERT_TRUE(parts.has_value()) << body.substr(0, 2000);
  ASSERT_EQ(parts->size(), expected.size());
  std::uint64_t planned = 0;
  for (std::size_t i = 0; i < expected.size(); ++i) {
    SCOPED_TRACE("part " + std::to_string(i));
    const auto& got = (*parts)[i];
    if (part_type.empty()) {
      EXPECT_EQ(got.content_type, std::nullopt);
    } else {
      EXPECT_EQ(got.content_type, std::string(part_type));
    }
    EXPECT_EQ(got.content_range, "bytes " + std::to_string(expected[i].first) + "-" +
                                     std::to_string(expected[i].last) + "/" + std::to_string(obj.size()));
    EXPECT_EQ(got.first, expected[i].first);
    EXPECT_EQ(got.last, expected[i].last);
    EXPECT_EQ(got.bytes, obj.substr(expected[i].first, expected[i].length()));
    planned += expected[i].length();
  }
  EXPECT_EQ(planned_object_bytes(p), planned);
}

TEST(plan_206_multipart, rfc_first_and_last_byte) {
  const auto p = plan(get("bytes=0-0,-1"));
  expect_multipart(p, {{0, 0}, {9999, 9999}}, "mediagate-boundary", "video/mp4");
}

TEST(plan_206_multipart, rfc_adjacent_ranges) {
  const auto p = plan(get("bytes=500-600,601-999"));
  expect_multipart(p, {{500, 600}, {601, 999}}, "mediagate-boundary", "video/mp4");
}

TEST(plan_206_multipart, rfc_overlapping_ranges_get_the_whole_object) {
  const auto p = plan(get("bytes=500-700,601-999"));
  EXPECT_EQ(p.status, 200u);
  EXPECT_EQ(field(p, "Content-Type"), "video/mp4");
  EXPECT_EQ(materialize(p, object()), object());
}

TEST(plan_206_multipart, exact_bytes_of_a_small_example) {
  // The whole serialised body, spelled out: framing per RFC 9110 §14.6's example.
  const std::string obj = "0123456789";
  plan_options o;
  o.boundary = "THIS_STRING_SEPARATES";
  const auto p = plan(get("bytes=1-2,-3"), rep(10, "text/plain"), o, obj);
  ASSERT_EQ(p.status, 206u);
  const std::string expected =
      "--THIS_STRING_SEPARATES\r\n"
      "Content-Type: text/plain\r\n"
      "Content-Range: bytes 1-2/10\r\n"
      "\r\n"
      "12\r\n"
      "--THIS_STRING_SEPARATES\r\n"
      "Content-Type: text/plain\r\n"
      "Content-Range: bytes 7-9/10\r\n"
      "\r\n"
      "789\r\n"
      "--THIS_STRING_SEPARATES--\r\n";
  EXPECT_EQ(materialize(p, obj), expected);
  EXPECT_EQ(p.content_length, expected.size());
  EXPECT_EQ(field(p, "Content-Length"), std::to_string(expected.size()));
  EXPECT_EQ(field(p, "Content-Type"), "multipart/byteranges; boundary=THIS_STRING_SEPARATES");
}

TEST(plan_206_multipart, request_order_custom_boundary_and_clamping) {
  plan_options o;
  o.boundary = "0123456789abcdefABCDEF-_";
  const auto p = plan(get("bytes=9000-20000, 0-9 ,5000-5099"), rep(), o);
  expect_multipart(p, {{9000, 9999}, {0, 9}, {5000, 5099}}, o.boundary, "video/mp4");
}

TEST(plan_206_multipart, parts_have_no_content_type_when_the_object_has_none) {
  const auto p = plan(get("bytes=0-9,20-29"), rep(kSize, ""));
  expect_multipart(p, {{0, 9}, {20, 29}}, "mediagate-boundary", "");
}

TEST(plan_206_multipart, part_content_type_keeps_parameters) {
  const auto p = plan(get("bytes=0-9,20-29"), rep(kSize, "text/vtt; charset=utf-8"));
  expect_multipart(p, {{0, 9}, {20, 29}}, "mediagate-boundary", "text/vtt; charset=utf-8");
}

TEST(plan_206_multipart, maximum_number_of_ranges) {
  std::string header = "bytes=";
  std::vector<byte_range> expected;
  for (std::uint64_t i = 0; i < 16; ++i) {
    header += (i ? "," : "") + std::to_string(i * 600) + "-" + std::to_string(i * 600 + i);
    expected.push_back({i * 600, i * 600 + i});
  }
  expect_multipart(plan(get(header)), expected, "mediagate-boundary", "video/mp4");
}

TEST(plan_206_multipart, content_length_is_exact_for_many_combinations) {
  // Ranges whose lengths and offsets change the number of digits in Content-Range, over several object sizes.
  const std::uint64_t sizes[] = {2, 9, 10, 11, 99, 100, 101, 10000};
  for (const auto size : sizes) {
    const auto obj = make_object(size);
    const std::string specs[] = {"0-0",   "1-1", "-1",    "0-",  "1-",   "5-8",   "9-",
                                 "10-10", "-9",  "50-99", "98-", "-100", "99-99", "100-"};
    for (const auto& a : specs) {
      for (const auto& b : specs) {
        const auto header = "bytes=" + a + "," + b;
        SCOPED_TRACE(header + " size " + std::to_string(size));
        const auto ranges = parse_range(header, size);
        const auto p = plan(get(header), rep(size), {}, obj);
        if (ranges.outcome == range_outcome::satisfiable && ranges.ranges.size() == 2) {
          expect_multipart(p, ranges.ranges, "mediagate-boundary", "video/mp4", obj);
        } else if (ranges.outcome == range_outcome::satisfiable) {
          ASSERT_EQ(p.status, 206u);
          EXPECT_EQ(materialize(p, obj), obj.substr(ranges.ranges[0].first, ranges.ranges[0].length()));
        } else if (ranges.outcome == range_outcome::none) {
          ASSERT_EQ(p.status, 200u);
          EXPECT_EQ(materialize(p, obj), obj);
        } else {
          ASSERT_EQ(p.status, 416u);
        }
      }
    }
  }
}

TEST(plan_206_multipart, framing_helpers) {
  EXPECT_EQ(multipart_part_header("B", "video/mp4", {0, 9}, 100, true),
            "--B\r\nContent-Type: video/mp4\r\nContent-Range: bytes 0-9/100\r\n\r\n");
  EXPECT_EQ(multipart_part_header("B", "video/mp4", {10, 19}, 100, false),
            "\r\n--B\r\nContent-Type: video/mp4\r\nContent-Range: bytes 10-19/100\r\n\r\n");
  EXPECT_EQ(multipart_part_header("B", "", {0, 0}, 1, true), "--B\r\nContent-Range: bytes 0-0/1\r\n\r\n");
  EXPECT_EQ(multipart_trailer("B"), "\r\n--B--\r\n");
}

// --- 416 ---

TEST(plan_416, every_range_past_the_end) {
  for (const char* range : {"bytes=10000-", "bytes=10000-10000", "bytes=20000-30000", "bytes=-0",
                            "bytes=18446744073709551615-", "bytes=10000-,-0,99999-"}) {
    SCOPED_TRACE(range);
    const auto p = plan(get(range));
    EXPECT_EQ(p.status, 416u);
    EXPECT_EQ(field(p, "Content-Range"), "bytes */10000");  // RFC 9110 §14.4, §15.5.17
    EXPECT_EQ(planned_object_bytes(p), 0u);                 // not a byte of the object
    const auto type = field(p, "Content-Type");
    EXPECT_TRUE(type && !type->starts_with("video/")) << type.value_or("");
    const auto body = materialize(p, object());
    EXPECT_EQ(body.size(), p.content_length);
    EXPECT_GT(body.size(), 0u);
  }
}

TEST(plan_416, ignored_when_if_range_does_not_match) {
  const auto p = plan(get("bytes=10000-", {{}, {}, {}, {}, "\"other\""}));
  EXPECT_EQ(p.status, 200u);
  EXPECT_EQ(materialize(p, object()), object());
}

// --- 304 ---

void expect_304(const response_plan& p, bool cache_control = true) {
  EXPECT_EQ(p.status, 304u);
  EXPECT_TRUE(p.body.empty());
  EXPECT_EQ(field(p, "Content-Length"), std::nullopt);
  EXPECT_EQ(field(p, "Content-Range"), std::nullopt);
  EXPECT_EQ(field(p, "Content-Type"), std::nullopt);  // §15.4.5: no representation metadata beyond validators
  EXPECT_EQ(field(p, "ETag"), std::string(kEtag));
  EXPECT_EQ(field(p, "Last-Modified"), std::string(kLastModifiedText));
  if (cache_control) {
    EXPECT_EQ(field(p, "Cache-Control"), "public, max-age=3600");
  } else {
    EXPECT_EQ(field(p, "Cache-Control"), std::nullopt);
  }
}

TEST(plan_304, if_none_match_with_range_is_304_not_206) {
  // Preconditions come before Range (§13.2.2); werkzeug's 206 here is a known deviation.
  expect_304(plan(get("bytes=0-499", {{}, kEtag, {}, {}, {}})));
  expect_304(plan(get("bytes=0-0,-1", {{}, "W/\"v1-abc\"", {}, {}, {}})));
  expect_304(plan(get("bytes=10000-", {{}, "*", {}, {}, {}})));
}

TEST(plan_304, if_none_match_get_and_head) {
  expect_304(plan(get(std::nullopt, {{}, "\"x\", \"v1-abc\"", {}, {}, {}})));
  expect_304(plan(head(std::nullopt, {{}, kEtag, {}, {}, {}})));
  expect_304(plan(head("bytes=0-1", {{}, kEtag, {}, {}, {}})));
}

TEST(plan_304, if_modified_since_with_range) {
  expect_304(plan(get("bytes=0-499", {{}, {}, kLastModifiedText, {}, {}})));
  expect_304(plan(head(std::nullopt, {{}, {}, "Sunday, 06-Nov-94 08:49:37 GMT", {}, {}})));
}

TEST(plan_304, keeps_configured_cache_control) {
  plan_options o;
  o.cache_control = "no-cache";
  const auto p = plan(get(std::nullopt, {{}, kEtag, {}, {}, {}}), rep(), o);
  EXPECT_EQ(p.status, 304u);
  EXPECT_EQ(field(p, "Cache-Control"), "no-cache");
  plan_options none;
  none.cache_control = "";
  expect_304(plan(get(std::nullopt, {{}, kEtag, {}, {}, {}}), rep(), none), false);
}

TEST(plan_304, zero_length_object) {
  const std::string empty;
  const auto p = plan(get("bytes=0-", {{}, kEtag, {}, {}, {}}), rep(0), {}, empty);
  expect_304(p);
}

TEST(plan_304, if_modified_since_ignored_when_if_none_match_present) {
  const auto p = plan(get(std::nullopt, {{}, "\"other\"", kLastModifiedText, {}, {}}));
  EXPECT_EQ(p.status, 200u);
}

// --- 412 ---

TEST(plan_412, if_match_failure_comes_before_range) {
  for (const char* range : {"bytes=0-499", "bytes=10000-", "bytes=0-0,-1"}) {
    SCOPED_TRACE(range);
    const auto p = plan(get(range, {"\"other\"", {}, {}, {}, {}}));
    EXPECT_EQ(p.status, 412u);
    EXPECT_EQ(field(p, "Content-Range"), std::nullopt);
    EXPECT_EQ(planned_object_bytes(p), 0u);
    const auto type = field(p, "Content-Type");
    EXPECT_TRUE(type && !type->starts_with("video/")) << type.value_or("");
  }
}

TEST(plan_412, weak_if_match_and_unmodified_since) {
  EXPECT_EQ(plan(get(std::nullopt, {"W/\"v1-abc\"", {}, {}, {}, {}})).status, 412u);
  EXPECT_EQ(plan(get(std::nullopt, {{}, {}, {}, "Sun, 06 Nov 1994 08:49:36 GMT", {}})).status, 412u);
  // If-Unmodified-Since is ignored when If-Match is present (§13.2.2 step 2).
  EXPECT_EQ(plan(get("bytes=0-1", {kEtag, {}, {}, "Sun, 06 Nov 1994 08:49:36 GMT", {}})).status, 206u);
}

TEST(plan_412, head_has_no_body) {
  const auto p = plan(head(std::nullopt, {"\"other\"", {}, {}, {}, {}}));
  EXPECT_EQ(p.status, 412u);
  EXPECT_TRUE(p.body.empty());
}

TEST(plan_412, if_match_pass_allows_range) {
  const auto p = plan(get("bytes=0-499", {"\"x\", \"v1-abc\"", {}, {}, {}, {}}));
  EXPECT_EQ(p.status, 206u);
  EXPECT_EQ(field(p, "Content-Range"), "bytes 0-499/10000");
}

// --- If-Range (§13.1.5) ---

struct if_range_case {
  const char* name;
  const char* if_range;
  unsigned status;
};

class plan_if_range : public ::testing::TestWithParam<if_range_case> {};

TEST_P(plan_if_range, decides_between_206_and_200) {
  const auto& c = GetParam();
  const auto p = plan(get("bytes=500-999", {{}, {}, {}, {}, c.if_range}));
  EXPECT_EQ(p.status, c.status);
  if (c.status == 206) {
    EXPECT_EQ(field(p, "Content-Range"), "bytes 500-999/10000");
    EXPECT_EQ(materialize(p, object()), object().substr(500, 500));
  } else {
    EXPECT_EQ(materialize(p, object()), object());
  }
}

const if_range_case kIfRangeCases[] = {
    {"strong_etag_match", "\"v1-abc\"", 206},
    {"strong_etag_mismatch", "\"v2-abc\"", 200},
    {"weak_etag_same_opaque", "W/\"v1-abc\"", 200},
    {"date_exact", "Sun, 06 Nov 1994 08:49:37 GMT", 206},
    {"date_exact_asctime", "Sun Nov  6 08:49:37 1994", 206},
    {"date_one_second_later", "Sun, 06 Nov 1994 08:49:38 GMT", 200},
    {"date_one_second_earlier", "Sun, 06 Nov 1994 08:49:36 GMT", 200},
    {"garbage", "whatever", 200},
    {"etag_list", "\"v1-abc\", \"v2\"", 200},
};
INSTANTIATE_TEST_SUITE_P(rfc9110_13_1_5, plan_if_range, ::testing::ValuesIn(kIfRangeCases),
                         [](const auto& info) { return std::string(info.param.name); });

TEST(plan_if_range_extra, without_range_is_ignored) {
  const auto p = plan(get(std::nullopt, {{}, {}, {}, {}, "\"v2-abc\""}));
  EXPECT_EQ(p.status, 200u);
}

TEST(plan_if_range_extra, multipart_when_if_range_matches) {
  const auto p = plan(get("bytes=0-0,-1", {{}, {}, {}, {}, kEtag}));
  expect_multipart(p, {{0, 0}, {9999, 9999}}, "mediagate-boundary", "video/mp4");
}

TEST(plan_if_range_extra, chrome_revalidation_after_change) {
  // Chrome resumes with If-Range; a changed object must come whole (200), not spliced.
  const auto p = plan(get("bytes=5000-", {{}, {}, {}, {}, "\"v0-old\""}));
  EXPECT_EQ(p.status, 200u);
  EXPECT_EQ(p.content_length, kSize);
}

// --- the serialised head (RFC 9112 §4) ---

TEST(response_head, reason_phrases) {
  EXPECT_EQ(reason_phrase(200), "OK");
  EXPECT_EQ(reason_phrase(206), "Partial Content");
  EXPECT_EQ(reason_phrase(304), "Not Modified");
  EXPECT_EQ(reason_phrase(412), "Precondition Failed");
  EXPECT_EQ(reason_phrase(416), "Range Not Satisfiable");
  EXPECT_EQ(reason_phrase(404), "Not Found");
  EXPECT_EQ(reason_phrase(413), "Content Too Large");
  EXPECT_EQ(reason_phrase(502), "Bad Gateway");
  EXPECT_EQ(reason_phrase(504), "Gateway Timeout");
}

TEST(response_head, serialize_206) {
  const auto p = plan(get("bytes=0-1"));
  const auto head_text = serialize_head(p.status, p.headers, "Sun, 06 Nov 1994 08:49:37 GMT", false);
  EXPECT_EQ(head_text,
            "HTTP/1.1 206 Partial Content\r\n"
            "Server: mediagate\r\n"
            "Date: Sun, 06 Nov 1994 08:49:37 GMT\r\n"
            "ETag: \"v1-abc\"\r\n"
            "Last-Modified: Sun, 06 Nov 1994 08:49:37 GMT\r\n"
            "Cache-Control: public, max-age=3600\r\n"
            "Accept-Ranges: bytes\r\n"
            "Content-Type: video/mp4\r\n"
            "Content-Range: bytes 0-1/10000\r\n"
            "Content-Length: 2\r\n"
            "\r\n");
}

TEST(response_head, serialize_close_without_date) {
  EXPECT_EQ(serialize_head(404, {{"Content-Length", "0"}}, "", true),
            "HTTP/1.1 404 Not Found\r\nServer: mediagate\r\nContent-Length: 0\r\nConnection: close\r\n\r\n");
}

TEST(response_head, no_field_value_contains_cr_or_lf) {
  for (const char* range : {"bytes=0-1", "bytes=0-0,-1", "bytes=10000-"}) {
    const auto p = plan(get(range));
    for (const auto& [name, value] : p.headers) {
      EXPECT_EQ(name.find_first_of("\r\n: "), std::string::npos) << name;
      EXPECT_EQ(value.find_first_of("\r\n"), std::string::npos) << name;
    }
  }
}

}  // namespace
}  // namespace mediagate::http
