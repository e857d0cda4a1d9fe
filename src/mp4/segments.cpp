#include "mp4/segments.hpp"

namespace mediagate::mp4 {
namespace {

using u128 = unsigned __int128;

// Cuts `t` at the first sample whose decode time (on the edited timeline: plus its decode_offset) is at or
// after each time of `cuts` (given in `scale`, also on that timeline): one boundary per cut, so that every
// track has as many segments as the leading one (some perhaps empty).
track_cuts cut_at(const track& t, const std::vector<std::uint64_t>& cuts, std::uint32_t scale) {
  track_cuts out;
  out.first.push_back(0);
  out.dts.push_back(0);
  std::uint64_t dts = 0;
  std::uint32_t i = 0;
  const auto n = static_cast<std::uint32_t>(t.samples.size());
  for (const auto cut : cuts) {
    while (i < n && u128(dts + t.decode_offset) * scale < u128(cut) * t.timescale)
      dts += t.samples[i++].duration;
    out.first.push_back(i);
    out.dts.push_back(dts);
  }
  while (i < n) dts += t.samples[i++].duration;
  out.first.push_back(n);
  out.dts.push_back(dts);
  return out;
}

}  // namespace

segment_index cut_segments(const movie& m, std::uint32_t target_ms) {
  if (target_ms == 0) target_ms = 6000;
  segment_index index;
  index.tracks.resize(m.tracks.size());
  // The leading track: the video, else the first audio track.
  std::size_t lead = 0;
  for (std::size_t i = 0; i < m.tracks.size(); ++i)
    if (m.tracks[i].kind == track_kind::video) {
      lead = i;
      break;
    }
  const auto& t = m.tracks[lead];
  track_cuts cuts;
  std::uint64_t dts = 0, next_ms = 0;
  for (std::uint32_t i = 0; i < t.samples.size(); ++i) {
    if (t.samples[i].sync && u128(dts) * 1000 >= u128(next_ms) * t.timescale) {
      cuts.first.push_back(i);
      cuts.dts.push_back(dts);
      // The next cut: the first sync sample at or after the next multiple of the target past this one.
      next_ms = (u128(dts) * 1000 / t.timescale / target_ms + 1) * target_ms;
    }
    dts += t.samples[i].duration;
  }
  if (cuts.first.empty() || cuts.first.front() != 0) {  // no sync sample first: the segment starts anyway
    cuts.first.insert(cuts.first.begin(), 0);
    cuts.dts.insert(cuts.dts.begin(), 0);
  }
  std::vector<std::uint64_t> times;
  for (std::size_t n = 1; n < cuts.dts.size(); ++n) times.push_back(cuts.dts[n] + t.decode_offset);
  cuts.first.push_back(static_cast<std::uint32_t>(t.samples.size()));
  cuts.dts.push_back(dts);
  index.tracks[lead] = cuts;
  index.lead = lead;
  for (std::size_t i = 0; i < m.tracks.size(); ++i) {
    if (i == lead) continue;
    index.tracks[i] = cut_at(m.tracks[i], times, t.timescale);
  }
  for (const auto& s : m.subtitles) index.subtitles.push_back(cut_at(s, times, t.timescale));
  return index;
}

std::vector<byte_run> sample_runs(const track& t, std::uint32_t first, std::uint32_t end) {
  std::vector<byte_run> runs;
  for (std::uint32_t i = first; i < end; ++i) {
    const auto& s = t.samples[i];
    if (s.size == 0) continue;
    if (!runs.empty() && runs.back().offset + runs.back().length == s.offset)
      runs.back().length += s.size;
    else
      runs.push_back({s.offset, s.size});
  }
  return runs;
}

}  // namespace mediagate::mp4
