// parse_range against a size: every range it returns lies within the object, a multi-range answer never
// amplifies (no overlap, no more bytes than the object), and printing the ranges back as a header parses to
// the same ranges. What single_range_spec reads of it gives the same answer through range_of_spec.
#include <algorithm>
#include <string>

#include "byte_reader.hpp"
#include "fuzz_check.hpp"
#include "http/byte_range.hpp"

using namespace mediagate::http;

namespace {

// Sizes near the interesting edges: tiny, 16-bit, any 64-bit, and just below 2^64.
std::uint64_t pick_size(mediagate::fuzz::byte_reader& in) {
  switch (in.number<std::uint8_t>() % 4) {
    case 0:
      return in.number<std::uint8_t>();
    case 1:
      return in.number<std::uint16_t>();
    case 2:
      return in.number<std::uint64_t>();
    default:
      return UINT64_MAX - in.number<std::uint8_t>();
  }
}

std::string print(const std::vector<byte_range>& ranges) {
  std::string out = "bytes=";
  for (const auto& r : ranges) {
    if (out.size() > 6) out += ',';
    out += std::to_string(r.first) + "-" + std::to_string(r.last);
  }
  return out;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  mediagate::fuzz::byte_reader in(data, size);
  const auto object_size = pick_size(in);
  range_limits limits;
  limits.max_ranges = in.in_range(1, 32);
  const auto header = in.remaining();

  const auto result = parse_range(header, object_size, limits);
  // The plan reuses the hint read before the size was known: it must answer as parsing the header again.
  if (const auto hint = single_range_spec(header)) {
    const auto again = range_of_spec(*hint, object_size, limits);
    FUZZ_CHECK(again.outcome == result.outcome, "range_of_spec's outcome is parse_range's");
    FUZZ_CHECK(again.ranges.size() == result.ranges.size() &&
                   std::equal(again.ranges.begin(), again.ranges.end(), result.ranges.begin(),
                              [](auto& a, auto& b) { return a.first == b.first && a.last == b.last; }),
               "range_of_spec's ranges are parse_range's");
  }
  switch (result.outcome) {
    case range_outcome::none:
      FUZZ_CHECK(result.ranges.empty(), "a 200 carries no ranges");
      return 0;
    case range_outcome::not_satisfiable:
      FUZZ_CHECK(result.ranges.empty(), "a 416 carries no ranges");
      FUZZ_CHECK(object_size > 0, "an empty object is answered 200, never 416");
      return 0;
    case range_outcome::satisfiable:
      break;
  }
  FUZZ_CHECK(!result.ranges.empty(), "a 206 has at least one range");
  FUZZ_CHECK(result.ranges.size() <= limits.max_ranges, "no more ranges than the limit");
  for (const auto& r : result.ranges) {
    FUZZ_CHECK(r.first <= r.last, "a range is never empty");
    FUZZ_CHECK(r.last < object_size, "a range lies within the object");
  }
  if (result.ranges.size() > 1) {
    auto sorted = result.ranges;
    std::sort(sorted.begin(), sorted.end(), [](auto& a, auto& b) { return a.first < b.first; });
    std::uint64_t total = 0;
    for (std::size_t i = 0; i < sorted.size(); ++i) {
      FUZZ_CHECK(i == 0 || sorted[i].first > sorted[i - 1].last, "multiple ranges never overlap");
      total += sorted[i].length();
    }
    FUZZ_CHECK(total <= object_size, "multiple ranges never send more than the object");
  }
  // The ranges as a canonical header are accepted as they are.
  const auto again = parse_range(print(result.ranges), object_size, limits);
  FUZZ_CHECK(again.outcome == range_outcome::satisfiable && again.ranges == result.ranges,
             "printed ranges parse back to themselves");
  return 0;
}
