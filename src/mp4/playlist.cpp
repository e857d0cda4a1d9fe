#include "mp4/playlist.hpp"

#include <cmath>
#include <cstdio>

namespace mediagate::mp4 {
namespace {

std::string seconds_text(std::uint64_t ticks, std::uint32_t timescale) {
  char buf[48];
  std::snprintf(buf, sizeof buf, "%.6f", double(ticks) / timescale);
  return buf;
}

std::uint64_t segment_bytes(const track& t, const track_cuts& cuts, std::size_t n) {
  std::uint64_t total = 0;
  for (auto i = cuts.first[n]; i < cuts.first[n + 1]; ++i) total += t.samples[i].size;
  return total;
}

// The segments worth listing: a track that ends before the others has empty ones at the end (EXTINF and @d
// must be positive).
std::size_t listed_segments(const track_cuts& cuts) {
  auto n = cuts.segments();
  while (n > 1 && cuts.dts[n] == cuts.dts[n - 1]) --n;
  return n;
}

std::uint64_t average_bitrate(const track& t, const track_cuts& cuts) {
  std::uint64_t bytes = 0;
  for (const auto& s : t.samples) bytes += s.size;
  const auto ticks = cuts.dts.back();
  return ticks ? static_cast<std::uint64_t>(double(bytes) * 8 * t.timescale / ticks) : 0;
}

}  // namespace

unsigned target_duration(const track& t, const track_cuts& cuts) {
  unsigned target = 1;
  for (std::size_t n = 0; n < cuts.segments(); ++n) {
    const auto rounded = static_cast<unsigned>(std::llround(cuts.seconds(n, t.timescale)));
    target = std::max(target, rounded);
  }
  return target;
}

std::uint64_t peak_bitrate(const track& t, const track_cuts& cuts) {
  std::uint64_t peak = 0;
  for (std::size_t n = 0; n < cuts.segments(); ++n) {
    const auto ticks = cuts.dts[n + 1] - cuts.dts[n];
    if (ticks == 0) continue;
    peak = std::max(peak,
                    static_cast<std::uint64_t>(double(segment_bytes(t, cuts, n)) * 8 * t.timescale / ticks));
  }
  return peak;
}

std::string master_playlist(const movie& m, const segment_index& index) {
  std::string out = "#EXTM3U\n#EXT-X-VERSION:7\n#EXT-X-INDEPENDENT-SEGMENTS\n";
  const track* video = nullptr;
  std::size_t video_at = 0;
  std::uint64_t audio_peak = 0, audio_average = 0;
  std::string audio_codecs;
  bool first_audio = true;
  for (std::size_t i = 0; i < m.tracks.size(); ++i) {
    const auto& t = m.tracks[i];
    if (t.kind == track_kind::video) {
      video = &t;
      video_at = i;
      continue;
    }
    audio_peak = std::max(audio_peak, peak_bitrate(t, index.tracks[i]));
    audio_average = std::max(audio_average, average_bitrate(t, index.tracks[i]));
    if (audio_codecs.empty()) audio_codecs = t.codecs;
  }
  if (!video) {  // audio only: each track is a variant of its own
    for (const auto& t : m.subtitles)
      out += "#EXT-X-MEDIA:TYPE=SUBTITLES,GROUP-ID=\"subs\",NAME=\"" + t.language + " " +
             std::to_string(t.id) + "\",LANGUAGE=\"" + t.language + "\",DEFAULT=NO,AUTOSELECT=YES,URI=\"" +
             std::to_string(t.id) + ".m3u8\"\n";
    for (std::size_t i = 0; i < m.tracks.size(); ++i) {
      const auto& t = m.tracks[i];
      out += "#EXT-X-STREAM-INF:BANDWIDTH=" + std::to_string(peak_bitrate(t, index.tracks[i])) +
             ",AVERAGE-BANDWIDTH=" + std::to_string(average_bitrate(t, index.tracks[i])) + ",CODECS=\"" +
             t.codecs + "\"" + (m.subtitles.empty() ? "" : ",SUBTITLES=\"subs\"") + "\n" +
             std::to_string(t.id) + ".m3u8\n";
    }
    return out;
  }
  for (std::size_t i = 0; i < m.tracks.size(); ++i) {
    const auto& t = m.tracks[i];
    if (t.kind != track_kind::audio) continue;
    out += "#EXT-X-MEDIA:TYPE=AUDIO,GROUP-ID=\"audio\",NAME=\"" + t.language + " " + std::to_string(t.id) +
           "\",LANGUAGE=\"" + t.language + "\",DEFAULT=" + (first_audio ? "YES" : "NO") +
           ",AUTOSELECT=YES,CHANNELS=\"" + std::to_string(t.channels) + "\",URI=\"" + std::to_string(t.id) +
           ".m3u8\"\n";
    first_audio = false;
  }
  for (const auto& t : m.subtitles)
    out += "#EXT-X-MEDIA:TYPE=SUBTITLES,GROUP-ID=\"subs\",NAME=\"" + t.language + " " + std::to_string(t.id) +
           "\",LANGUAGE=\"" + t.language + "\",DEFAULT=NO,AUTOSELECT=YES,URI=\"" + std::to_string(t.id) +
           ".m3u8\"\n";
  const auto& vc = index.tracks[video_at];
  out += "#EXT-X-STREAM-INF:BANDWIDTH=" + std::to_string(peak_bitrate(*video, vc) + audio_peak) +
         ",AVERAGE-BANDWIDTH=" + std::to_string(average_bitrate(*video, vc) + audio_average) + ",CODECS=\"" +
         video->codecs + (audio_codecs.empty() ? "" : "," + audio_codecs) + "\"";
  if (video->width && video->height)
    out += ",RESOLUTION=" + std::to_string(video->width) + "x" + std::to_string(video->height);
  if (!first_audio) out += ",AUDIO=\"audio\"";
  if (!m.subtitles.empty()) out += ",SUBTITLES=\"subs\"";
  out += "\n" + std::to_string(video->id) + ".m3u8\n";
  return out;
}

std::string media_playlist(const movie& m, const segment_index& index, std::size_t ti) {
  const auto& t = m.tracks[ti];
  const auto& cuts = index.tracks[ti];
  const auto id = std::to_string(t.id);
  std::string out =
      "#EXTM3U\n#EXT-X-VERSION:7\n#EXT-X-TARGETDURATION:" + std::to_string(target_duration(t, cuts)) +
      "\n#EXT-X-MEDIA-SEQUENCE:0\n#EXT-X-PLAYLIST-TYPE:VOD\n#EXT-X-INDEPENDENT-SEGMENTS\n"
      "#EXT-X-MAP:URI=\"" +
      id + "/init.mp4\"\n";
  for (std::size_t n = 0; n < listed_segments(cuts); ++n) {
    out += "#EXTINF:" + seconds_text(cuts.dts[n + 1] - cuts.dts[n], t.timescale) + ",\n";
    out += id + "/seg-" + std::to_string(n) + ".m4s\n";
  }
  out += "#EXT-X-ENDLIST\n";
  return out;
}

std::string subtitle_playlist(const movie& m, const segment_index& index, std::size_t sub) {
  const auto& lead = m.tracks[index.lead];
  const auto& cuts = index.tracks[index.lead];
  const auto id = std::to_string(m.subtitles[sub].id);
  std::string out =
      "#EXTM3U\n#EXT-X-VERSION:7\n#EXT-X-TARGETDURATION:" + std::to_string(target_duration(lead, cuts)) +
      "\n#EXT-X-MEDIA-SEQUENCE:0\n#EXT-X-PLAYLIST-TYPE:VOD\n";
  for (std::size_t n = 0; n < listed_segments(cuts); ++n) {
    out += "#EXTINF:" + seconds_text(cuts.dts[n + 1] - cuts.dts[n], lead.timescale) + ",\n";
    out += id + "/seg-" + std::to_string(n) + ".vtt\n";
  }
  out += "#EXT-X-ENDLIST\n";
  return out;
}

namespace {

// xs:duration with millisecond precision, rounded up so that the whole timeline fits.
std::string iso_duration(std::uint64_t ticks, std::uint32_t timescale) {
  const auto ms = (ticks * 1000 + timescale - 1) / timescale;
  char buf[48];
  std::snprintf(buf, sizeof buf, "PT%llu.%03lluS", static_cast<unsigned long long>(ms / 1000),
                static_cast<unsigned long long>(ms % 1000));
  return buf;
}

std::string xml_escape(std::string_view s) {
  std::string out;
  for (char c : s) {
    if (c == '&')
      out += "&amp;";
    else if (c == '<')
      out += "&lt;";
    else if (c == '"')
      out += "&quot;";
    else
      out += c;
  }
  return out;
}

}  // namespace

std::string dash_manifest(const movie& m, const segment_index& index) {
  // The longest track sets the presentation's duration.
  double longest = 0;
  std::string duration = "PT0S";
  for (std::size_t i = 0; i < m.tracks.size(); ++i) {
    const auto& c = index.tracks[i];
    const auto end = c.dts.back() + m.tracks[i].decode_offset;
    const double seconds = double(end) / m.tracks[i].timescale;
    if (seconds >= longest) {
      longest = seconds;
      duration = iso_duration(end, m.tracks[i].timescale);
    }
  }
  std::string out =
      "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n"
      "<MPD xmlns=\"urn:mpeg:dash:schema:mpd:2011\" profiles=\"urn:mpeg:dash:profile:isoff-live:2011\" "
      "type=\"static\" mediaPresentationDuration=\"" +
      duration + "\" minBufferTime=\"PT2S\">\n  <Period id=\"0\" start=\"PT0S\">\n";
  for (std::size_t i = 0; i < m.tracks.size(); ++i) {
    const auto& t = m.tracks[i];
    const auto& c = index.tracks[i];
    const bool video = t.kind == track_kind::video;
    const auto id = std::to_string(t.id);
    out += "    <AdaptationSet id=\"" + id + "\" contentType=\"" + (video ? "video" : "audio") +
           "\" mimeType=\"" + (video ? "video/mp4" : "audio/mp4") +
           "\" segmentAlignment=\"true\" startWithSAP=\"1\"";
    if (!video) out += " lang=\"" + xml_escape(t.language) + "\"";
    out += ">\n      <Representation id=\"" + id + "\" codecs=\"" + xml_escape(t.codecs) + "\" bandwidth=\"" +
           std::to_string(std::max<std::uint64_t>(1, peak_bitrate(t, c))) + "\"";
    if (video && t.width && t.height)
      out += " width=\"" + std::to_string(t.width) + "\" height=\"" + std::to_string(t.height) + "\"";
    if (!video && t.sample_rate) out += " audioSamplingRate=\"" + std::to_string(t.sample_rate) + "\"";
    out += ">\n";
    if (!video && t.channels)
      out +=
          "        <AudioChannelConfiguration "
          "schemeIdUri=\"urn:mpeg:dash:23003:3:audio_channel_configuration:2011\" value=\"" +
          std::to_string(t.channels) + "\"/>\n";
    out += "        <SegmentTemplate timescale=\"" + std::to_string(t.timescale) + "\" initialization=\"" +
           id + "/init.mp4\" media=\"" + id +
           "/seg-$Number$.m4s\" startNumber=\"0\">\n          <SegmentTimeline>\n";
    // Runs of equal durations collapse into one S with a repeat count (@r).
    const auto listed = listed_segments(c);
    for (std::size_t n = 0; n < listed;) {
      const auto d = c.dts[n + 1] - c.dts[n];
      std::size_t r = 0;
      while (n + r + 1 < listed && c.dts[n + r + 2] - c.dts[n + r + 1] == d) ++r;
      // t: the segment's tfdt (its decode time on the edited timeline, see apply_edit_lists)
      out += "            <S t=\"" + std::to_string(c.dts[n] + t.decode_offset) + "\" d=\"" +
             std::to_string(d) + "\"";
      if (r) out += " r=\"" + std::to_string(r) + "\"";
      out += "/>\n";
      n += r + 1;
    }
    out +=
        "          </SegmentTimeline>\n        </SegmentTemplate>\n      </Representation>\n    "
        "</AdaptationSet>\n";
  }
  for (const auto& t : m.subtitles) {
    const auto id = std::to_string(t.id);
    out += "    <AdaptationSet id=\"" + id + "\" contentType=\"text\" mimeType=\"text/vtt\" lang=\"" +
           xml_escape(t.language) + "\">\n      <Representation id=\"" + id +
           "\" bandwidth=\"256\">\n        <BaseURL>" + id +
           "/whole.vtt</BaseURL>\n      </Representation>\n    </AdaptationSet>\n";
  }
  out += "  </Period>\n</MPD>\n";
  return out;
}

}  // namespace mediagate::mp4
