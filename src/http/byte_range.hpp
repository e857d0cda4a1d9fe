#pragma once
// Byte ranges of a representation (RFC 9110 §14.1.2): parsing the Range header against a known size.
#include <cstddef>
#include <cstdint>
#include <optional>
#include <string_view>
#include <vector>

namespace mediagate::http {

// An inclusive byte range [first, last] of a representation; never empty once planned.
struct byte_range {
  std::uint64_t first = 0;
  std::uint64_t last = 0;
  std::uint64_t length() const { return last - first + 1; }
  friend bool operator==(const byte_range&, const byte_range&) = default;
};

enum class range_outcome {
  none,             // no Range header, or one that must be ignored: send the whole representation (200)
  satisfiable,      // one or more ranges to send (206)
  not_satisfiable,  // every range starts at or past the end (416 with Content-Range: bytes */size)
};

struct range_result {
  range_outcome outcome = range_outcome::none;
  std::vector<byte_range> ranges;  // sorted as requested, clamped to the size; only for satisfiable
};

struct range_limits {
  std::size_t max_ranges = 16;  // more ranges than this: send the whole representation instead
};

// Parses a Range header value against a representation of `size` bytes. Never throws on any input.
// Malformed headers, unknown units and overflowing numbers are ignored (200); overlapping ranges, ranges
// whose sum exceeds the size and too many ranges are answered with the whole representation (200) so that
// a request never amplifies into more bytes than the object (RFC 9110 §14.2, "Range" security notes).
range_result parse_range(std::string_view header, std::uint64_t size, const range_limits& limits = {});

// The one range of a Range header of the form bytes=first-last or bytes=first- (last empty), read before
// the size is known (to start fetching it together with the metadata); nullopt for anything else: several
// ranges, a suffix range, another unit, invalid syntax. The plan still decides what is sent.
struct range_spec_hint {
  std::uint64_t first = 0;
  std::optional<std::uint64_t> last;
};
std::optional<range_spec_hint> single_range_spec(std::string_view header);

// What parse_range gives for the header `hint` came from, once the size is known: the caller that read the
// hint needs no second parse of the header. Equal to parse_range for every header single_range_spec accepts.
range_result range_of_spec(const range_spec_hint& hint, std::uint64_t size, const range_limits& limits = {});

// A 206's Content-Range, "bytes FIRST-LAST/SIZE" → {FIRST, LAST, SIZE}; nullopt for anything else (an unknown
// size, "*", a last before the first or past the size included).
struct content_range {
  std::uint64_t first = 0, last = 0, size = 0;
};
std::optional<content_range> parse_content_range(std::string_view value);

}  // namespace mediagate::http
