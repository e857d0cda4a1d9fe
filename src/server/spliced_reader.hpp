#pragma once
// A generated resource whose body is literal bytes followed by byte runs of a stored object (an HLS media
// segment: moof, then its samples where they lie in the MP4). Any range of it is read with bounded memory:
// the literal part from memory, each run through storage (and so through the slice cache) as one ranged read.
#include <cstdint>
#include <memory>
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
  std::uint64_t size() const;
};

// A reader of `range` of the resource laid out by `layout`, whose runs are read from `key` at version `meta`.
// Runs separated by at most `max_gap` bytes are read with one storage request (the gap read and dropped).
std::unique_ptr<storage::range_reader> make_spliced_reader(storage::storage& store, std::string key,
                                                           storage::object_meta meta,
                                                           std::shared_ptr<const spliced_layout> layout,
                                                           http::byte_range range, std::uint64_t max_gap);

}  // namespace mediagate::server
