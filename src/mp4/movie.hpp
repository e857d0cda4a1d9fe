#pragma once
// A movie's sample index: what `moov` says about each playable track (ISO/IEC 14496-12 §8), in a compact
// per-sample table built once per object version and kept in memory by the HLS handler.
#include <cstdint>
#include <string>
#include <vector>

#include "common/result.hpp"
#include "mp4/bytes.hpp"

namespace mediagate::mp4 {

enum class track_kind { video, audio, subtitle };

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
  std::string format;  // the sample entry's type: avc1, avc3, hvc1, hev1, mp4a; tx3g, wvtt (subtitles)
  std::string codecs;  // RFC 6381 codecs parameter: avc1.64001f, mp4a.40.2, ...
  std::uint32_t timescale = 0;
  std::string language = "und";
  std::uint32_t width = 0, height = 0;          // video, from the sample entry
  std::uint32_t sample_rate = 0, channels = 0;  // audio
  // Boxes copied verbatim into the init segment (not edts: the edit list is applied in the fragments).
  std::string tkhd, mdhd, hdlr, media_header /* vmhd or smhd */, dinf, stsd;
  std::vector<sample> samples;
  std::uint64_t total_duration = 0;  // sum of the sample durations
  // The edit list (elst), reduced to what it does at the start: empty edits delay the media by `edit_delay`
  // (movie timescale), and the first media edit starts playing at `edit_media_start` (track timescale).
  std::uint64_t edit_delay = 0;
  std::uint64_t edit_media_start = 0;
  // How the fragments apply it (see apply_edit_lists): every tfdt is the decode time plus `decode_offset`,
  // every trun composition offset is the sample's cts minus `cts_shift`.
  std::uint64_t decode_offset = 0;
  std::int64_t cts_shift = 0;
};

struct movie {
  std::string mvhd;              // copied into every init segment
  std::uint32_t timescale = 0;   // mvhd's
  std::vector<track> tracks;     // the playable ones, in file order
  std::vector<track> subtitles;  // tx3g and wvtt tracks (served as WebVTT, see webvtt.hpp), in file order
};

struct parse_limits {
  std::uint64_t max_samples = 20'000'000;     // per track (a 2-hour 60 fps video has 432,000)
  std::uint64_t max_sample_size = 64u << 20;  // one frame larger than this is not a frame
  std::uint64_t max_text_samples = 100'000;   // per subtitle track (cues); a track with more is not offered
};

// Parses a complete `moov` box's payload. `file_size` bounds every sample's offset and size. Errors: 415 for
// media we do not repackage (no H.264/H.265/AAC track, fragmented input), 422 for an inconsistent index.
result<movie> parse_movie(bytes moov_payload, std::uint64_t file_size, const parse_limits& limits = {});

// Sets every track's decode_offset and cts_shift from its edit list (parse_movie calls it). Why in the
// fragments and not as an edts in the init segment: hls.js ignores elst (it places segments by tfdt), MSE
// implementations differ (Chromium applies one edit's media_time, others none), and ffmpeg's fMP4 reader
// applies it only partly (no skip of the AAC priming). So the fragments carry the edited timeline itself:
// - a track with composition offsets (video with B-frames, where the muxer's media_time is the first frame's
//   composition offset) gets its media_time subtracted from every composition offset (trun version 1,
//   signed), so that its first frame is presented at 0 while tfdt stays the decode time;
// - a track without (AAC, whose media_time is the encoder's priming, 1024 or 2112 samples) gets the shift in
//   tfdt instead; tfdt cannot be negative, so when some track would start before 0 (priming) every track is
//   moved later by that amount (less than one audio frame), keeping audio and video in sync;
// - empty edits (a delayed start) add their duration to tfdt.
// Later edits (several media edits, rates other than 1) are not applied: the whole media plays from there.
void apply_edit_lists(movie& m);

}  // namespace mediagate::mp4
