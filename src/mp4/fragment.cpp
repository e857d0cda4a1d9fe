#include "mp4/fragment.hpp"

#include "mp4/bytes.hpp"

namespace mediagate::mp4 {
namespace {

// trun sample flags (§8.8.3.1): a sync sample depends on nothing; others depend on others and are not sync.
constexpr std::uint32_t kSyncFlags = 0x02000000;
constexpr std::uint32_t kNonSyncFlags = 0x01010000;

}  // namespace

std::string init_segment(const movie& m, const track& t) {
  writer w;
  auto ftyp = w.open(fourcc("ftyp"));
  w.u32(fourcc("iso6"));
  w.u32(0);
  for (auto brand : {fourcc("iso6"), fourcc("cmfc"), fourcc("mp41")}) w.u32(brand);
  w.close(ftyp);
  auto moov = w.open(fourcc("moov"));
  w.raw(m.mvhd);
  auto trak = w.open(fourcc("trak"));
  w.raw(t.tkhd);
  // No edts: the edit list is applied in the fragments' tfdt and composition offsets (apply_edit_lists).
  auto mdia = w.open(fourcc("mdia"));
  w.raw(t.mdhd);
  w.raw(t.hdlr);
  auto minf = w.open(fourcc("minf"));
  w.raw(t.media_header);
  w.raw(t.dinf);
  auto stbl = w.open(fourcc("stbl"));
  w.raw(t.stsd);
  for (auto type : {fourcc("stts"), fourcc("stsc"), fourcc("stco")}) {
    auto b = w.open_full(type, 0, 0);
    w.u32(0);
    w.close(b);
  }
  auto stsz = w.open_full(fourcc("stsz"), 0, 0);
  w.u32(0);
  w.u32(0);
  w.close(stsz);
  w.close(stbl);
  w.close(minf);
  w.close(mdia);
  w.close(trak);
  auto mvex = w.open(fourcc("mvex"));
  auto trex = w.open_full(fourcc("trex"), 0, 0);
  w.u32(t.id);
  w.u32(1);  // sample description index
  w.u32(0);
  w.u32(0);
  w.u32(t.kind == track_kind::video ? kNonSyncFlags : 0);
  w.close(trex);
  w.close(mvex);
  w.close(moov);
  return std::move(w.str());
}

media_segment make_media_segment(const track& t, const track_cuts& cuts, std::size_t n) {
  const auto first = cuts.first[n], end = cuts.first[n + 1];
  media_segment seg;
  seg.runs = sample_runs(t, first, end);
  for (const auto& r : seg.runs) seg.payload += r.length;
  const bool video = t.kind == track_kind::video;
  bool any_cts = false, negative_cts = false;
  auto cts = [&](std::uint32_t i) { return static_cast<std::int64_t>(t.samples[i].cts) - t.cts_shift; };
  for (auto i = first; i < end; ++i) {
    any_cts |= cts(i) != 0;
    negative_cts |= cts(i) < 0;
  }
  writer w;
  auto moof = w.open(fourcc("moof"));
  auto mfhd = w.open_full(fourcc("mfhd"), 0, 0);
  w.u32(static_cast<std::uint32_t>(n + 1));
  w.close(mfhd);
  auto traf = w.open(fourcc("traf"));
  auto tfhd = w.open_full(fourcc("tfhd"), 0, 0x020000);  // default-base-is-moof
  w.u32(t.id);
  w.close(tfhd);
  auto tfdt = w.open_full(fourcc("tfdt"), 1, 0);
  w.u64(cuts.dts[n] + t.decode_offset);
  w.close(tfdt);
  std::uint32_t flags = 0x000001 | 0x000100 | 0x000200;  // data offset, durations, sizes
  if (video) flags |= 0x000400;                          // per-sample flags
  if (any_cts) flags |= 0x000800;
  auto trun = w.open_full(fourcc("trun"), negative_cts ? 1 : 0, flags);
  w.u32(end - first);
  const auto data_offset_at = w.str().size();
  w.u32(0);
  for (auto i = first; i < end; ++i) {
    const auto& s = t.samples[i];
    w.u32(s.duration);
    w.u32(s.size);
    if (video) w.u32(s.sync ? kSyncFlags : kNonSyncFlags);
    if (any_cts) w.u32(static_cast<std::uint32_t>(cts(i)));  // fits: apply_edit_lists checked
  }
  w.close(trun);
  w.close(traf);
  w.close(moof);
  // mdat: a 64-bit size only when the payload needs it.
  const bool large = seg.payload + 8 > 0xffffffffull;
  const std::uint64_t header = large ? 16 : 8;
  const auto data_offset = static_cast<std::uint32_t>(w.str().size() + header);
  for (int i = 0; i < 4; ++i) w.str()[data_offset_at + i] = static_cast<char>(data_offset >> (24 - 8 * i));
  if (large) {
    w.u32(1);
    w.u32(fourcc("mdat"));
    w.u64(seg.payload + 16);
  } else {
    w.u32(static_cast<std::uint32_t>(seg.payload + 8));
    w.u32(fourcc("mdat"));
  }
  seg.head = std::move(w.str());
  return seg;
}

}  // namespace mediagate::mp4
