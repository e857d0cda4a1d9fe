#pragma once
// What ffprobe says about a media file, and posters made with ffmpeg. Both programs read the media over
// HTTP from the server itself (ranges work, so MP4 with `moov` at the end costs a few requests, not the
// whole file), which works the same for local and S3 storage and goes through the server's cache.
//
// The media are untrusted uploads, and FFmpeg follows references: an HLS or DASH playlist, a concat list or
// an SDP file makes it open other URLs from the server's network (server-side request forgery). So both
// programs may speak only the protocols that reading our own URL needs, and may open only the container
// formats of the media the library lists, none of which refers to other resources. A file of any other
// format fails to open and its item is marked as not probed, with the reason.
#include <chrono>
#include <cstddef>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "catalog/process.hpp"

namespace mediagate::catalog {

struct probe_info {
  std::optional<double> duration;  // seconds
  std::optional<int> width, height;
  bool has_video = false;  // a real video stream (cover art in audio files does not count)
  bool has_audio = false;
  std::string format;  // the demuxer that read it (first name of ffprobe's format_name): "mov", "matroska"
};

// Parses `ffprobe -print_format json -show_format -show_streams` output; nullopt when it is not that.
std::optional<probe_info> parse_ffprobe_json(std::string_view json);

struct probe_tools {
  std::string ffprobe = "ffprobe";
  std::string ffmpeg = "ffmpeg";
  // Per run of ffprobe or ffmpeg. A local file is probed in well under a second; what takes longer is
  // waiting on something, and that must not hold a worker for long.
  std::chrono::milliseconds timeout{20'000};
  std::size_t workers = 2;  // probes run in parallel by the library
};

// Protocols that reading `http://HOST:PORT/media/KEY` needs; nothing else (no file:, data:, subfile:,
// concat:, tee:, hls:, crypto:, udp:, rtp:, rtsp:, https:).
inline constexpr std::string_view kProbeProtocols = "http,tcp";

// Demuxers of the media the library lists (src/http/content_type.cpp), none of which opens another URL:
// MP4/MOV/3GP/HEIF (mov; its `dref` references stay off), Matroska/WebM, AVI, MPEG-TS and -PS, Ogg, MP3,
// AAC, FLAC, WAV, AIFF, CAF, and single images. Left out on purpose: hls, dash, concat, sdp, rtsp, imf,
// image2 (file name patterns), webm_dash_manifest, vobsub, and SVG (an image that can refer to others).
inline constexpr std::string_view kProbeFormats =
    "mov,matroska,avi,mpegts,mpeg,ogg,mp3,aac,flac,wav,aiff,caf,"
    "jpeg_pipe,png_pipe,apng,gif,webp_pipe,bmp_pipe,tiff_pipe,ico,jpegxl_pipe";

// True when `format` (a demuxer name) is one of kProbeFormats.
bool is_probe_format(std::string_view format);

// The demuxer that reads a still image of this content type ("image/jpeg" -> "jpeg_pipe"), or "" for anything
// else, which ffprobe recognises among kProbeFormats. Images need the choice made: ffprobe would pick image2
// for a ".jpg" URL (its extension scores higher than the JPEG bytes), and image2 expands file-name patterns.
std::string_view image_demuxer_for(std::string_view content_type);

// The command lines, built apart from running them so that tests can check every safety option. `format`:
// the demuxer to use, or "" to let ffprobe recognise one of kProbeFormats.
std::vector<std::string> ffprobe_args(const probe_tools& tools, const std::string& input,
                                      std::string_view format = {});
// `format` is the demuxer ffprobe found (probe_info::format): the poster is read with exactly that one.
std::vector<std::string> poster_args(const probe_tools& tools, const std::string& input,
                                     std::string_view format, double at, const std::string& output);

// Why a probe failed, in words for the API: not a format the library accepts, a reference to something
// else, a deadline, or what ffprobe said.
std::string probe_failure(const process_result& r, std::string_view what, std::chrono::milliseconds timeout);

// Probes the media at `input` (URL) of type `content_type`. An error message when ffprobe failed; `cancelled`
// is set when it was stopped by `cancel` (shutdown), which says nothing about the file.
std::optional<probe_info> probe_media(const probe_tools& tools, const std::string& input,
                                      std::string_view content_type, std::string& error,
                                      const process_canceller* cancel = nullptr, bool* cancelled = nullptr);

// One JPEG frame of the video at `input`, read with demuxer `format`, `at` seconds in, at most 480 pixels
// wide; empty on failure.
std::string make_poster(const probe_tools& tools, const std::string& input, std::string_view format,
                        double at, std::string& error, const process_canceller* cancel = nullptr);

// One sprite of seek thumbnails (thumbnails.hpp): a frame at each of `times`, side by side; empty on failure.
std::string make_thumbnail_row(const probe_tools& tools, const std::string& input, std::string_view format,
                               const std::vector<double>& times, std::string& error,
                               const process_canceller* cancel = nullptr);

}  // namespace mediagate::catalog
