#pragma once
// Aligned slices of an object: which slices a byte range touches and where each slice lies. Pure.
#include <cstdint>

#include "http/byte_range.hpp"

namespace mediagate::cache {

struct slice_span {
  std::uint64_t first = 0;  // index of the first slice touched
  std::uint64_t last = 0;   // index of the last slice touched (inclusive)
};

// The slices that cover `r` in an object cut into slices of `slice_bytes` (> 0). `r` must be non-empty.
slice_span slices_for(const http::byte_range& r, std::uint64_t slice_bytes);

// The bytes of slice `index` of an object of `size` bytes: every slice is full but possibly the last.
// Requires index < slice_count(size, slice_bytes).
http::byte_range slice_bounds(std::uint64_t index, std::uint64_t size, std::uint64_t slice_bytes);

std::uint64_t slice_count(std::uint64_t size, std::uint64_t slice_bytes);

}  // namespace mediagate::cache
