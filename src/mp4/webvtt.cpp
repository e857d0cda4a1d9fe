#include "mp4/webvtt.hpp"

#include <cstdio>

#include "mp4/box.hpp"

namespace mediagate::mp4 {
namespace {

void append_utf8(std::string& out, std::uint32_t cp) {
  if (cp < 0x80) {
    out += static_cast<char>(cp);
  } else if (cp < 0x800) {
    out += static_cast<char>(0xc0 | (cp >> 6));
    out += static_cast<char>(0x80 | (cp & 0x3f));
  } else if (cp < 0x10000) {
    out += static_cast<char>(0xe0 | (cp >> 12));
    out += static_cast<char>(0x80 | ((cp >> 6) & 0x3f));
    out += static_cast<char>(0x80 | (cp & 0x3f));
  } else {
    out += static_cast<char>(0xf0 | (cp >> 18));
    out += static_cast<char>(0x80 | ((cp >> 12) & 0x3f));
    out += static_cast<char>(0x80 | ((cp >> 6) & 0x3f));
    out += static_cast<char>(0x80 | (cp & 0x3f));
  }
}

constexpr std::uint32_t kReplacement = 0xfffd;

// The code points of `s` read as UTF-8; every byte that does not start a valid sequence (overlong forms,
// surrogates and values past U+10FFFF included) gives one U+FFFD, as does NUL.
template <class F>
void each_code_point(std::string_view s, F&& f) {
  const auto* p = reinterpret_cast<const std::uint8_t*>(s.data());
  const std::size_t n = s.size();
  for (std::size_t i = 0; i < n;) {
    const std::uint8_t b = p[i];
    std::uint32_t cp = 0;
    std::size_t len = 0;
    if (b < 0x80) {
      cp = b;
      len = 1;
    } else if (b >= 0xc2 && b <= 0xdf) {
      cp = b & 0x1f;
      len = 2;
    } else if (b >= 0xe0 && b <= 0xef) {
      cp = b & 0x0f;
      len = 3;
    } else if (b >= 0xf0 && b <= 0xf4) {
      cp = b & 0x07;
      len = 4;
    }
    bool ok = len > 0 && n - i >= len;
    for (std::size_t k = 1; ok && k < len; ++k) {
      if ((p[i + k] & 0xc0) != 0x80)
        ok = false;
      else
        cp = (cp << 6) | (p[i + k] & 0x3f);
    }
    if (ok && ((len == 3 && (cp < 0x800 || (cp >= 0xd800 && cp <= 0xdfff))) ||
               (len == 4 && (cp < 0x10000 || cp > 0x10ffff))))
      ok = false;
    if (!ok) {
      f(kReplacement);
      ++i;
      continue;
    }
    f(cp == 0 ? kReplacement : cp);
    i += len;
  }
}

// UTF-16 (big-endian, or little-endian after FF FE) to UTF-8; unpaired surrogates become U+FFFD.
std::string utf16_to_utf8(bytes b, bool little) {
  std::string out;
  auto unit = [&](std::size_t i) -> std::uint32_t {
    return little ? (b[i] | (b[i + 1] << 8)) : ((b[i] << 8) | b[i + 1]);
  };
  for (std::size_t i = 0; i + 1 < b.size(); i += 2) {
    std::uint32_t u = unit(i);
    if (u >= 0xd800 && u <= 0xdbff && i + 3 < b.size()) {
      const std::uint32_t lo = unit(i + 2);
      if (lo >= 0xdc00 && lo <= 0xdfff) {
        append_utf8(out, 0x10000 + ((u - 0xd800) << 10) + (lo - 0xdc00));
        i += 2;
        continue;
      }
    }
    append_utf8(out, (u >= 0xd800 && u <= 0xdfff) || u == 0 ? kReplacement : u);
  }
  return out;
}

// Cue settings from a wvtt sttg box: printable ASCII on one line, no "-->", else none.
std::string safe_settings(std::string_view s) {
  if (s.size() > 256 || s.find("-->") != std::string_view::npos) return {};
  for (char c : s)
    if (c < 0x20 || c > 0x7e) return {};
  return std::string(s);
}

// Boxes of `data` as far as they are whole (a sample cut at kMaxTextSampleRead keeps its first cues).
std::vector<box> whole_boxes(bytes data) {
  std::vector<box> out;
  std::size_t pos = 0;
  while (pos < data.size() && out.size() < kMaxChildren) {
    auto h = read_box_header(data.subspan(pos));
    if (!h || h->size == 0 || h->size < h->header || h->size > data.size() - pos) break;
    out.push_back({h->type, h->header, data.subspan(pos, static_cast<std::size_t>(h->size))});
    pos += static_cast<std::size_t>(h->size);
  }
  return out;
}

}  // namespace

std::string vtt_cue_text(std::string_view s, bool escape_markup) {
  std::string out;
  out.reserve(std::min(s.size(), kMaxCueText) + 16);
  std::string line;
  bool cut = false;
  auto end_line = [&] {
    bool blank = true;
    for (char c : line)
      if (c != ' ' && c != '\t' && c != '\f') blank = false;
    if (!blank && !cut) {
      if (out.size() + line.size() + 1 > kMaxCueText) {
        cut = true;
      } else {
        if (!out.empty()) out += '\n';
        out += line;
      }
    }
    line.clear();
  };
  bool after_cr = false;
  each_code_point(s, [&](std::uint32_t cp) {
    if (cut) return;
    if (cp == '\n' && after_cr) {
      after_cr = false;
      return;
    }
    after_cr = cp == '\r';
    if (cp == '\r' || cp == '\n') {
      end_line();
      return;
    }
    if (line.size() > kMaxCueText) return;  // a line longer than the whole cue may be: dropped by end_line
    if (escape_markup && cp == '&') {
      line += "&amp;";
    } else if (escape_markup && cp == '<') {
      line += "&lt;";
    } else if (cp == '>' && (escape_markup || (line.size() >= 2 && line.ends_with("--")))) {
      line += "&gt;";
    } else {
      append_utf8(line, cp);
    }
  });
  end_line();
  return out;
}

std::vector<cue_text> decode_text_sample(std::string_view format, bytes data) {
  std::vector<cue_text> cues;
  if (format == "tx3g") {
    cursor c(data);
    const std::size_t length = c.u16();
    if (!c.ok() || length == 0) return cues;
    const auto text = data.subspan(2, std::min(length, data.size() - 2));
    std::string utf8;
    if (text.size() >= 2 && text[0] == 0xfe && text[1] == 0xff)
      utf8 = utf16_to_utf8(text.subspan(2), false);
    else if (text.size() >= 2 && text[0] == 0xff && text[1] == 0xfe)
      utf8 = utf16_to_utf8(text.subspan(2), true);
    else
      utf8 = std::string(as_text(text));
    auto cue = vtt_cue_text(utf8, true);
    if (!cue.empty()) cues.push_back({{}, std::move(cue)});
    return cues;
  }
  if (format == "wvtt") {
    for (const auto& b : whole_boxes(data)) {
      if (b.type != fourcc("vttc")) continue;  // vtte: no cue; vtta: a comment
      cue_text cue;
      for (const auto& k : whole_boxes(b.payload())) {
        if (k.type == fourcc("payl")) cue.text = vtt_cue_text(as_text(k.payload()), false);
        if (k.type == fourcc("sttg")) cue.settings = safe_settings(as_text(k.payload()));
      }
      if (!cue.text.empty()) cues.push_back(std::move(cue));
    }
  }
  return cues;
}

std::string vtt_time(std::uint64_t ticks, std::uint32_t timescale) {
  const auto ms = static_cast<std::uint64_t>((static_cast<unsigned __int128>(ticks) * 1000 + timescale / 2) /
                                             (timescale ? timescale : 1));
  char buf[48];
  std::snprintf(buf, sizeof buf, "%02llu:%02llu:%02llu.%03llu", static_cast<unsigned long long>(ms / 3600000),
                static_cast<unsigned long long>(ms / 60000 % 60),
                static_cast<unsigned long long>(ms / 1000 % 60), static_cast<unsigned long long>(ms % 1000));
  return buf;
}

text_span text_segment(const track& t, const track_cuts& cuts, const track& lead, const track_cuts& lead_cuts,
                       std::size_t n) {
  using u128 = unsigned __int128;
  text_span span{cuts.first[n], cuts.first[n + 1], cuts.dts[n]};
  // The sample before starts before this segment's time; it lasts into it when the first one here starts
  // after that time (samples of a text track follow each other without overlap).
  const auto cut = lead_cuts.dts[n] + lead.decode_offset;
  if (n > 0 && span.first > 0) {
    const auto& before = t.samples[span.first - 1];
    if (before.size > 0 && u128(cuts.dts[n] + t.decode_offset) * lead.timescale > u128(cut) * t.timescale) {
      --span.first;
      span.first_start -= before.duration;
    }
  }
  return span;
}

text_span whole_text(const track& t) { return {0, static_cast<std::uint32_t>(t.samples.size()), 0}; }

std::string webvtt_file(const track& t, const text_span& span, const std::vector<std::string>& samples,
                        bool timestamp_map) {
  std::string out = "WEBVTT\n";
  if (timestamp_map) out += "X-TIMESTAMP-MAP=MPEGTS:0,LOCAL:00:00:00.000\n";
  out += '\n';
  std::uint64_t start = span.first_start + t.decode_offset;
  for (std::uint32_t i = span.first; i < span.end; ++i) {
    const auto& s = t.samples[i];
    const auto end = start + s.duration;
    const auto k = static_cast<std::size_t>(i - span.first);
    if (s.size > 0 && s.duration > 0 && k < samples.size()) {
      for (const auto& cue : decode_text_sample(t.format, as_bytes(samples[k]))) {
        out += vtt_time(start, t.timescale) + " --> " + vtt_time(end, t.timescale);
        if (!cue.settings.empty()) out += ' ' + cue.settings;
        out += '\n' + cue.text + "\n\n";
      }
    }
    start = end;
  }
  return out;
}

}  // namespace mediagate::mp4
