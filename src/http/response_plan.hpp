#pragma once
// The response plan: a pure function of (request, representation metadata, options) that decides the
// status, the headers and exactly which bytes to send (DESIGN.md step 3). No I/O, no clock.
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "http/byte_range.hpp"
#include "http/header_list.hpp"
#include "http/preconditions.hpp"

namespace mediagate::http {

struct request_view {
  method m = method::get;
  conditional_headers conditions;
  std::optional<std::string_view> range;
  // single_range_spec(*range), when the caller parsed it already (the plan then does not parse it again).
  std::optional<range_spec_hint> single_range;
};

struct representation {
  std::uint64_t size = 0;
  std::string_view etag;
  std::int64_t last_modified = 0;
  std::string_view content_type;
};

struct plan_options {
  std::string_view cache_control = "public, max-age=3600";
  range_limits limits;
  std::string_view boundary = "mediagate-boundary";  // multipart/byteranges boundary, chosen by the caller
};

// One piece of the body: literal bytes (multipart framing, error text), then optionally a range of the
// representation.
struct body_segment {
  std::string literal;
  std::optional<byte_range> range;
};

struct response_plan {
  unsigned status = 200;
  header_list headers;               // Content-Length included whenever there is a body to frame
  std::vector<body_segment> body;    // empty when there is nothing to send (HEAD, 304)
  std::uint64_t content_length = 0;  // what Content-Length says (for HEAD: what GET would send)
};

response_plan plan_response(const request_view& req, const representation& rep, const plan_options& opts);

// The literal framing of multipart/byteranges (RFC 9110 §14.6), shared by the planner and its tests.
std::string multipart_part_header(std::string_view boundary, std::string_view content_type,
                                  const byte_range& r, std::uint64_t size, bool first);
std::string multipart_trailer(std::string_view boundary);

}  // namespace mediagate::http
