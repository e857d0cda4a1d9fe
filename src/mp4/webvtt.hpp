#pragma once
// Subtitle tracks as WebVTT (W3C WebVTT; RFC 8216 §3.1.4 for HLS segments): `tx3g` (3GPP TS 26.245, ffmpeg's
// mov_text) and `wvtt` (ISO/IEC 14496-30) samples decoded to cues, and the WebVTT files that the HLS subtitle
// playlist (one per video segment, cut at the same times) and the DASH manifest (one whole file) name.
// Sample bytes are untrusted: bad lengths, invalid UTF-8, "-->" or blank lines inside the text and huge cues
// all give a clean file (replaced, escaped or cut), never an error.
#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "mp4/bytes.hpp"
#include "mp4/movie.hpp"
#include "mp4/segments.hpp"

namespace mediagate::mp4 {

// At most this many bytes of a text sample are read and decoded (a cue of 16 KiB of text is already absurd).
inline constexpr std::uint32_t kMaxTextSampleRead = 64 * 1024;
inline constexpr std::size_t kMaxCueText = 16 * 1024;

struct cue_text {
  std::string settings;  // wvtt's cue settings ("line:0 align:start"), checked; empty for tx3g
  std::string text;      // WebVTT cue text, sanitized (vtt_cue_text)
};

// The cues of one sample (`data`: its first bytes, up to kMaxTextSampleRead). tx3g: a 16-bit length, then the
// text (UTF-8, or UTF-16 after a byte order mark), then style boxes (ignored); a length past the sample is
// cut to it. wvtt: its vttc boxes (payl: the text, sttg: the settings); vtte, an empty sample. No cue: a gap.
std::vector<cue_text> decode_text_sample(std::string_view format, bytes data);

// `s` made safe as WebVTT cue text: valid UTF-8 (each bad byte becomes U+FFFD, as NUL does), line ends as
// "\n", no blank or whitespace-only line (it would end the cue), at most kMaxCueText bytes (cut at a
// character boundary). escape_markup (tx3g's plain text): & < > become &amp; &lt; &gt;; otherwise (wvtt's cue
// text may carry markup) only '>' of a "-->" is escaped.
std::string vtt_cue_text(std::string_view s, bool escape_markup);

// "hh:mm:ss.mmm" of `ticks` in `timescale`, rounded to the millisecond.
std::string vtt_time(std::uint64_t ticks, std::uint32_t timescale);

// The samples of a subtitle track that one WebVTT file covers: [first, end), the first starting at
// `first_start` (its decode time in the track's ticks, without decode_offset).
struct text_span {
  std::uint32_t first = 0, end = 0;
  std::uint64_t first_start = 0;
};

// Segment n of subtitle track `t`, cut (cut_segments) at the leading track's times: the samples that start in
// it, and the one before when it lasts into it (a cue across a boundary is in both files; players drop the
// repeat).
text_span text_segment(const track& t, const track_cuts& cuts, const track& lead, const track_cuts& lead_cuts,
                       std::size_t n);
text_span whole_text(const track& t);

// The WebVTT file of `span`, `samples[i]` holding the first bytes of sample span.first + i. timestamp_map:
// an X-TIMESTAMP-MAP header that puts cue time 0 at media time 0 (the fragments' timeline, on which the cue
// times are given), for HLS segments.
std::string webvtt_file(const track& t, const text_span& span, const std::vector<std::string>& samples,
                        bool timestamp_map);

}  // namespace mediagate::mp4
