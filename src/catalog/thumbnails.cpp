#include "catalog/thumbnails.hpp"

#include <algorithm>
#include <cmath>
#include <cstdio>

#include "catalog/scan.hpp"

namespace mediagate::catalog {
namespace {

std::string vtt_time(double seconds) {
  const auto ms = static_cast<long long>(std::llround(seconds * 1000));
  char buf[32];
  std::snprintf(buf, sizeof buf, "%02lld:%02lld:%02lld.%03lld", ms / 3'600'000, ms / 60'000 % 60,
                ms / 1000 % 60, ms % 1000);
  return buf;
}

}  // namespace

double thumbnail_plan::end_of(std::size_t i) const { return i + 1 >= count ? duration : (i + 1) * interval; }

std::vector<double> thumbnail_plan::times(std::size_t row) const {
  // The middle of each tile's stretch: inside the video even for the last one (a seek at or past the last
  // frame gives no frame), and past the black of a fade-in at 0.
  std::vector<double> out;
  for (std::size_t i = row * per_row; i < count && i < (row + 1) * per_row; ++i)
    out.push_back((i * interval + end_of(i)) / 2);
  return out;
}

std::optional<thumbnail_plan> plan_thumbnails(std::optional<double> duration) {
  if (!duration || !std::isfinite(*duration) || *duration <= 0 || *duration > 100.0 * 3600)
    return std::nullopt;
  thumbnail_plan p;
  p.duration = *duration;
  p.interval = std::max(2.0, std::ceil(*duration / kMaxThumbnails));
  p.count = static_cast<std::size_t>(std::ceil(*duration / p.interval));
  // A last stretch under a second joins the one before (its frame could lie past the video's last).
  if (p.count > 1 && *duration - (p.count - 1) * p.interval < 1.0) --p.count;
  p.count = std::clamp<std::size_t>(p.count, 1, kMaxThumbnails);
  return p;
}

std::string thumbnail_key(std::string_view id, std::size_t row) {
  return std::string(kPosterPrefix) + std::string(id) + "-thumbs-" + std::to_string(row) + ".jpg";
}

std::string thumbnails_vtt(const thumbnail_plan& plan, std::string_view prefix, std::string_view query) {
  std::string out = "WEBVTT\n";
  for (std::size_t i = 0; i < plan.count; ++i) {
    const double start = i * plan.interval;
    const double end = plan.end_of(i);
    const auto row = i / thumbnail_plan::per_row, col = i % thumbnail_plan::per_row;
    out += "\n" + vtt_time(start) + " --> " + vtt_time(end) + "\n";
    out += std::string(prefix) + "thumbs-" + std::to_string(row) + ".jpg" + std::string(query) +
           "#xywh=" + std::to_string(col * thumbnail_plan::width) + ",0," +
           std::to_string(thumbnail_plan::width) + "," + std::to_string(thumbnail_plan::height) + "\n";
  }
  return out;
}

std::vector<std::string> thumbnail_row_args(const probe_tools& tools, const std::string& input,
                                            std::string_view format, const std::vector<double>& times,
                                            const std::string& output) {
  std::vector<std::string> args{tools.ffmpeg, "-nostdin", "-v", "error"};
  std::string graph;
  for (std::size_t i = 0; i < times.size(); ++i) {
    char seek[32];
    std::snprintf(seek, sizeof seek, "%.3f", times[i]);
    // The limits are options of each input, so every input repeats them.
    args.insert(args.end(), {"-protocol_whitelist", std::string(kProbeProtocols), "-format_whitelist",
                             std::string(kProbeFormats), "-f", std::string(format)});
    if (format == "mov") args.insert(args.end(), {"-enable_drefs", "0"});
    args.insert(args.end(), {"-ss", seek, "-i", input});
    const auto n = std::to_string(i);
    graph += "[" + n +
             ":v:0]trim=end_frame=1,setpts=PTS-STARTPTS,scale=" + std::to_string(thumbnail_plan::width) +
             ":" + std::to_string(thumbnail_plan::height) +
             ":force_original_aspect_ratio=decrease,pad=" + std::to_string(thumbnail_plan::width) + ":" +
             std::to_string(thumbnail_plan::height) + ":(ow-iw)/2:(oh-ih)/2,setsar=1[t" + n + "];";
  }
  if (times.size() > 1) {
    for (std::size_t i = 0; i < times.size(); ++i) graph += "[t" + std::to_string(i) + "]";
    graph += "hstack=inputs=" + std::to_string(times.size()) + "[row]";
  } else {
    graph.pop_back();  // the one tile is the row
    graph.replace(graph.rfind("[t0]"), 4, "[row]");
  }
  args.insert(args.end(), {"-filter_complex", graph, "-map", "[row]", "-frames:v", "1", "-q:v", "5", "-f",
                           "image2", "-update", "1", "-y", output});
  return args;
}

}  // namespace mediagate::catalog
