#pragma once
// A movie's sample index: what `moov` says about each playable track (ISO/IEC 14496-12 §8), in a compact
// per-sample table built once per object version and kept in memory by the HLS handler.
#include <cstdint>
#include <string>
#include <vector>

#include "common/result.hpp"
#include "mp4/bytes.hpp"

namespace mediagate::mp4 {

enum class track_kind { video, audio };

struct sample {
  std::uint64_t offset = 0;  // in the file
  std::uint32_t size = 0;
  std::uint32_t duration = 0;  // in the track's timescale
  std::int32_t cts = 0;        // composition offset (ctts)
  bool sync = false;
};

struct track {
  std::uint32_t id = 0;
  track_kind kind = track_kind::video;
  std::string format;  // the sample entry's type: avc1, avc3, hvc1, hev1, mp4a
  std::string codecs;  // RFC 6381 codecs parameter: avc1.64001f, mp4a.40.2, ...
  std::uint32_t timescale = 0;
  std::string language = "und";
  std::uint32_t width = 0, height = 0;          // video, from the sample entry
  std::uint32_t sample_rate = 0, channels = 0;  // audio
  // Boxes copied verbatim into the init segment.
  std::string tkhd, edts, mdhd, hdlr, media_header /* vmhd or smhd */, dinf, stsd;
  std::vector<sample> samples;
  std::uint64_t total_duration = 0;  // sum of the sample durations
};

struct movie {
  std::string mvhd;             // copied into every init segment
  std::uint32_t timescale = 0;  // mvhd's
  std::vector<track> tracks;    // the playable ones, in file order
};

struct parse_limits {
  std::uint64_t max_samples = 20'000'000;     // per track (a 2-hour 60 fps video has 432,000)
  std::uint64_t max_sample_size = 64u << 20;  // one frame larger than this is not a frame
};

// Parses a complete `moov` box's payload. `file_size` bounds every sample's offset and size. Errors: 415 for
// media we do not repackage (no H.264/H.265/AAC track, fragmented input), 422 for an inconsistent index.
result<movie> parse_movie(bytes moov_payload, std::uint64_t file_size, const parse_limits& limits = {});

}  // namespace mediagate::mp4
