#include "catalog/probe.hpp"

#include <unistd.h>

#include <boost/json/parse.hpp>
#include <boost/json/value.hpp>
#include <cstdio>
#include <fstream>
#include <sstream>

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

std::string failure_of(const process_result& r, std::string_view what) {
  if (!r.started) return r.error;
  if (r.timed_out) return std::string(what) + " timed out";
  return std::string(what) + " exited with " + std::to_string(r.exit_code) + ": " + trim_for_log(r.err);
}

}  // namespace

std::optional<probe_info> parse_ffprobe_json(std::string_view text) {
  boost::system::error_code ec;
  auto doc = json::parse(text, ec);
  if (ec || !doc.is_object()) return std::nullopt;
  probe_info info;
  const auto& root = doc.as_object();
  if (const auto* format = root.if_contains("format"); format && format->is_object())
    info.duration = number_in(format->as_object().if_contains("duration"));
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

std::optional<probe_info> probe_media(const probe_tools& tools, const std::string& input,
                                      std::string& error) {
  auto r = run_process(
      {tools.ffprobe, "-v", "error", "-print_format", "json", "-show_format", "-show_streams", input},
      tools.timeout);
  if (!r.ok()) {
    error = failure_of(r, "ffprobe");
    return std::nullopt;
  }
  auto info = parse_ffprobe_json(r.out);
  if (!info) error = "ffprobe printed no JSON";
  return info;
}

std::string make_poster(const probe_tools& tools, const std::string& input, double at, std::string& error) {
  char name[] = "/tmp/mediagate-poster-XXXXXX";
  const int fd = ::mkstemp(name);
  if (fd < 0) {
    error = "cannot create a temporary file for the poster";
    return {};
  }
  ::close(fd);
  char seek[32];
  std::snprintf(seek, sizeof seek, "%.3f", at);
  // -ss before -i seeks by ranged reads instead of decoding from the start.
  auto r = run_process({tools.ffmpeg, "-nostdin", "-v", "error", "-ss", seek, "-i", input, "-frames:v", "1",
                        "-vf", "scale='min(480,iw)':-2", "-q:v", "4", "-f", "image2", "-y", name},
                       tools.timeout);
  std::string jpeg;
  if (r.ok()) {
    std::ifstream in(name, std::ios::binary);
    std::ostringstream bytes;
    bytes << in.rdbuf();
    jpeg = bytes.str();
    if (jpeg.empty()) error = "ffmpeg wrote no frame";
  } else {
    error = failure_of(r, "ffmpeg");
  }
  ::unlink(name);
  return jpeg;
}

}  // namespace mediagate::catalog
