#include "cache/slice_math.hpp"

#include <gtest/gtest.h>

#include <cstdint>
#include <limits>
#include <ostream>

#include "printers.hpp"

namespace mediagate::cache {
namespace {

using http::byte_range;

constexpr std::uint64_t kMiB = 1ull << 20;
constexpr std::uint64_t kMax = std::numeric_limits<std::uint64_t>::max();

struct span_case {
  byte_range range;
  std::uint64_t slice_bytes;
  std::uint64_t first, last;
};

class slices_for_test : public testing::TestWithParam<span_case> {};

TEST_P(slices_for_test, covers_exactly_the_touched_slices) {
  const auto& c = GetParam();
  const auto s = slices_for(c.range, c.slice_bytes);
  EXPECT_EQ(s.first, c.first) << c.range.first << "-" << c.range.last << " / " << c.slice_bytes;
  EXPECT_EQ(s.last, c.last) << c.range.first << "-" << c.range.last << " / " << c.slice_bytes;
}

INSTANTIATE_TEST_SUITE_P(
    edges, slices_for_test,
    testing::Values(span_case{{0, 0}, 16, 0, 0},              // one byte at the start
                    span_case{{5, 10}, 16, 0, 0},             // inside one slice
                    span_case{{0, 15}, 16, 0, 0},             // exactly one slice
                    span_case{{15, 15}, 16, 0, 0},            // last byte of a slice
                    span_case{{16, 16}, 16, 1, 1},            // first byte of the next
                    span_case{{15, 16}, 16, 0, 1},            // two bytes across an edge
                    span_case{{16, 31}, 16, 1, 1},            // aligned slice
                    span_case{{16, 32}, 16, 1, 2},            // one byte into the following slice
                    span_case{{1, 47}, 16, 0, 2},             // three slices, both ends unaligned
                    span_case{{0, 65535}, kMiB, 0, 0},        // Safari's second request
                    span_case{{kMiB - 1, kMiB}, kMiB, 0, 1},  // two bytes across the first 1 MiB edge
                    span_case{{3 * kMiB, 5 * kMiB - 1}, kMiB, 3, 4},
                    span_case{{7, 9}, 1, 7, 9}));  // one-byte slices

TEST(slice_math, slice_count_rounds_up) {
  EXPECT_EQ(slice_count(0, 16), 0u);  // an empty object has no slices
  EXPECT_EQ(slice_count(1, 16), 1u);
  EXPECT_EQ(slice_count(15, 16), 1u);
  EXPECT_EQ(slice_count(16, 16), 1u);
  EXPECT_EQ(slice_count(17, 16), 2u);
  EXPECT_EQ(slice_count(100 * kMiB, kMiB), 100u);
  EXPECT_EQ(slice_count(100 * kMiB + 1, kMiB), 101u);
  EXPECT_EQ(slice_count(5, 1), 5u);
}

TEST(slice_math, slice_bounds_full_slices_and_a_partial_last_one) {
  // 40 bytes in 16-byte slices: 0-15, 16-31, 32-39.
  EXPECT_EQ(slice_bounds(0, 40, 16), (byte_range{0, 15}));
  EXPECT_EQ(slice_bounds(1, 40, 16), (byte_range{16, 31}));
  EXPECT_EQ(slice_bounds(2, 40, 16), (byte_range{32, 39}));
  EXPECT_EQ(slice_bounds(2, 40, 16).length(), 8u);
}

TEST(slice_math, slice_bounds_when_the_size_is_a_multiple_of_the_slice) {
  EXPECT_EQ(slice_count(48, 16), 3u);
  EXPECT_EQ(slice_bounds(2, 48, 16), (byte_range{32, 47}));
  EXPECT_EQ(slice_bounds(2, 48, 16).length(), 16u);
}

TEST(slice_math, last_slice_of_one_byte) {
  EXPECT_EQ(slice_count(33, 16), 3u);
  EXPECT_EQ(slice_bounds(2, 33, 16), (byte_range{32, 32}));
  EXPECT_EQ(slices_for({32, 32}, 16).first, 2u);
}

TEST(slice_math, single_byte_object) {
  EXPECT_EQ(slice_count(1, kMiB), 1u);
  EXPECT_EQ(slice_bounds(0, 1, kMiB), (byte_range{0, 0}));
  const auto s = slices_for({0, 0}, kMiB);
  EXPECT_EQ(s.first, 0u);
  EXPECT_EQ(s.last, 0u);
}

TEST(slice_math, object_smaller_than_one_slice) {
  EXPECT_EQ(slice_count(3 * kMiB, 64 * kMiB), 1u);
  EXPECT_EQ(slice_bounds(0, 3 * kMiB, 64 * kMiB), (byte_range{0, 3 * kMiB - 1}));
}

TEST(slice_math, slices_tile_the_object_without_gaps_or_overlap) {
  for (std::uint64_t size : {1ull, 15ull, 16ull, 17ull, 100ull, 1000ull}) {
    for (std::uint64_t slice : {1ull, 3ull, 16ull, 64ull, 4096ull}) {
      const auto n = slice_count(size, slice);
      std::uint64_t next = 0;
      for (std::uint64_t i = 0; i < n; ++i) {
        const auto b = slice_bounds(i, size, slice);
        ASSERT_EQ(b.first, next) << "size " << size << " slice " << slice << " index " << i;
        ASSERT_LE(b.length(), slice);
        ASSERT_EQ(slices_for(b, slice).first, i);
        ASSERT_EQ(slices_for(b, slice).last, i);
        next = b.last + 1;
      }
      EXPECT_EQ(next, size) << "size " << size << " slice " << slice;
    }
  }
}

TEST(slice_math, huge_offsets) {
  // S3's largest object, 5 TiB, in 1 MiB slices.
  constexpr std::uint64_t size = 5ull << 40;
  EXPECT_EQ(slice_count(size, kMiB), 5ull << 20);
  const auto last = slice_count(size, kMiB) - 1;
  EXPECT_EQ(slice_bounds(last, size, kMiB), (byte_range{size - kMiB, size - 1}));
  const auto s = slices_for({size - 2, size - 1}, kMiB);
  EXPECT_EQ(s.first, last);
  EXPECT_EQ(s.last, last);
  // Ranges near the top of the 64-bit space.
  const auto top = slices_for({kMax - 1, kMax}, kMiB);
  EXPECT_EQ(top.first, kMax / kMiB);
  EXPECT_EQ(top.last, kMax / kMiB);
  EXPECT_EQ(slices_for({0, kMax}, kMiB).last, kMax / kMiB);
  EXPECT_EQ(slice_count(kMax, kMiB), (kMax / kMiB) + 1);
  EXPECT_EQ(slice_count(kMax, 1), kMax);
}

TEST(slice_math, huge_last_slice_does_not_overflow) {
  // The last slice of the largest representable object ends at its last byte, kMax - 1; computing
  // first + slice_bytes there wraps around to 0.
  const auto last = slice_count(kMax, kMiB) - 1;
  EXPECT_EQ(slice_bounds(last, kMax, kMiB), (byte_range{(kMax / kMiB) * kMiB, kMax - 1}));
  EXPECT_EQ(slice_bounds(last - 1, kMax, kMiB),
            (byte_range{(kMax / kMiB - 1) * kMiB, (kMax / kMiB) * kMiB - 1}));
}

}  // namespace
}  // namespace mediagate::cache
