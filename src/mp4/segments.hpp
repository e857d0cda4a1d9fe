#pragma once
// Where segments start: the video track is cut at sync samples near every multiple of the target duration,
// and every other track at the same times, so that segment n of each track covers the same stretch of the
// movie.
#include <cstdint>
#include <vector>

#include "mp4/movie.hpp"

namespace mediagate::mp4 {

struct track_cuts {
  std::vector<std::uint32_t> first;  // first sample of each segment, then the sample count
  std::vector<std::uint64_t> dts;    // decode time of each of those (in the track's timescale)
  std::size_t segments() const { return first.empty() ? 0 : first.size() - 1; }
  double seconds(std::size_t n, std::uint32_t timescale) const {
    return double(dts[n + 1] - dts[n]) / timescale;
  }
};

struct segment_index {
  std::vector<track_cuts> tracks;     // parallel to movie::tracks
  std::vector<track_cuts> subtitles;  // parallel to movie::subtitles, cut at the same times
  std::size_t lead = 0;               // the track whose sync samples set the cuts
};

// target_ms: the wanted segment length (a segment is longer when no sync sample comes sooner).
segment_index cut_segments(const movie& m, std::uint32_t target_ms);

// A media segment's byte runs in the file (adjacent samples merged) and its payload size.
struct byte_run {
  std::uint64_t offset = 0;
  std::uint64_t length = 0;
};
std::vector<byte_run> sample_runs(const track& t, std::uint32_t first, std::uint32_t end);

}  // namespace mediagate::mp4
