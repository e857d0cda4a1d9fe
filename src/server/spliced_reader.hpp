#pragma once
// A generated resource whose body is literal bytes followed by byte runs of a stored object (an HLS media
// segment: moof, then its samples where they lie in the MP4). Any range of it is read with bounded memory:
// the literal part from memory, the runs (its payload) through storage::open_derived, so that a slice cache
// keeps the payload as it is served rather than the slices of the MP4 it lies in.
#include <cstdint>
#include <memory>
#include <span>
#include <string>
#include <vector>

#include "http/byte_range.hpp"
#include "storage/storage.hpp"

namespace mediagate::server {

struct spliced_layout {
  std::string head;
  struct run {
    std::uint64_t offset = 0;  // in the object
    std::uint64_t length = 0;
  };
  std::vector<run> runs;
  // Names the payload (the runs' bytes) for good, for a cache: it must change whenever they may (it holds
  // the object's ETag). Empty: the payload is never cached as such.
  std::string payload_name;
  std::uint64_t size() const;
};

// How the runs are read from storage.
struct run_read_options {
  // Runs at most this many bytes apart may be read with one request (the gap read and dropped)...
  std::uint64_t max_gap = 0;
  // ...as long as the gap bytes read stay within this share of the runs' bytes (the largest gaps are read
  // with separate requests first).
  double max_extra = 0.1;
  // Requests in flight at once: the one being streamed and those started ahead of it.
  std::size_t parallel = 1;
};

// Runs read with one request: runs[first..last] (and the gaps between them).
struct run_group {
  std::size_t first = 0;
  std::size_t last = 0;
  bool operator==(const run_group&) const = default;
};

// Groups consecutive runs into requests (pure): a run joins the one before it when it starts after it, at
// most max_gap bytes after its end; then, while the gap bytes in the groups exceed max_extra × the runs'
// bytes, the largest gap (the first of equal ones) is split off.
std::vector<run_group> group_runs(std::span<const spliced_layout::run> runs, const run_read_options& options);

// A reader of `range` of the resource laid out by `layout`, whose runs are read from `key` at version `meta`.
std::unique_ptr<storage::range_reader> make_spliced_reader(storage::storage& store, std::string key,
                                                           storage::object_meta meta,
                                                           std::shared_ptr<const spliced_layout> layout,
                                                           http::byte_range range, run_read_options options);

}  // namespace mediagate::server
