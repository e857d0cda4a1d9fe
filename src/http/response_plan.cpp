#include "http/response_plan.hpp"

#include <charconv>
#include <cstring>

#include "http/http_date.hpp"

namespace mediagate::http {
namespace {

// A number's digits without a string.
struct decimal_text {
  char digits[20];  // 20 digits hold any uint64
  std::size_t size = 0;
  std::string_view view() const { return {digits, size}; }
};
decimal_text decimal(std::uint64_t value) {
  decimal_text out;
  out.size = static_cast<std::size_t>(std::to_chars(out.digits, out.digits + sizeof out.digits, value).ptr -
                                      out.digits);
  return out;
}

// "bytes first-last/size", in a fixed buffer.
struct content_range_text {
  char chars[6 + 3 * 20 + 2];
  std::size_t size = 0;
  std::string_view view() const { return {chars, size}; }
};
content_range_text content_range_field(const byte_range& r, std::uint64_t size) {
  content_range_text out;
  char* p = out.chars;
  std::memcpy(p, "bytes ", 6);
  p = std::to_chars(p + 6, out.chars + sizeof out.chars, r.first).ptr;
  *p++ = '-';
  p = std::to_chars(p, out.chars + sizeof out.chars, r.last).ptr;
  *p++ = '/';
  p = std::to_chars(p, out.chars + sizeof out.chars, size).ptr;
  out.size = static_cast<std::size_t>(p - out.chars);
  return out;
}

// Validators and caching headers, sent on every outcome including 304 (RFC 9110 §15.4.5).
void add_validators(header_list& h, const representation& rep, const plan_options& opts) {
  h.emplace_back("ETag", rep.etag);
  h.emplace_back("Last-Modified", http_date(rep.last_modified).view());
  if (!opts.cache_control.empty()) h.emplace_back("Cache-Control", opts.cache_control);
  h.emplace_back("Accept-Ranges", "bytes");
}

response_plan text_response(unsigned status, std::string text, response_plan plan, bool send_body) {
  plan.status = status;
  plan.headers.emplace_back("Content-Type", "text/plain; charset=utf-8");
  plan.content_length = text.size();
  plan.headers.emplace_back("Content-Length", decimal(text.size()).view());
  if (send_body) plan.body.push_back({std::move(text), std::nullopt});
  return plan;
}

}  // namespace

std::string multipart_part_header(std::string_view boundary, std::string_view content_type,
                                  const byte_range& r, std::uint64_t size, bool first) {
  std::string s = first ? "" : "\r\n";
  s.append("--").append(boundary).append("\r\n");
  if (!content_type.empty()) s.append("Content-Type: ").append(content_type).append("\r\n");
  s.append("Content-Range: ").append(content_range_field(r, size).view()).append("\r\n\r\n");
  return s;
}

std::string multipart_trailer(std::string_view boundary) {
  return std::string("\r\n--").append(boundary).append("--\r\n");
}

response_plan plan_response(const request_view& req, const representation& rep, const plan_options& opts) {
  const bool send_body = req.m != method::head;
  response_plan plan;
  plan.headers.reserve(512);  // room for the fields callers add (media: up to three more)
  add_validators(plan.headers, rep, opts);
  const validators v{rep.etag, rep.last_modified};

  switch (evaluate_preconditions(req.m, req.conditions, v)) {
    case precondition_outcome::not_modified:
      plan.status = 304;  // no body, no Content-Length: the 200's headers would describe another message
      return plan;
    case precondition_outcome::precondition_failed:
      return text_response(412, "precondition failed: the object does not match the request's conditions\n",
                           std::move(plan), send_body);
    case precondition_outcome::proceed:
      break;
  }

  range_result ranges;
  // Range applies to GET only (RFC 9110 §14.2), and If-Range can veto it (§13.1.5).
  if (req.m == method::get && req.range && if_range_allows_range(req.conditions.if_range, v))
    ranges = req.single_range ? range_of_spec(*req.single_range, rep.size, opts.limits)
                              : parse_range(*req.range, rep.size, opts.limits);

  if (ranges.outcome == range_outcome::not_satisfiable) {
    plan.headers.emplace_back("Content-Range", "bytes */" + std::to_string(rep.size));
    return text_response(416,
                         "range not satisfiable: the object is " + std::to_string(rep.size) + " bytes long\n",
                         std::move(plan), send_body);
  }

  if (!rep.content_type.empty()) plan.headers.emplace_back("Content-Type", rep.content_type);

  if (ranges.outcome == range_outcome::none) {
    plan.status = 200;
    plan.content_length = rep.size;
    if (send_body && rep.size > 0) plan.body.push_back({{}, byte_range{0, rep.size - 1}});
  } else if (ranges.ranges.size() == 1) {
    const auto& r = ranges.ranges.front();
    plan.status = 206;
    plan.content_length = r.length();
    plan.headers.emplace_back("Content-Range", content_range_field(r, rep.size).view());
    if (send_body) plan.body.push_back({{}, r});
  } else {
    plan.status = 206;
    // The part headers carry the representation's type; the message's type is multipart (§14.6).
    plan.headers.set("Content-Type", "multipart/byteranges; boundary=" + std::string(opts.boundary));
    bool first = true;
    for (const auto& r : ranges.ranges) {
      auto head = multipart_part_header(opts.boundary, rep.content_type, r, rep.size, first);
      plan.content_length += head.size() + r.length();
      plan.body.push_back({std::move(head), r});
      first = false;
    }
    auto trailer = multipart_trailer(opts.boundary);
    plan.content_length += trailer.size();
    plan.body.push_back({std::move(trailer), std::nullopt});
  }
  if (!send_body) plan.body.clear();
  plan.headers.emplace_back("Content-Length", decimal(plan.content_length).view());
  return plan;
}

}  // namespace mediagate::http
