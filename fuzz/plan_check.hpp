#pragma once
// The invariants of every response plan, shared by the planner's target and the request-head target: the
// status is one the planner may choose, Content-Length frames exactly the body it plans, and a 206 sends
// exactly the ranges parse_range accepted, inside the object.
#include <string>

#include "fuzz_check.hpp"
#include "http/response_plan.hpp"

namespace mediagate::fuzz {

inline int count_header(const http::response_plan& plan, std::string_view name, std::string_view* value) {
  int n = 0;
  for (const auto& [k, v] : plan.headers)
    if (k == name) {
      ++n;
      *value = v;
    }
  return n;
}

// A value as a header field carries it: CR, LF and NUL become spaces (http::header_list), so that no value
// can end the field.
inline std::string as_field(std::string_view v) {
  std::string out(v);
  for (auto& ch : out)
    if (ch == '\r' || ch == '\n' || ch == '\0') ch = ' ';
  return out;
}

inline void check_plan(const http::request_view& req, const http::representation& rep,
                       const http::plan_options& opts, const http::response_plan& plan) {
  using http::method;
  const auto s = plan.status;
  FUZZ_CHECK(s == 200 || s == 206 || s == 304 || s == 412 || s == 416, "a status the planner knows");
  std::string_view value;
  FUZZ_CHECK(count_header(plan, "ETag", &value) == 1 && value == as_field(rep.etag),
             "one ETag, the representation's");
  FUZZ_CHECK(count_header(plan, "Last-Modified", &value) == 1, "one Last-Modified");
  FUZZ_CHECK(count_header(plan, "Accept-Ranges", &value) == 1, "one Accept-Ranges");
  const int lengths = count_header(plan, "Content-Length", &value);

  const auto& c = req.conditions;
  const bool conditional = c.if_match || c.if_none_match || c.if_modified_since || c.if_unmodified_since;
  if (!conditional) FUZZ_CHECK(s != 304 && s != 412, "no precondition, no 304 or 412");
  if (s == 304) {
    FUZZ_CHECK(req.m != method::other, "304 only for GET and HEAD");
    FUZZ_CHECK(c.if_none_match || c.if_modified_since, "304 needs If-None-Match or If-Modified-Since");
    FUZZ_CHECK(lengths == 0 && plan.body.empty(), "a 304 has no body and no Content-Length");
    return;
  }
  if (s == 412)
    FUZZ_CHECK(c.if_match || c.if_unmodified_since || (c.if_none_match && req.m == method::other),
               "412 only from If-Match, If-Unmodified-Since, or If-None-Match on other methods");
  FUZZ_CHECK(lengths == 1 && value == std::to_string(plan.content_length),
             "one Content-Length, the planned one");

  if (req.m == method::head) {
    FUZZ_CHECK(plan.body.empty(), "HEAD sends no body");
  } else {
    std::uint64_t total = 0;
    for (const auto& segment : plan.body) {
      total += segment.literal.size();
      if (segment.range) {
        FUZZ_CHECK(segment.range->first <= segment.range->last, "no empty segment");
        FUZZ_CHECK(segment.range->last < rep.size, "segments lie within the object");
        total += segment.range->length();
      }
    }
    FUZZ_CHECK(total == plan.content_length, "Content-Length equals the sum of the segments");
  }

  if (s == 200) FUZZ_CHECK(plan.content_length == rep.size, "a 200 sends the whole object");
  if (s == 206 || s == 416) {
    FUZZ_CHECK(req.m == method::get && req.range, "206 and 416 only answer GET with Range");
    FUZZ_CHECK(http::if_range_allows_range(c.if_range, {rep.etag, rep.last_modified}), "If-Range allowed it");
  }
  if (s == 416) {
    FUZZ_CHECK(
        count_header(plan, "Content-Range", &value) == 1 && value == "bytes */" + std::to_string(rep.size),
        "a 416 says the size");
    FUZZ_CHECK(
        http::parse_range(*req.range, rep.size, opts.limits).outcome == http::range_outcome::not_satisfiable,
        "416 only when parse_range says so");
  }
  if (s == 206) {
    const auto parsed = http::parse_range(*req.range, rep.size, opts.limits);
    FUZZ_CHECK(parsed.outcome == http::range_outcome::satisfiable, "206 only when parse_range says so");
    std::vector<http::byte_range> sent;
    for (const auto& segment : plan.body)
      if (segment.range) sent.push_back(*segment.range);
    FUZZ_CHECK(sent == parsed.ranges, "a 206 sends the parsed ranges, in order");
    const bool multipart = parsed.ranges.size() > 1;
    const int content_ranges = count_header(plan, "Content-Range", &value);
    if (!multipart) {
      const auto& r = parsed.ranges.front();
      FUZZ_CHECK(content_ranges == 1 && value == "bytes " + std::to_string(r.first) + "-" +
                                                     std::to_string(r.last) + "/" + std::to_string(rep.size),
                 "a single part says its range");
      FUZZ_CHECK(plan.content_length == r.length(), "a single part sends its range");
    } else {
      FUZZ_CHECK(content_ranges == 0, "a multipart answer has its Content-Range in the parts");
      FUZZ_CHECK(count_header(plan, "Content-Type", &value) == 1 &&
                     value == as_field("multipart/byteranges; boundary=" + std::string(opts.boundary)),
                 "a multipart answer says its boundary");
    }
  }
}

}  // namespace mediagate::fuzz
