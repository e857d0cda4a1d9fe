// The ffprobe and ffmpeg command lines: every run is limited to reading our own URL with the demuxers of
// the media the library accepts, and failures get a reason a user can read.
#include <gtest/gtest.h>

#include <algorithm>
#include <string>
#include <vector>

#include "catalog/probe.hpp"

namespace mediagate::catalog {
namespace {

const std::string kInput = "http://127.0.0.1:8080/media/a%20b.mp4";

// The value after `option`, which must come before "-i"/the input (an input option), or "" when absent.
std::string input_option(const std::vector<std::string>& args, const std::string& option) {
  const auto input = std::find(args.begin(), args.end(), kInput);
  const auto it = std::find(args.begin(), input, option);
  return it == input || it + 1 == input ? "" : *(it + 1);
}

std::vector<std::string> split(std::string_view list) {
  std::vector<std::string> out;
  while (!list.empty()) {
    const auto comma = std::min(list.find(','), list.size());
    out.emplace_back(list.substr(0, comma));
    list.remove_prefix(std::min(comma + 1, list.size()));
  }
  return out;
}

TEST(probe_args, ffprobe_reads_only_http_with_media_demuxers) {
  probe_tools tools;
  tools.ffprobe = "/opt/ffprobe";
  const auto args = ffprobe_args(tools, kInput);
  EXPECT_EQ(args.front(), "/opt/ffprobe");
  EXPECT_EQ(args.back(), kInput);
  EXPECT_EQ(input_option(args, "-protocol_whitelist"), "http,tcp");
  EXPECT_EQ(input_option(args, "-format_whitelist"), kProbeFormats);
  EXPECT_EQ(input_option(args, "-enable_drefs"), "0");
}

TEST(probe_args, images_are_read_with_their_own_demuxer) {
  probe_tools tools;
  EXPECT_EQ(image_demuxer_for("image/jpeg"), "jpeg_pipe");
  EXPECT_EQ(image_demuxer_for("image/png"), "png_pipe");
  EXPECT_EQ(image_demuxer_for("image/svg+xml"), "");  // not probed: SVG can refer to other resources
  EXPECT_EQ(image_demuxer_for("video/mp4"), "");
  for (const char* type :
       {"image/jpeg", "image/png", "image/apng", "image/gif", "image/webp", "image/bmp", "image/tiff",
        "image/x-icon", "image/jxl", "image/heic", "image/heif", "image/avif"})
    EXPECT_TRUE(is_probe_format(image_demuxer_for(type))) << type;
  const auto args = ffprobe_args(tools, kInput, "jpeg_pipe");
  EXPECT_EQ(input_option(args, "-f"), "jpeg_pipe");
  EXPECT_EQ(input_option(args, "-format_whitelist"), kProbeFormats);
  EXPECT_EQ(input_option(ffprobe_args(tools, kInput), "-f"), "");
}

TEST(probe_args, poster_reads_with_the_probed_demuxer_only) {
  probe_tools tools;
  const auto args = poster_args(tools, kInput, "mov", 2.0, "/tmp/out.jpg");
  EXPECT_EQ(args.front(), "ffmpeg");
  EXPECT_EQ(args.back(), "/tmp/out.jpg");
  EXPECT_EQ(input_option(args, "-protocol_whitelist"), "http,tcp");
  EXPECT_EQ(input_option(args, "-format_whitelist"), kProbeFormats);
  EXPECT_EQ(input_option(args, "-f"), "mov");
  EXPECT_EQ(input_option(args, "-enable_drefs"), "0");
  EXPECT_EQ(input_option(args, "-ss"), "2.000");
  // Matroska has no dref option, and ffmpeg would refuse it.
  const auto mkv = poster_args(tools, kInput, "matroska", 0, "/tmp/out.jpg");
  EXPECT_EQ(input_option(mkv, "-f"), "matroska");
  EXPECT_EQ(input_option(mkv, "-enable_drefs"), "");
}

TEST(probe_args, no_demuxer_that_follows_references_is_accepted) {
  const auto formats = split(kProbeFormats);
  for (const char* refused :
       {"hls",        "applehttp",          "dash",   "concat",   "sdp",  "rtsp", "rtp",   "imf",    "image2",
        "image2pipe", "webm_dash_manifest", "vobsub", "svg_pipe", "data", "tee",  "lavfi", "mpjpeg", "sap",
        "avisynth",   "vapoursynth"}) {
    EXPECT_EQ(std::count(formats.begin(), formats.end(), refused), 0) << refused;
    EXPECT_FALSE(is_probe_format(refused)) << refused;
  }
  for (const char* accepted : {"mov", "matroska", "mp3", "ogg", "flac", "wav", "jpeg_pipe", "png_pipe"})
    EXPECT_TRUE(is_probe_format(accepted)) << accepted;
  EXPECT_FALSE(is_probe_format(""));
  EXPECT_FALSE(is_probe_format("mov,hls"));
}

TEST(probe_args, protocols_are_exactly_those_of_our_url) {
  EXPECT_EQ(split(kProbeProtocols), (std::vector<std::string>{"http", "tcp"}));
}

TEST(probe_args, poster_of_an_unknown_format_is_refused_without_running_ffmpeg) {
  probe_tools tools;
  tools.ffmpeg = "/nonexistent/ffmpeg";
  std::string error;
  EXPECT_TRUE(make_poster(tools, kInput, "hls", 0, error).empty());
  EXPECT_NE(error.find("hls"), std::string::npos) << error;
}

TEST(probe_failure, says_why_in_words) {
  process_result r;
  r.started = true;
  r.exit_code = 1;
  r.err = "[hls @ 0x1] Format not on whitelist 'mov,matroska'\nhttp://x: Invalid argument\n";
  EXPECT_NE(probe_failure(r, "ffprobe", std::chrono::seconds(20)).find("not a media format"),
            std::string::npos);
  r.err = "[tcp @ 0x1] Protocol 'udp' not on whitelist 'http,tcp'!\n";
  EXPECT_NE(probe_failure(r, "ffprobe", std::chrono::seconds(20)).find("refers to another resource"),
            std::string::npos);
  r.err = "moov atom not found\n";
  EXPECT_EQ(probe_failure(r, "ffprobe", std::chrono::seconds(20)),
            "ffprobe exited with 1: moov atom not found");
  r.timed_out = true;
  EXPECT_EQ(probe_failure(r, "ffprobe", std::chrono::milliseconds(2500)),
            "ffprobe did not finish within 2.5 s");
}

TEST(parse_ffprobe_json, keeps_the_first_demuxer_name) {
  auto info =
      parse_ffprobe_json(R"({"format": {"format_name": "mov,mp4,m4a,3gp,3g2,mj2", "duration": "4.5"}})");
  ASSERT_TRUE(info);
  EXPECT_EQ(info->format, "mov");
  EXPECT_EQ(info->duration, 4.5);
}

}  // namespace
}  // namespace mediagate::catalog
