#include "cache/slice_math.hpp"

#include <algorithm>

namespace mediagate::cache {

slice_span slices_for(const http::byte_range& r, std::uint64_t slice_bytes) {
  return {r.first / slice_bytes, r.last / slice_bytes};
}

http::byte_range slice_bounds(std::uint64_t index, std::uint64_t size, std::uint64_t slice_bytes) {
  const std::uint64_t first = index * slice_bytes;
  return {first, first + std::min(size - first, slice_bytes) - 1};  // no overflow near 2^64
}

std::uint64_t slice_count(std::uint64_t size, std::uint64_t slice_bytes) {
  return size / slice_bytes + (size % slice_bytes != 0);
}

}  // namespace mediagate::cache
