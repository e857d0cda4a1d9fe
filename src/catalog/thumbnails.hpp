#pragma once
// Seek thumbnails of a video: small frames at regular times, made once per item at probe time into a few
// JPEG sprites (one row of frames each), and the WebVTT track that maps each stretch of time to its tile
// (`thumbs-R.jpg#xywh=X,Y,W,H`, the convention players and the web page read). Everything here is pure; the
// frames come from ffmpeg (probe.cpp).
#include <cstddef>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "catalog/probe.hpp"

namespace mediagate::catalog {

struct thumbnail_plan {
  double duration = 0;  // seconds, as probed
  double interval = 0;  // seconds between two frames: one tile per [i * interval, (i + 1) * interval)
  std::size_t count = 0;
  static constexpr std::size_t per_row = 10;      // tiles per sprite
  static constexpr int width = 160, height = 90;  // every tile, the frame letterboxed into it

  std::size_t rows() const { return (count + per_row - 1) / per_row; }
  // Where tile i's stretch ends (it starts at i * interval): the next tile's start, the duration for the
  // last.
  double end_of(std::size_t i) const;
  // The times of the frames of sprite `row`: the middle of each of its tiles' stretches.
  std::vector<double> times(std::size_t row) const;
};

// At most kMaxThumbnails tiles, at least 2 s apart, the last one at least a second long (else it joins the
// one before); none for a duration that is unknown, not positive or absurd (over 100 hours).
inline constexpr std::size_t kMaxThumbnails = 60;
std::optional<thumbnail_plan> plan_thumbnails(std::optional<double> duration);

// The storage key of sprite `row` of item `id` (under the posters' hidden prefix).
std::string thumbnail_key(std::string_view id, std::size_t row);

// The WebVTT track: cue i from i * interval to the next (the last to the duration), its text the sprite's
// URL (`prefix` + "thumbs-R.jpg" + `query`) with the tile's #xywh.
std::string thumbnails_vtt(const thumbnail_plan& plan, std::string_view prefix, std::string_view query);

// ffmpeg's command line for one sprite: each time is a separate input opened with a seek (ranged reads, not a
// decode from the start), with the same protocol and format limits as the poster; one frame of each,
// letterboxed to the tile size, stacked side by side into `output` (JPEG).
std::vector<std::string> thumbnail_row_args(const probe_tools& tools, const std::string& input,
                                            std::string_view format, const std::vector<double>& times,
                                            const std::string& output);

}  // namespace mediagate::catalog
