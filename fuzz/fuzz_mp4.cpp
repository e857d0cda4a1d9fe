// The MP4 reader on untrusted bytes: the input is a whole file (its first byte picks the segment length),
// from which moov is located as the server does and parsed; then every segment, init segment and manifest is
// made. Invariants: errors are 415/422 with a reason; every sample lies inside the file; the segments of each
// track cover its samples exactly once, in order, with increasing decode times; each media segment's head
// says the size of the payload it is followed by; every EXTINF rounds to at most the target duration;
// subtitle tracks' WebVTT files are made from the input's bytes.
#include <cmath>
#include <string>

#include "fuzz_check.hpp"
#include "mp4/box.hpp"
#include "mp4/fragment.hpp"
#include "mp4/locate.hpp"
#include "mp4/movie.hpp"
#include "mp4/playlist.hpp"
#include "mp4/segments.hpp"
#include "mp4/webvtt.hpp"

using namespace mediagate;
using namespace mediagate::mp4;

namespace {

void check_error(const error& e) {
  FUZZ_CHECK(e.code == errc::unprocessable || e.code == errc::unsupported_media, "415 or 422");
  FUZZ_CHECK(!e.message.empty(), "a reason");
}

// A subtitle track's WebVTT files over the sample bytes in the input, as the server builds them: every file
// starts with the header, and a cue line for every "-->".
void check_subtitles(const movie& m, const segment_index& index, bytes file) {
  for (std::size_t i = 0; i < m.subtitles.size(); ++i) {
    const auto& t = m.subtitles[i];
    auto file_of = [&](const text_span& span, bool map) {
      std::vector<std::string> samples;
      for (auto k = span.first; k < span.end && k < span.first + 64; ++k) {
        const auto& s = t.samples[k];
        samples.emplace_back(as_text(file.subspan(static_cast<std::size_t>(s.offset),
                                                  std::min<std::size_t>(s.size, kMaxTextSampleRead))));
      }
      auto vtt = webvtt_file(t, span, samples, map);
      FUZZ_CHECK(vtt.starts_with("WEBVTT\n"), "a WebVTT header");
      (void)vtt_cue_text(vtt, false);
    };
    const auto& cuts = index.subtitles[i];
    FUZZ_CHECK(cuts.first.back() == t.samples.size(), "every cue");
    for (std::size_t n = 0; n < cuts.segments() && n < 3; ++n)
      file_of(text_segment(t, cuts, m.tracks[index.lead], index.tracks[index.lead], n), true);
    (void)subtitle_playlist(m, index, i);
  }
}

void check_movie(const movie& m, std::uint64_t file_size, std::uint32_t target_ms, bytes file) {
  FUZZ_CHECK(!m.tracks.empty(), "a movie has a track");
  for (const auto& t : m.tracks) {
    FUZZ_CHECK(t.timescale > 0, "timescale");
    FUZZ_CHECK(!t.samples.empty(), "samples");
    for (const auto& s : t.samples)
      FUZZ_CHECK(s.offset <= file_size && s.size <= file_size - s.offset, "inside");
  }
  auto index = cut_segments(m, target_ms);
  FUZZ_CHECK(index.tracks.size() == m.tracks.size(), "cuts per track");
  const auto segments = index.tracks.empty() ? 0 : index.tracks[0].segments();
  for (std::size_t i = 0; i < m.tracks.size(); ++i) {
    const auto& t = m.tracks[i];
    const auto& c = index.tracks[i];
    FUZZ_CHECK(c.segments() == segments && segments >= 1, "the same segment count for every track");
    FUZZ_CHECK(c.first.front() == 0 && c.first.back() == t.samples.size(), "every sample");
    for (std::size_t n = 0; n < c.segments(); ++n) {
      FUZZ_CHECK(c.first[n] <= c.first[n + 1] && c.dts[n] <= c.dts[n + 1], "in order");
      if (n < 3 || n + 1 == c.segments()) {  // a few: a segment's head is built from all of its samples
        auto seg = make_media_segment(t, c, n);
        std::uint64_t payload = 0;
        for (auto k = c.first[n]; k < c.first[n + 1]; ++k) payload += t.samples[k].size;
        FUZZ_CHECK(seg.payload == payload, "the runs hold the samples");
        cursor mdat(as_bytes(seg.head).subspan(seg.head.size() - (seg.payload + 8 > 0xffffffffull ? 16 : 8)));
        const auto size = mdat.u32();
        FUZZ_CHECK(size == 1 || size == seg.payload + 8, "mdat's size");
      }
    }
    const auto target = target_duration(t, c);
    for (std::size_t n = 0; n < c.segments(); ++n)
      FUZZ_CHECK(std::llround(c.seconds(n, t.timescale)) <= target, "EXTINF <= target");
    auto init = init_segment(m, t);
    FUZZ_CHECK(read_boxes(as_bytes(init), "init").ok(), "the init segment is well-formed");
    (void)media_playlist(m, index, i);
  }
  check_subtitles(m, index, file);
  (void)master_playlist(m, index);
  (void)dash_manifest(m, index);
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  if (size < 1) return 0;
  const std::uint32_t target_ms = 1000u * (1 + data[0] % 8);
  const bytes file(data + 1, size - 1);
  // As the server does: from the start, then wherever the locator says, over the whole input.
  std::uint64_t at = 0;
  for (int reads = 0; reads < 16; ++reads) {
    auto step = locate_moov(file.subspan(static_cast<std::size_t>(at)), at, file.size(), 1 << 20);
    if (!step) {
      check_error(step.err());
      return 0;
    }
    if (step->found) {
      FUZZ_CHECK(step->found->offset + step->found->size <= file.size(), "moov inside the file");
      const auto moov = file.subspan(static_cast<std::size_t>(step->found->offset + step->found->header),
                                     static_cast<std::size_t>(step->found->size - step->found->header));
      parse_limits limits;
      limits.max_samples = 200'000;  // keeps every input fast
      auto m = parse_movie(moov, file.size(), limits);
      if (!m) {
        check_error(m.err());
        return 0;
      }
      check_movie(*m, file.size(), target_ms, file);
      return 0;
    }
    FUZZ_CHECK(step->next_read > at && step->next_read < file.size(), "the locator moves forward");
    at = step->next_read;
  }
  return 0;
}
