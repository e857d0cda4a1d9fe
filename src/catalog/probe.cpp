#include "catalog/probe.hpp"

#include <unistd.h>

#include <algorithm>
#include <boost/json/parse.hpp>
#include <boost/json/value.hpp>
#include <cstdio>
#include <fstream>
#include <sstream>
#include <utility>

#include "catalog/thumbnails.hpp"

namespace mediagate::catalog {
namespace {

namespace json = boost::json;

std::optional<double> number_in(const json::value* v) {
  if (!v) return std::nullopt;
  if (v->is_double()) return v->as_double();
  if (v->is_int64()) return static_cast<double>(v->as_int64());
  if (v->is_string()) {  // ffprobe writes durations as strings: "10.000000"
    const std::string s(v->as_string());
    char* end = nullptr;
    const double d = std::strtod(s.c_str(), &end);
    if (end != s.c_str() && *end == '\0') return d;
  }
  return std::nullopt;
}

std::string trim_for_log(std::string s) {
  while (!s.empty() && (s.back() == '\n' || s.back() == '\r')) s.pop_back();
  if (s.size() > 300) s = "..." + s.substr(s.size() - 300);
  return s;
}

std::string seconds_text(std::chrono::milliseconds ms) {
  char buf[32];
  std::snprintf(buf, sizeof buf, "%g s", static_cast<double>(ms.count()) / 1000);
  return buf;
}

std::string first_name(std::string_view format_name) {
  return std::string(format_name.substr(0, format_name.find(',')));
}

}  // namespace

std::optional<probe_info> parse_ffprobe_json(std::string_view text) {
  boost::system::error_code ec;
  auto doc = json::parse(text, ec);
  if (ec || !doc.is_object()) return std::nullopt;
  probe_info info;
  const auto& root = doc.as_object();
  if (const auto* format = root.if_contains("format"); format && format->is_object()) {
    info.duration = number_in(format->as_object().if_contains("duration"));
    if (const auto* name = format->as_object().if_contains("format_name"); name && name->is_string())
      info.format = first_name(name->as_string());
  }
  if (const auto* streams = root.if_contains("streams"); streams && streams->is_array()) {
    for (const auto& s : streams->as_array()) {
      if (!s.is_object()) continue;
      const auto& o = s.as_object();
      const auto* type = o.if_contains("codec_type");
      if (!type || !type->is_string()) continue;
      if (type->as_string() == "audio") info.has_audio = true;
      if (type->as_string() != "video") continue;
      bool attached_pic = false;
      if (const auto* d = o.if_contains("disposition"); d && d->is_object())
        if (const auto* a = d->as_object().if_contains("attached_pic"); a && a->is_int64())
          attached_pic = a->as_int64() != 0;
      const auto w = number_in(o.if_contains("width")), h = number_in(o.if_contains("height"));
      if (!info.width && w && h && *w > 0 && *h > 0) {
        info.width = static_cast<int>(*w);
        info.height = static_cast<int>(*h);
      }
      if (!attached_pic) info.has_video = true;
      if (!info.duration) info.duration = number_in(o.if_contains("duration"));
    }
  }
  if (info.duration && (*info.duration < 0 || *info.duration > 1e9)) info.duration.reset();
  return info;
}

bool is_probe_format(std::string_view format) {
  if (format.empty()) return false;
  for (std::string_view list = kProbeFormats; !list.empty();) {
    const auto comma = std::min(list.find(','), list.size());
    if (list.substr(0, comma) == format) return true;
    list.remove_prefix(std::min(comma + 1, list.size()));
  }
  return false;
}

std::string_view image_demuxer_for(std::string_view content_type) {
  static constexpr std::pair<std::string_view, std::string_view> kImages[] = {
      {"image/jpeg", "jpeg_pipe"}, {"image/png", "png_pipe"},   {"image/apng", "apng"},
      {"image/gif", "gif"},        {"image/webp", "webp_pipe"}, {"image/bmp", "bmp_pipe"},
      {"image/tiff", "tiff_pipe"}, {"image/x-icon", "ico"},     {"image/jxl", "jpegxl_pipe"},
      {"image/heic", "mov"},       {"image/heif", "mov"},       {"image/avif", "mov"}};
  for (const auto& [type, demuxer] : kImages)
    if (type == content_type) return demuxer;
  return {};
}

std::vector<std::string> ffprobe_args(const probe_tools& tools, const std::string& input,
                                      std::string_view format) {
  // The whitelists are options of the input, so they come before it. A format outside the list fails at
  // once ("Format not on whitelist") before the demuxer reads a byte, let alone opens another URL; and
  // every URL FFmpeg opens on the input's behalf inherits the protocol list.
  std::vector<std::string> args{tools.ffprobe,
                                "-v",
                                "error",
                                "-protocol_whitelist",
                                std::string(kProbeProtocols),
                                "-format_whitelist",
                                std::string(kProbeFormats)};
  if (!format.empty()) args.insert(args.end(), {"-f", std::string(format)});
  // Already the default of this FFmpeg, but an MP4 `dref` pointing at a URL must never be followed.
  args.insert(args.end(),
              {"-enable_drefs", "0", "-print_format", "json", "-show_format", "-show_streams", input});
  return args;
}

std::vector<std::string> poster_args(const probe_tools& tools, const std::string& input,
                                     std::string_view format, double at, const std::string& output) {
  char seek[32];
  std::snprintf(seek, sizeof seek, "%.3f", at);
  std::vector<std::string> args{tools.ffmpeg,
                                "-nostdin",
                                "-v",
                                "error",
                                "-protocol_whitelist",
                                std::string(kProbeProtocols),
                                "-format_whitelist",
                                std::string(kProbeFormats),
                                "-f",
                                std::string(format)};
  // ffmpeg, unlike ffprobe, refuses a demuxer option that the chosen demuxer lacks.
  if (format == "mov") args.insert(args.end(), {"-enable_drefs", "0"});
  // -ss before -i seeks by ranged reads instead of decoding from the start.
  args.insert(args.end(), {"-ss", seek, "-i", input, "-frames:v", "1", "-vf", "scale='min(480,iw)':-2",
                           "-q:v", "4", "-f", "image2", "-update", "1", "-y", output});
  return args;
}

std::string probe_failure(const process_result& r, std::string_view what, std::chrono::milliseconds timeout) {
  if (!r.started) return r.error;
  if (r.cancelled) return std::string(what) + " was stopped (shutting down)";
  if (r.timed_out) return std::string(what) + " did not finish within " + seconds_text(timeout);
  if (r.err.find("Format not on whitelist") != std::string::npos)
    return "not a media format the library accepts (playlists, concat lists, SDP and other files that refer "
           "to other resources are refused)";
  if (r.err.find("not on whitelist") != std::string::npos)
    return "refers to another resource, which is not read: " + trim_for_log(r.err);
  return std::string(what) + " exited with " + std::to_string(r.exit_code) + ": " + trim_for_log(r.err);
}

std::optional<probe_info> probe_media(const probe_tools& tools, const std::string& input,
                                      std::string_view content_type, std::string& error,
                                      const process_canceller* cancel, bool* cancelled) {
  auto r = run_process(ffprobe_args(tools, input, image_demuxer_for(content_type)), tools.timeout, cancel);
  if (cancelled) *cancelled = r.cancelled;
  if (!r.ok()) {
    error = probe_failure(r, "ffprobe", tools.timeout);
    return std::nullopt;
  }
  auto info = parse_ffprobe_json(r.out);
  if (!info) error = "ffprobe printed no JSON";
  return info;
}

namespace {

// Runs the ffmpeg command line `args_for(output)` that writes one JPEG to a temporary `output`, and returns
// the JPEG; empty with `error` set on failure.
template <class ArgsFor>
std::string run_to_jpeg(const probe_tools& tools, ArgsFor args_for, std::string& error,
                        const process_canceller* cancel) {
  char name[] = "/tmp/mediagate-frame-XXXXXX";
  const int fd = ::mkstemp(name);
  if (fd < 0) {
    error = "cannot create a temporary file for the picture";
    return {};
  }
  ::close(fd);
  auto r = run_process(args_for(std::string(name)), tools.timeout, cancel);
  std::string jpeg;
  if (r.ok()) {
    std::ifstream in(name, std::ios::binary);
    std::ostringstream bytes;
    bytes << in.rdbuf();
    jpeg = bytes.str();
    if (jpeg.empty()) error = "ffmpeg wrote no frame";
  } else {
    error = probe_failure(r, "ffmpeg", tools.timeout);
  }
  ::unlink(name);
  return jpeg;
}

}  // namespace

std::string make_poster(const probe_tools& tools, const std::string& input, std::string_view format,
                        double at, std::string& error, const process_canceller* cancel) {
  if (!is_probe_format(format)) {
    error = "no poster from format '" + std::string(format) + "'";
    return {};
  }
  return run_to_jpeg(
      tools, [&](const std::string& out) { return poster_args(tools, input, format, at, out); }, error,
      cancel);
}

std::string make_thumbnail_row(const probe_tools& tools, const std::string& input, std::string_view format,
                               const std::vector<double>& times, std::string& error,
                               const process_canceller* cancel) {
  if (!is_probe_format(format) || times.empty()) {
    error = "no thumbnails from format '" + std::string(format) + "'";
    return {};
  }
  return run_to_jpeg(
      tools, [&](const std::string& out) { return thumbnail_row_args(tools, input, format, times, out); },
      error, cancel);
}

}  // namespace mediagate::catalog
