#pragma once
// CMAF pieces of one track (ISO/IEC 23000-19, ISO/IEC 14496-12 §8.8): the init segment (ftyp + moov with
// mvex/trex and no samples) and each media segment's moof + mdat header. A media segment's size is known
// before any sample is read: its body is `head` followed by the samples' byte runs in the source file.
#include <cstdint>
#include <string>
#include <vector>

#include "mp4/movie.hpp"
#include "mp4/segments.hpp"

namespace mediagate::mp4 {

std::string init_segment(const movie& m, const track& t);

struct media_segment {
  std::string head;  // moof and the mdat header
  std::vector<byte_run> runs;
  std::uint64_t payload = 0;  // the samples' bytes
  std::uint64_t size() const { return head.size() + payload; }
};

// Segment `n` of track `t` (n < cuts.segments()).
media_segment make_media_segment(const track& t, const track_cuts& cuts, std::size_t n);

}  // namespace mediagate::mp4
