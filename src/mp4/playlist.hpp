#pragma once
// The manifests over one set of CMAF segments: HLS (RFC 8216, version 7: fMP4 with EXT-X-MAP) and, later,
// DASH. Segment URIs are relative: <track id>.m3u8 beside master.m3u8, <track id>/init.mp4 and <track
// id>/seg-<n>.m4s.
#include <string>

#include "mp4/movie.hpp"
#include "mp4/segments.hpp"

namespace mediagate::mp4 {

// The master playlist: one variant (the video track with the default audio), the audio tracks as EXT-X-MEDIA
// renditions. Audio-only movies get one variant per audio track.
std::string master_playlist(const movie& m, const segment_index& index);

// The media playlist of m.tracks[t].
std::string media_playlist(const movie& m, const segment_index& index, std::size_t t);

// The media playlist of subtitle track m.subtitles[sub]: <id>/seg-<n>.vtt, one WebVTT file per segment of the
// leading track, with its EXTINFs.
std::string subtitle_playlist(const movie& m, const segment_index& index, std::size_t sub);

// The DASH manifest (ISO/IEC 23009-1, static, isoff-live profile) over the same init and media segments: one
// AdaptationSet per track, SegmentTemplate with $Number$ and an exact SegmentTimeline; a subtitle track is
// one whole WebVTT file (<id>/whole.vtt, as a BaseURL), not segments: DASH players take a single text file.
std::string dash_manifest(const movie& m, const segment_index& index);

// EXT-X-TARGETDURATION: at least every EXTINF rounded to the nearest integer (RFC 8216 §4.3.3.1), at least 1.
unsigned target_duration(const track& t, const track_cuts& cuts);

// The peak bit rate of a track's segments, bits per second (for BANDWIDTH).
std::uint64_t peak_bitrate(const track& t, const track_cuts& cuts);

}  // namespace mediagate::mp4
