#pragma once
// What ffprobe says about a media file, and posters made with ffmpeg. Both programs read the media over
// HTTP from the server itself (ranges work, so MP4 with `moov` at the end costs a few requests, not the
// whole file), which works the same for local and S3 storage and goes through the server's cache.
#include <chrono>
#include <optional>
#include <string>
#include <string_view>

#include "catalog/process.hpp"

namespace mediagate::catalog {

struct probe_info {
  std::optional<double> duration;  // seconds
  std::optional<int> width, height;
  bool has_video = false;  // a real video stream (cover art in audio files does not count)
  bool has_audio = false;
};

// Parses `ffprobe -print_format json -show_format -show_streams` output; nullopt when it is not that.
std::optional<probe_info> parse_ffprobe_json(std::string_view json);

struct probe_tools {
  std::string ffprobe = "ffprobe";
  std::string ffmpeg = "ffmpeg";
  std::chrono::milliseconds timeout{60'000};
};

// Probes the media at `input` (URL or path). An error message when ffprobe failed.
std::optional<probe_info> probe_media(const probe_tools& tools, const std::string& input, std::string& error);

// One JPEG frame of the video at `input`, `at` seconds in, at most 480 pixels wide; empty on failure.
std::string make_poster(const probe_tools& tools, const std::string& input, double at, std::string& error);

}  // namespace mediagate::catalog
