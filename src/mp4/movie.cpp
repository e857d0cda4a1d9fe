#include "mp4/movie.hpp"

#include <algorithm>
#include <climits>
#include <cmath>
#include <cstdio>

#include "mp4/box.hpp"

namespace mediagate::mp4 {
namespace {

// 30 days of media: a longer track is a broken (or hostile) timescale or duration table.
constexpr std::uint64_t kMaxSeconds = 30ull * 24 * 3600;

std::string copy(const box* b) { return b ? std::string(as_text(b->whole)) : std::string(); }

result<std::vector<box>> children(const box& parent) {
  return read_boxes(parent.payload(), fourcc_text(parent.type));
}

// The payload of a full box (after version and flags), with its version.
struct full_payload {
  std::uint8_t version = 0;
  std::uint32_t flags = 0;
  bytes body;
};
std::optional<full_payload> full(const box& b) {
  cursor c(b.payload());
  full_payload f;
  f.version = c.u8();
  f.flags = c.u24();
  if (!c.ok()) return std::nullopt;
  f.body = c.rest();
  return f;
}

char hex_digit(unsigned v) { return "0123456789abcdef"[v & 15]; }

std::string hex_byte(unsigned v) { return {hex_digit(v >> 4), hex_digit(v)}; }

std::string avc_codecs(std::string_view format, const box& avcc) {
  cursor c(avcc.payload());
  c.u8();  // configurationVersion
  const unsigned profile = c.u8(), compat = c.u8(), level = c.u8();
  if (!c.ok()) return std::string(format);
  return std::string(format) + "." + hex_byte(profile) + hex_byte(compat) + hex_byte(level);
}

// ISO/IEC 14496-15 Annex E.3: hvc1.<space><profile>.<compat, bit-reversed>.<tier><level>.<constraints>
std::string hevc_codecs(std::string_view format, const box& hvcc) {
  cursor c(hvcc.payload());
  c.u8();
  const unsigned b = c.u8();
  const std::uint32_t compat = c.u32();
  std::uint8_t constraints[6];
  for (auto& x : constraints) x = c.u8();
  const unsigned level = c.u8();
  if (!c.ok()) return std::string(format);
  std::string s(format);
  s += '.';
  const unsigned space = b >> 6;
  if (space > 0) s += static_cast<char>('A' + space - 1);
  s += std::to_string(b & 31);
  std::uint32_t reversed = 0;
  for (int i = 0; i < 32; ++i)
    if (compat & (1u << i)) reversed |= 1u << (31 - i);
  char buf[16];
  std::snprintf(buf, sizeof buf, ".%x.", reversed);
  s += buf;
  s += (b & 0x20) ? 'H' : 'L';
  s += std::to_string(level);
  int last = 5;
  while (last >= 0 && constraints[last] == 0) --last;
  for (int i = 0; i <= last; ++i) {
    std::snprintf(buf, sizeof buf, ".%x", constraints[i]);
    s += buf;
  }
  return s;
}

// An MPEG-4 descriptor (ISO/IEC 14496-1 §8.3.3): tag, then a length in up to four 7-bit groups.
bool descriptor(cursor& c, unsigned want_tag, bytes& body) {
  const unsigned tag = c.u8();
  std::uint32_t len = 0;
  for (int i = 0; i < 4; ++i) {
    const unsigned b = c.u8();
    len = (len << 7) | (b & 0x7f);
    if (!(b & 0x80)) break;
  }
  if (!c.ok() || tag != want_tag) return false;
  body = c.take(len);
  return c.ok();
}

// esds → "mp4a.40.2" (AAC LC), or nullopt for audio that is not AAC.
std::optional<std::string> aac_codecs(const box& esds) {
  auto f = full(esds);
  if (!f) return std::nullopt;
  cursor c(f->body);
  bytes es;
  if (!descriptor(c, 3, es)) return std::nullopt;
  cursor e(es);
  e.u16();
  const unsigned flags = e.u8();
  if (flags & 0x80) e.u16();
  if (flags & 0x40) e.skip(e.u8());
  if (flags & 0x20) e.u16();
  bytes dc;
  if (!descriptor(e, 4, dc)) return std::nullopt;
  cursor d(dc);
  const unsigned oti = d.u8();
  d.skip(12);
  if (!d.ok() || (oti != 0x40 && oti != 0x66 && oti != 0x67 && oti != 0x68)) return std::nullopt;
  if (oti != 0x40) return "mp4a." + hex_byte(oti);
  unsigned aot = 2;
  bytes dsi;
  if (descriptor(d, 5, dsi) && !dsi.empty()) {
    aot = dsi[0] >> 3;
    if (aot == 31 && dsi.size() >= 2) aot = 32 + (((dsi[0] & 7) << 3) | (dsi[1] >> 5));
  }
  return "mp4a.40." + std::to_string(aot);
}

// The first sample entry: format, codecs and dimensions or audio parameters. 415 for what we do not
// repackage.
result<bool> read_sample_entry(const box& stsd, track& t) {
  auto f = full(stsd);
  if (!f) return unprocessable("a truncated stsd");
  cursor c(f->body);
  const auto count = c.u32();
  if (!c.ok() || count == 0)
    return unprocessable("track " + std::to_string(t.id) + " has no sample description");
  auto entries = read_boxes(c.rest(), "stsd");
  if (!entries) return entries.err();
  if (entries->empty()) return unprocessable("track " + std::to_string(t.id) + " has no sample description");
  const auto& entry = entries->front();
  t.format = fourcc_text(entry.type);
  cursor e(entry.payload());
  if (t.kind == track_kind::subtitle) {
    if (t.format != "tx3g" && t.format != "wvtt")
      return unsupported("subtitle track " + std::to_string(t.id) + " is '" + t.format +
                         "' (tx3g and wvtt become WebVTT)");
    return true;
  }
  if (t.kind == track_kind::video) {
    if (t.format != "avc1" && t.format != "avc3" && t.format != "hvc1" && t.format != "hev1")
      return unsupported("video track " + std::to_string(t.id) + " is '" + t.format +
                         "' (H.264 and H.265 are repackaged)");
    e.skip(24);
    t.width = e.u16();
    t.height = e.u16();
    e.skip(50);
    if (!e.ok()) return unprocessable("a truncated video sample entry");
    auto kids = read_boxes(e.rest(), t.format);
    if (!kids) return kids.err();
    const bool hevc = t.format[0] == 'h';
    const auto* config = find_box(*kids, hevc ? fourcc("hvcC") : fourcc("avcC"));
    if (!config)
      return unprocessable("video track " + std::to_string(t.id) + " has no decoder configuration");
    t.codecs = hevc ? hevc_codecs(t.format, *config) : avc_codecs(t.format, *config);
  } else {
    if (t.format != "mp4a")
      return unsupported("audio track " + std::to_string(t.id) + " is '" + t.format +
                         "' (AAC is repackaged)");
    e.skip(8);
    const unsigned qt_version = e.u16();
    e.skip(6);
    t.channels = e.u16();
    e.skip(6);
    t.sample_rate = e.u32() >> 16;
    if (qt_version == 1) e.skip(16);  // QuickTime sound description v1/v2 (MOV)
    if (qt_version == 2) e.skip(36);
    if (!e.ok()) return unprocessable("a truncated audio sample entry");
    auto kids = read_boxes(e.rest(), "mp4a");
    if (!kids) return kids.err();
    const box* esds = find_box(*kids, fourcc("esds"));
    if (!esds) {  // QuickTime puts it inside a 'wave' box
      if (const auto* wave = find_box(*kids, fourcc("wave"))) {
        auto wk = children(*wave);
        if (wk) esds = find_box(*wk, fourcc("esds"));
        if (esds) {
          // keep the pointer valid: copy what we need now
          auto codecs = aac_codecs(*esds);
          if (!codecs) return unsupported("audio track " + std::to_string(t.id) + " is not AAC");
          t.codecs = *codecs;
          return true;
        }
      }
      return unprocessable("audio track " + std::to_string(t.id) + " has no esds");
    }
    auto codecs = aac_codecs(*esds);
    if (!codecs) return unsupported("audio track " + std::to_string(t.id) + " is not AAC");
    t.codecs = *codecs;
  }
  return true;
}

struct table {
  bytes body;
  std::uint32_t count = 0;
};

// A full box whose body starts with an entry count of `entry_size`-byte entries that must fit the box.
result<table> entries(const box* b, std::size_t entry_size, std::size_t skip_before_count = 0) {
  if (!b) return table{};
  auto f = full(*b);
  if (!f) return unprocessable("a truncated '" + fourcc_text(b->type) + "'");
  cursor c(f->body);
  c.skip(skip_before_count);
  table t;
  t.count = c.u32();
  if (!c.ok() || (entry_size && t.count > c.left() / entry_size))
    return unprocessable("'" + fourcc_text(b->type) + "' claims " + std::to_string(t.count) +
                         " entries but is " + std::to_string(b->whole.size()) + " bytes");
  t.body = c.rest();
  return t;
}

result<bool> build_samples(const std::vector<box>& stbl, track& t, std::uint64_t file_size,
                           const parse_limits& limits) {
  const auto name = "track " + std::to_string(t.id) + ": ";
  // Sizes (stsz or stz2) fix the sample count; every other table must agree with it.
  std::uint64_t count = 0;
  std::uint32_t constant = 0;
  const box* stsz = find_box(stbl, fourcc("stsz"));
  const box* stz2 = find_box(stbl, fourcc("stz2"));
  if (stsz) {
    auto f = full(*stsz);
    cursor c(f ? f->body : bytes());
    constant = c.u32();
    count = c.u32();
    if (!c.ok() || !f) return unprocessable(name + "a truncated stsz");
    if (count > limits.max_samples)
      return unprocessable(name + std::to_string(count) + " samples is too many");
    if (constant == 0 && count > c.left() / 4)
      return unprocessable(name + "stsz claims " + std::to_string(count) + " samples but is " +
                           std::to_string(stsz->whole.size()) + " bytes");
    t.samples.resize(count);
    for (auto& s : t.samples) s.size = constant ? constant : c.u32();
  } else if (stz2) {
    auto f = full(*stz2);
    cursor c(f ? f->body : bytes());
    c.u24();
    const unsigned field = c.u8();
    count = c.u32();
    if (!c.ok() || !f || (field != 4 && field != 8 && field != 16)) return unprocessable(name + "a bad stz2");
    if (count > limits.max_samples || count > c.left() * 8 / field)
      return unprocessable(name + "stz2 claims " + std::to_string(count) + " samples");
    t.samples.resize(count);
    for (std::uint64_t i = 0; i < count; ++i) {
      if (field == 4) {
        const auto b = c.rest()[0];
        t.samples[i].size = (i % 2 == 0) ? (b >> 4) : (b & 15);
        if (i % 2 == 1) c.u8();
      } else {
        t.samples[i].size = static_cast<std::uint32_t>(c.be(field / 8));
      }
    }
  } else {
    return unprocessable(name + "no sample size table (stsz)");
  }
  if (count == 0) return unprocessable(name + "no samples");
  for (const auto& s : t.samples)
    if (s.size > limits.max_sample_size)
      return unprocessable(name + "a sample of " + std::to_string(s.size) + " bytes");

  // stts: durations.
  auto stts = entries(find_box(stbl, fourcc("stts")), 8);
  if (!stts) return stts.err();
  if (!find_box(stbl, fourcc("stts"))) return unprocessable(name + "no time-to-sample table (stts)");
  {
    cursor c(stts->body);
    std::uint64_t i = 0;
    for (std::uint32_t e = 0; e < stts->count; ++e) {
      const std::uint32_t n = c.u32(), delta = c.u32();
      if (n > count - i) return unprocessable(name + "stts describes more samples than stsz");
      for (std::uint32_t k = 0; k < n; ++k) t.samples[i++].duration = delta;
      t.total_duration += std::uint64_t(n) * delta;
    }
    if (i != count) return unprocessable(name + "stts describes fewer samples than stsz");
  }
  if (t.total_duration / t.timescale > kMaxSeconds)
    return unprocessable(name + "a duration of " + std::to_string(t.total_duration / t.timescale) + " s");

  // ctts: composition offsets (version 1 signed; version 0 read as signed too, as every player does).
  if (const auto* b = find_box(stbl, fourcc("ctts"))) {
    auto ctts = entries(b, 8);
    if (!ctts) return ctts.err();
    cursor c(ctts->body);
    std::uint64_t i = 0;
    for (std::uint32_t e = 0; e < ctts->count && i < count; ++e) {
      const std::uint32_t n = c.u32();
      const auto off = static_cast<std::int32_t>(c.u32());
      if (n > count - i) return unprocessable(name + "ctts describes more samples than stsz");
      for (std::uint32_t k = 0; k < n; ++k) t.samples[i++].cts = off;
    }
  }

  // stss: sync samples; none means every sample is one.
  if (const auto* b = find_box(stbl, fourcc("stss"))) {
    auto stss = entries(b, 4);
    if (!stss) return stss.err();
    cursor c(stss->body);
    for (std::uint32_t e = 0; e < stss->count; ++e) {
      const std::uint32_t n = c.u32();
      if (n == 0 || n > count) return unprocessable(name + "stss names sample " + std::to_string(n));
      t.samples[n - 1].sync = true;
    }
  } else {
    for (auto& s : t.samples) s.sync = true;
  }

  // Chunk offsets and the sample-to-chunk map give each sample's offset.
  const box* stco = find_box(stbl, fourcc("stco"));
  const box* co64 = find_box(stbl, fourcc("co64"));
  if (!stco && !co64) return unprocessable(name + "no chunk offset table (stco/co64)");
  auto chunks = entries(stco ? stco : co64, stco ? 4 : 8);
  if (!chunks) return chunks.err();
  auto stsc = entries(find_box(stbl, fourcc("stsc")), 12);
  if (!stsc) return stsc.err();
  if (stsc->count == 0) return unprocessable(name + "no sample-to-chunk table (stsc)");
  cursor offsets(chunks->body);
  cursor map(stsc->body);
  std::uint32_t first = map.u32(), per_chunk = map.u32(), desc = map.u32();
  std::uint32_t next_first = 0, next_per = 0, next_desc = 0;
  std::uint32_t entries_read = 1;
  auto read_next = [&] {
    if (entries_read < stsc->count) {
      next_first = map.u32();
      next_per = map.u32();
      next_desc = map.u32();
      ++entries_read;
    } else {
      next_first = 0;
    }
  };
  read_next();
  if (first != 1) return unprocessable(name + "stsc does not start at chunk 1");
  std::uint64_t i = 0;
  for (std::uint32_t chunk = 1; chunk <= chunks->count && i < count; ++chunk) {
    while (next_first != 0 && chunk >= next_first) {
      if (next_first <= first) return unprocessable(name + "stsc entries out of order");
      first = next_first;
      per_chunk = next_per;
      desc = next_desc;
      read_next();
    }
    if (desc != 1) return unsupported(name + "several sample descriptions in one track");
    std::uint64_t offset = stco ? offsets.u32() : offsets.u64();
    if (per_chunk > count - i) return unprocessable(name + "stsc describes more samples than stsz");
    for (std::uint32_t k = 0; k < per_chunk; ++k) {
      auto& s = t.samples[i++];
      if (offset > file_size || s.size > file_size - offset)
        return unprocessable(name + "sample " + std::to_string(i) + " lies past the end of the file");
      s.offset = offset;
      offset += s.size;
    }
  }
  if (next_first != 0 && next_first <= chunks->count + 1 && i < count)
    return unprocessable(name + "stsc does not cover every sample");
  if (i != count)
    return unprocessable(name + "stsc and stco place " + std::to_string(i) + " of " + std::to_string(count) +
                         " samples");
  return true;
}

// The edit list's start (§8.6.6): empty edits (media_time -1) first, then the first media edit's media_time.
// What follows it is not applied (see apply_edit_lists).
result<bool> read_edit_list(const box& edts, track& t, std::uint32_t movie_timescale) {
  const auto name = "track " + std::to_string(t.id) + ": ";
  auto kids = children(edts);
  if (!kids) return kids.err();
  const auto* elst = find_box(*kids, fourcc("elst"));
  if (!elst) return true;
  auto f = full(*elst);
  if (!f) return unprocessable(name + "a truncated elst");
  cursor c(f->body);
  const std::uint32_t count = c.u32();
  const std::size_t entry = f->version == 1 ? 20 : 12;
  if (!c.ok() || count > c.left() / entry)
    return unprocessable(name + "elst claims " + std::to_string(count) + " entries but is " +
                         std::to_string(elst->whole.size()) + " bytes");
  const std::uint64_t max_delay = kMaxSeconds * movie_timescale;
  for (std::uint32_t i = 0; i < count; ++i) {
    const std::uint64_t duration = f->version == 1 ? c.u64() : c.u32();
    const std::int64_t media_time =
        f->version == 1 ? static_cast<std::int64_t>(c.u64()) : static_cast<std::int32_t>(c.u32());
    c.u32();  // media rate
    if (media_time == -1) {
      if (duration > max_delay - t.edit_delay)
        return unprocessable(name + "an empty edit of more than " + std::to_string(kMaxSeconds) + " s");
      t.edit_delay += duration;
      continue;
    }
    if (media_time < 0 || static_cast<std::uint64_t>(media_time) > t.total_duration || media_time > INT32_MAX)
      return unprocessable(name + "the edit list starts at " + std::to_string(media_time) +
                           ", outside the track's " + std::to_string(t.total_duration) + " ticks");
    t.edit_media_start = static_cast<std::uint64_t>(media_time);
    break;
  }
  return true;
}

result<std::optional<track>> read_track(const box& trak, std::uint64_t file_size, const parse_limits& limits,
                                        std::uint32_t movie_timescale) {
  auto kids = children(trak);
  if (!kids) return kids.err();
  const auto* tkhd = find_box(*kids, fourcc("tkhd"));
  const auto* mdia = find_box(*kids, fourcc("mdia"));
  if (!tkhd || !mdia) return unprocessable("a track without tkhd or mdia");
  track t;
  {
    auto f = full(*tkhd);
    if (!f) return unprocessable("a truncated tkhd");
    cursor c(f->body);
    c.skip(f->version == 1 ? 16 : 8);
    t.id = c.u32();
    if (!c.ok() || t.id == 0) return unprocessable("a tkhd without a track id");
  }
  auto mk = children(*mdia);
  if (!mk) return mk.err();
  const auto* mdhd = find_box(*mk, fourcc("mdhd"));
  const auto* hdlr = find_box(*mk, fourcc("hdlr"));
  const auto* minf = find_box(*mk, fourcc("minf"));
  if (!mdhd || !hdlr || !minf)
    return unprocessable("track " + std::to_string(t.id) + " lacks mdhd, hdlr or minf");
  {
    auto f = full(*hdlr);
    cursor c(f ? f->body : bytes());
    c.u32();
    const auto handler = c.u32();
    if (!c.ok()) return unprocessable("a truncated hdlr");
    if (handler == fourcc("vide"))
      t.kind = track_kind::video;
    else if (handler == fourcc("soun"))
      t.kind = track_kind::audio;
    else if (handler == fourcc("text") || handler == fourcc("sbtl") || handler == fourcc("subt"))
      t.kind = track_kind::subtitle;
    else
      return std::optional<track>();  // timecode, hints, metadata: not repackaged
  }
  {
    auto f = full(*mdhd);
    cursor c(f ? f->body : bytes());
    c.skip(f && f->version == 1 ? 16 : 8);
    t.timescale = c.u32();
    c.skip(f && f->version == 1 ? 8 : 4);
    const auto lang = c.u16();
    if (!c.ok() || !f) return unprocessable("a truncated mdhd");
    if (t.timescale == 0) return unprocessable("track " + std::to_string(t.id) + " has timescale 0");
    if (lang != 0 && lang != 0x7fff) {
      std::string l;
      for (int shift : {10, 5, 0}) l += static_cast<char>(((lang >> shift) & 31) + 0x60);
      if (l >= "aaa" && l <= "zzz") t.language = l;
    }
  }
  auto nk = children(*minf);
  if (!nk) return nk.err();
  const auto* stbl = find_box(*nk, fourcc("stbl"));
  if (!stbl) return unprocessable("track " + std::to_string(t.id) + " has no sample table");
  auto sk = children(*stbl);
  if (!sk) return sk.err();
  const auto* stsd = find_box(*sk, fourcc("stsd"));
  if (!stsd) return unprocessable("track " + std::to_string(t.id) + " has no stsd");
  auto entry = read_sample_entry(*stsd, t);
  if (!entry) return entry.err();
  auto text_limits = limits;
  if (t.kind == track_kind::subtitle)
    text_limits.max_samples = std::min(limits.max_samples, limits.max_text_samples);
  auto built = build_samples(*sk, t, file_size, text_limits);
  // A subtitle track that cannot be read (or has more cues than any film) is left out; the movie still plays.
  if (!built && t.kind == track_kind::subtitle) return std::optional<track>();
  if (!built) return built.err();
  if (const auto* edts = find_box(*kids, fourcc("edts"))) {
    auto edits = read_edit_list(*edts, t, movie_timescale);
    if (!edits && t.kind == track_kind::subtitle) return std::optional<track>();
    if (!edits) return edits.err();
  }
  t.tkhd = copy(tkhd);
  t.mdhd = copy(mdhd);
  t.hdlr = copy(hdlr);
  t.media_header = copy(find_box(*nk, t.kind == track_kind::video ? fourcc("vmhd") : fourcc("smhd")));
  t.dinf = copy(find_box(*nk, fourcc("dinf")));
  t.stsd = copy(stsd);
  return std::optional<track>(std::move(t));
}

}  // namespace

result<movie> parse_movie(bytes moov_payload, std::uint64_t file_size, const parse_limits& limits) {
  auto kids = read_boxes(moov_payload, "moov");
  if (!kids) return kids.err();
  movie m;
  const auto* mvhd = find_box(*kids, fourcc("mvhd"));
  if (!mvhd) return unprocessable("moov has no mvhd");
  {
    auto f = full(*mvhd);
    cursor c(f ? f->body : bytes());
    c.skip(f && f->version == 1 ? 16 : 8);
    m.timescale = c.u32();
    if (!c.ok() || !f) return unprocessable("a truncated mvhd");
    if (m.timescale == 0) return unprocessable("the movie timescale is 0");
  }
  m.mvhd = copy(mvhd);
  if (find_box(*kids, fourcc("mvex"))) return unsupported("fragmented MP4 input (moov has mvex)");
  std::string skipped;
  for (const auto& b : *kids) {
    if (b.type != fourcc("trak")) continue;
    auto t = read_track(b, file_size, limits, m.timescale);
    if (!t) {
      if (t.err().code == errc::unsupported_media) {  // another track may still play
        if (skipped.empty() || skipped.find("subtitle") != std::string::npos) skipped = t.err().message;
        continue;
      }
      return t.err();
    }
    if (*t && (*t)->kind == track_kind::subtitle)
      m.subtitles.push_back(std::move(**t));
    else if (*t)
      m.tracks.push_back(std::move(**t));
  }
  bool video = false, audio = false;
  for (const auto& t : m.tracks) (t.kind == track_kind::video ? video : audio) = true;
  if (!video && !audio)
    return skipped.empty() ? unsupported("no H.264, H.265 or AAC track")
                           : error{errc::unsupported_media, skipped};
  // Several video tracks: the first one is the one played (HLS variants of other pictures are not made).
  bool seen_video = false;
  std::erase_if(m.tracks, [&](const track& t) {
    if (t.kind != track_kind::video) return false;
    if (seen_video) return true;
    seen_video = true;
    return false;
  });
  apply_edit_lists(m);
  return m;
}

void apply_edit_lists(movie& m) {
  // Each track's first presentation time (seconds) with its edits applied, before any common shift.
  std::vector<bool> shift_in_cts(m.tracks.size());
  double earliest = 0;
  for (std::size_t i = 0; i < m.tracks.size(); ++i) {
    auto& t = m.tracks[i];
    std::int64_t first_pts = 0;
    std::int64_t min_cts = 0;
    for (const auto& s : t.samples) min_cts = std::min<std::int64_t>(min_cts, s.cts);
    shift_in_cts[i] = std::any_of(t.samples.begin(), t.samples.end(), [](const sample& s) { return s.cts; });
    // Shifted offsets must fit trun's 32 bits; a (hostile) edit that does not fit is not applied.
    if (shift_in_cts[i] && min_cts - static_cast<std::int64_t>(t.edit_media_start) < INT32_MIN)
      t.edit_media_start = 0;
    if (shift_in_cts[i]) {
      first_pts = INT64_MAX;
      std::int64_t dts = 0;
      for (const auto& s : t.samples) {
        first_pts = std::min(first_pts, dts + s.cts);
        dts += s.duration;
      }
    }
    const double first = double(t.edit_delay) / m.timescale +
                         double(first_pts - static_cast<std::int64_t>(t.edit_media_start)) / t.timescale;
    earliest = std::min(earliest, first);
  }
  // Subtitles follow the audio and video (their cues have no composition offsets: the shift goes in tfdt).
  for (auto& t : m.subtitles) {
    const auto start =
        std::llround((double(t.edit_delay) / m.timescale - earliest) * static_cast<double>(t.timescale));
    t.decode_offset = static_cast<std::uint64_t>(
        std::max<long long>(0, start - static_cast<long long>(t.edit_media_start)));
  }
  for (std::size_t i = 0; i < m.tracks.size(); ++i) {
    auto& t = m.tracks[i];
    // Where this track's media time edit_media_start lands on the common timeline, in its ticks.
    const auto start =
        std::llround((double(t.edit_delay) / m.timescale - earliest) * static_cast<double>(t.timescale));
    if (shift_in_cts[i]) {
      t.cts_shift = static_cast<std::int64_t>(t.edit_media_start);
      t.decode_offset = static_cast<std::uint64_t>(std::max<long long>(0, start));
    } else {
      t.cts_shift = 0;
      t.decode_offset = static_cast<std::uint64_t>(
          std::max<long long>(0, start - static_cast<long long>(t.edit_media_start)));
    }
  }
}

}  // namespace mediagate::mp4
