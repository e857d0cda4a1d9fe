// The response planner with every precondition and Range header (plan_check.hpp), and the pieces it rests on:
// HTTP-dates (what we format we parse back; what we parse formats back to the same instant) and entity-tag
// lists (every member is a quoted opaque-tag; a strong match is also a weak one).
#include <algorithm>
#include <string>

#include "byte_reader.hpp"
#include "fuzz_check.hpp"
#include "http/entity_tag.hpp"
#include "http/http_date.hpp"
#include "plan_check.hpp"

using namespace mediagate::http;

namespace {

constexpr std::int64_t kYear0 = -62167219200, kYear9999End = 253402300799;  // what IMF-fixdate can say

// A conditional field: absent, the fuzzer's bytes, the current ETag (weak or not), or a date near
// Last-Modified, so that matching values are reached as often as mismatching ones.
std::optional<std::string> pick_field(mediagate::fuzz::byte_reader& in, const std::string& etag,
                                      std::int64_t modified) {
  const auto kind = in.number<std::uint8_t>() % 6;
  const auto text = in.string();
  switch (kind) {
    case 0:
      return std::nullopt;
    case 1:
      return std::string(text);
    case 2:
      return etag;
    case 3:
      return "W/" + etag;
    case 4:
      return std::string(text) + ", " + etag;
    default: {
      const auto near = std::clamp(modified, kYear0 + 2, kYear9999End - 2);
      return format_http_date(near + static_cast<std::int8_t>(text.empty() ? 0 : text[0]) % 3);
    }
  }
}

void check_date(std::string_view text, std::int64_t instant) {
  if (auto parsed = parse_http_date(text)) {
    FUZZ_CHECK(*parsed >= kYear0 && *parsed <= kYear9999End, "a parsed date has a four-digit year");
    FUZZ_CHECK(parse_http_date(format_http_date(*parsed)) == parsed, "a parsed date formats back to itself");
  }
  (void)parse_iso8601_utc(text);
  instant = std::clamp(instant, kYear0, kYear9999End);
  const auto formatted = format_http_date(instant);
  FUZZ_CHECK(formatted.size() == 29, "IMF-fixdate is 29 bytes");
  FUZZ_CHECK(parse_http_date(formatted) == instant, "a formatted date parses back to itself");
}

void check_tags(std::string_view field) {
  const auto tags = parse_entity_tags(field);
  if (!tags) return;
  for (const auto& tag : *tags) {
    FUZZ_CHECK(tag.opaque.size() >= 2 && tag.opaque.front() == '"' && tag.opaque.back() == '"',
               "quoted opaque-tag");
    const auto again = parse_entity_tag(tag.opaque);
    FUZZ_CHECK(again && !again->weak && again->opaque == tag.opaque, "an opaque-tag is an entity tag");
    for (const auto& other : *tags) {
      FUZZ_CHECK(!strong_match(tag, other) || weak_match(tag, other), "strong match implies weak match");
      FUZZ_CHECK(weak_match(tag, other) == weak_match(other, tag), "weak match is symmetric");
    }
  }
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  mediagate::fuzz::byte_reader in(data, size);
  request_view req;
  req.m = static_cast<method>(in.number<std::uint8_t>() % 3);
  const auto object_size =
      in.number<std::uint8_t>() % 2 ? in.number<std::uint16_t>() : in.number<std::uint64_t>();
  const auto modified = in.number<std::int64_t>();
  const auto raw_etag = in.string();
  // Stored ETags are strong and quoted; the fuzzer's bytes are taken as they are one time in four.
  const std::string etag =
      in.number<std::uint8_t>() % 4 ? "\"" + std::string(raw_etag) + "\"" : std::string(raw_etag);
  const auto content_type = in.string();
  const auto range = in.flag() ? std::optional<std::string>(in.string()) : std::nullopt;
  const auto if_match = pick_field(in, etag, modified), if_none_match = pick_field(in, etag, modified),
             if_modified_since = pick_field(in, etag, modified),
             if_unmodified_since = pick_field(in, etag, modified), if_range = pick_field(in, etag, modified);
  plan_options opts;
  opts.limits.max_ranges = in.in_range(1, 20);
  const auto rest = in.remaining();

  auto view = [](const std::optional<std::string>& v) {
    return v ? std::optional<std::string_view>(*v) : std::nullopt;
  };
  req.range = view(range);
  req.conditions = {view(if_match), view(if_none_match), view(if_modified_since), view(if_unmodified_since),
                    view(if_range)};
  const representation rep{object_size, etag, modified, content_type};
  const auto plan = plan_response(req, rep, opts);
  mediagate::fuzz::check_plan(req, rep, opts, plan);

  // A strong ETag listed in If-Match never fails the request by itself.
  if (parse_entity_tag(etag) && !parse_entity_tag(etag)->weak && if_match == etag)
    FUZZ_CHECK(
        evaluate_preconditions(req.m, {if_match, std::nullopt, std::nullopt, std::nullopt, std::nullopt},
                               {etag, modified}) == precondition_outcome::proceed,
        "If-Match of the current strong ETag passes");

  check_date(rest, modified);
  check_tags(rest);
  return 0;
}
