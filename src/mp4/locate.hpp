#pragma once
// Finding `moov` with ranged reads of box headers only (never reading mdat): the caller reads some bytes at
// an offset, and this says where moov is or where to read next. Fast-start files need one read, moov-at-end
// ones one more at the end of mdat.
#include <cstdint>
#include <optional>

#include "common/result.hpp"
#include "mp4/bytes.hpp"

namespace mediagate::mp4 {

struct moov_location {
  std::uint64_t offset = 0;  // of the box header
  std::uint64_t size = 0;    // the whole box
  std::uint64_t header = 8;
};

struct locate_step {
  std::optional<moov_location> found;
  std::uint64_t next_read = 0;  // when not found: read from here
};

// `data` holds the file's bytes from `at` on (any amount). 415 for a file that is not ISO BMFF (WebM, ...) or
// is fragmented; 422 for sizes past the end or no moov. max_moov bounds the index we agree to read.
result<locate_step> locate_moov(bytes data, std::uint64_t at, std::uint64_t file_size,
                                std::uint64_t max_moov);

}  // namespace mediagate::mp4
