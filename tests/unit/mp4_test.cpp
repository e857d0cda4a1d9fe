// The MP4 reader, segmenter, CMAF writers and HLS playlists (src/mp4/), on MP4 indexes built here box by box.
#include <gtest/gtest.h>

#include <cmath>
#include <functional>

#include "mp4/box.hpp"
#include "mp4/fragment.hpp"
#include "mp4/index_file.hpp"
#include "mp4/locate.hpp"
#include "mp4/movie.hpp"
#include "mp4/playlist.hpp"
#include "mp4/segments.hpp"
#include "mp4/webvtt.hpp"
#include "server/hls.hpp"

namespace mediagate::mp4 {
namespace {

// A track as the test describes it; build_moov() writes the boxes.
struct track_spec {
  bool video = true;
  std::uint32_t id = 1;
  std::uint32_t timescale = 15360;
  std::vector<std::uint32_t> sizes;
  std::vector<std::uint32_t> durations;  // one per sample
  std::vector<std::int32_t> cts;         // empty: no ctts
  std::vector<std::uint32_t> sync;       // 1-based; empty: no stss
  std::uint32_t per_chunk = 5;
  std::uint64_t first_offset = 1000;
  std::uint64_t chunk_gap = 0;  // bytes between chunks (another track's chunk)
  std::string format;           // default avc1 / mp4a; "tx3g" or "wvtt": a subtitle track
  bool stz2 = false;
  std::vector<std::pair<std::int64_t, std::uint32_t>>
      edits;  // elst: (media_time, duration in ms); empty: none
};

void full_box(writer& w, const char (&type)[5], std::uint8_t version, std::uint32_t flags,
              const std::function<void(writer&)>& body) {
  auto b = w.open_full(fourcc(type), version, flags);
  body(w);
  w.close(b);
}
void plain_box(writer& w, const char (&type)[5], const std::function<void(writer&)>& body) {
  auto b = w.open(fourcc(type));
  body(w);
  w.close(b);
}

bool subtitle(const track_spec& t) { return t.format == "tx3g" || t.format == "wvtt"; }

void sample_entry(writer& w, const track_spec& t) {
  if (subtitle(t)) {
    auto e = w.open(t.format == "tx3g" ? fourcc("tx3g") : fourcc("wvtt"));
    for (int i = 0; i < 6; ++i) w.u8(0);
    w.u16(1);
    for (int i = 0; i < 30; ++i) w.u8(0);
    w.close(e);
  } else if (t.video) {
    auto e = w.open(t.format.empty() ? fourcc("avc1") : fourcc("hvc1"));
    for (int i = 0; i < 6; ++i) w.u8(0);
    w.u16(1);
    for (int i = 0; i < 16; ++i) w.u8(0);
    w.u16(640);
    w.u16(360);
    for (int i = 0; i < 50; ++i) w.u8(0);
    if (t.format.empty()) {
      plain_box(w, "avcC", [](writer& w) {
        w.u8(1);
        w.u8(0x64);
        w.u8(0x00);
        w.u8(0x1f);
        w.u8(0xff);
        w.u8(0xe0);
        w.u8(0);
      });
    } else {
      plain_box(w, "hvcC", [](writer& w) {
        w.u8(1);
        w.u8(0x01);  // space 0, tier main, profile 1
        w.u32(0x60000000);
        for (int i = 0; i < 6; ++i) w.u8(i == 0 ? 0x90 : 0);
        w.u8(93);
      });
    }
    w.close(e);
  } else {
    auto e = w.open(fourcc("mp4a"));
    for (int i = 0; i < 6; ++i) w.u8(0);
    w.u16(1);
    w.u64(0);
    w.u16(2);
    w.u16(16);
    w.u32(0);
    w.u32(48000u << 16);
    full_box(w, "esds", 0, 0, [](writer& w) {
      w.u8(3);
      w.u8(25);
      w.u16(1);
      w.u8(0);
      w.u8(4);
      w.u8(17);
      w.u8(0x40);
      w.u8(0x15);
      w.u24(0);
      w.u32(96000);
      w.u32(96000);
      w.u8(5);
      w.u8(2);
      w.u8(0x11);
      w.u8(0x90);
      w.u8(6);
      w.u8(1);
      w.u8(2);
    });
    w.close(e);
  }
}

void trak(writer& w, const track_spec& t) {
  plain_box(w, "trak", [&](writer& w) {
    full_box(w, "tkhd", 0, 3, [&](writer& w) {
      w.u64(0);
      w.u32(t.id);
      for (int i = 0; i < 72; ++i) w.u8(0);
    });
    if (!t.edits.empty())
      plain_box(w, "edts", [&](writer& w) {
        full_box(w, "elst", 0, 0, [&](writer& w) {
          w.u32(static_cast<std::uint32_t>(t.edits.size()));
          for (auto [media_time, ms] : t.edits) {
            w.u32(ms);
            w.u32(static_cast<std::uint32_t>(media_time));
            w.u32(0x00010000);
          }
        });
      });
    plain_box(w, "mdia", [&](writer& w) {
      full_box(w, "mdhd", 0, 0, [&](writer& w) {
        w.u64(0);
        w.u32(t.timescale);
        w.u32(0);
        w.u16(0x15c7);  // "eng"
        w.u16(0);
      });
      full_box(w, "hdlr", 0, 0, [&](writer& w) {
        w.u32(0);
        w.u32(subtitle(t) ? fourcc("text") : t.video ? fourcc("vide") : fourcc("soun"));
        for (int i = 0; i < 13; ++i) w.u8(0);
      });
      plain_box(w, "minf", [&](writer& w) {
        plain_box(w, "stbl", [&](writer& w) {
          full_box(w, "stsd", 0, 0, [&](writer& w) {
            w.u32(1);
            sample_entry(w, t);
          });
          full_box(w, "stts", 0, 0, [&](writer& w) {
            w.u32(static_cast<std::uint32_t>(t.durations.size()));
            for (auto d : t.durations) {
              w.u32(1);
              w.u32(d);
            }
          });
          if (!t.cts.empty())
            full_box(w, "ctts", 0, 0, [&](writer& w) {
              w.u32(static_cast<std::uint32_t>(t.cts.size()));
              for (auto c : t.cts) {
                w.u32(1);
                w.u32(static_cast<std::uint32_t>(c));
              }
            });
          if (!t.sync.empty())
            full_box(w, "stss", 0, 0, [&](writer& w) {
              w.u32(static_cast<std::uint32_t>(t.sync.size()));
              for (auto s : t.sync) w.u32(s);
            });
          full_box(w, "stsc", 0, 0, [&](writer& w) {
            // A shorter last chunk gets an entry of its own, as muxers write it.
            const auto full_chunks = static_cast<std::uint32_t>(t.sizes.size() / t.per_chunk);
            const auto rest = static_cast<std::uint32_t>(t.sizes.size() % t.per_chunk);
            w.u32(rest && full_chunks ? 2 : 1);
            w.u32(1);
            w.u32(full_chunks ? t.per_chunk : rest);
            w.u32(1);
            if (rest && full_chunks) {
              w.u32(full_chunks + 1);
              w.u32(rest);
              w.u32(1);
            }
          });
          if (t.stz2) {
            full_box(w, "stz2", 0, 0, [&](writer& w) {
              w.u24(0);
              w.u8(16);
              w.u32(static_cast<std::uint32_t>(t.sizes.size()));
              for (auto s : t.sizes) w.u16(static_cast<std::uint16_t>(s));
            });
          } else {
            full_box(w, "stsz", 0, 0, [&](writer& w) {
              w.u32(0);
              w.u32(static_cast<std::uint32_t>(t.sizes.size()));
              for (auto s : t.sizes) w.u32(s);
            });
          }
          const auto chunks = (t.sizes.size() + t.per_chunk - 1) / t.per_chunk;
          full_box(w, "stco", 0, 0, [&](writer& w) {
            w.u32(static_cast<std::uint32_t>(chunks));
            std::uint64_t off = t.first_offset;
            for (std::size_t c = 0; c < chunks; ++c) {
              w.u32(static_cast<std::uint32_t>(off));
              for (std::size_t i = c * t.per_chunk; i < std::min(t.sizes.size(), (c + 1) * t.per_chunk); ++i)
                off += t.sizes[i];
              off += t.chunk_gap;
            }
          });
        });
      });
    });
  });
}

std::string build_moov_payload(const std::vector<track_spec>& tracks) {
  writer w;
  full_box(w, "mvhd", 0, 0, [](writer& w) {
    w.u64(0);
    w.u32(1000);
    w.u32(10000);
    for (int i = 0; i < 80; ++i) w.u8(0);
  });
  for (const auto& t : tracks) trak(w, t);
  return std::move(w.str());
}

// 10 s of 30 fps video with a keyframe every 2 s, B-frame style composition offsets.
track_spec video_10s() {
  track_spec t;
  for (int i = 0; i < 300; ++i) {
    t.sizes.push_back(1000 + i);
    t.durations.push_back(512);
    t.cts.push_back(i % 2 ? 0 : 1024);
  }
  for (std::uint32_t s = 1; s <= 300; s += 60) t.sync.push_back(s);
  t.per_chunk = 30;
  t.chunk_gap = 500;
  return t;
}

// 10 s of 48 kHz AAC (1024-sample frames).
track_spec audio_10s() {
  track_spec t;
  t.video = false;
  t.id = 2;
  t.timescale = 48000;
  for (int i = 0; i < 469; ++i) {
    t.sizes.push_back(300);
    t.durations.push_back(1024);
  }
  t.per_chunk = 47;
  t.first_offset = 5000;
  t.chunk_gap = 31000;
  return t;
}

constexpr std::uint64_t kBigFile = 100'000'000;

result<movie> parse(const std::vector<track_spec>& tracks, std::uint64_t file_size = kBigFile) {
  auto moov = build_moov_payload(tracks);
  return parse_movie(as_bytes(moov), file_size);
}

TEST(Mp4Boxes, SizesAreCheckedAgainstTheParent) {
  writer w;
  w.u32(16);
  w.u32(fourcc("free"));
  w.u64(0);
  w.u32(100);  // claims more than is left
  w.u32(fourcc("skip"));
  auto r = read_boxes(as_bytes(w.str()), "test");
  ASSERT_FALSE(r);
  EXPECT_EQ(r.err().code, errc::unprocessable);
  EXPECT_NE(r.err().message.find("'skip'"), std::string::npos);

  writer small;
  small.u32(4);  // smaller than its own header
  small.u32(fourcc("free"));
  EXPECT_FALSE(read_boxes(as_bytes(small.str()), "test"));

  writer large;  // a 64-bit size
  large.u32(1);
  large.u32(fourcc("free"));
  large.u64(20);
  large.u32(0);
  auto l = read_boxes(as_bytes(large.str()), "test");
  ASSERT_TRUE(l);
  ASSERT_EQ(l->size(), 1u);
  EXPECT_EQ(l->front().header, 16u);
  EXPECT_EQ(l->front().payload().size(), 4u);

  writer to_end;  // size 0: to the end of the parent
  to_end.u32(0);
  to_end.u32(fourcc("mdat"));
  to_end.u32(7);
  auto e = read_boxes(as_bytes(to_end.str()), "test");
  ASSERT_TRUE(e);
  EXPECT_EQ(e->front().whole.size(), 12u);
}

TEST(Mp4Boxes, TooManyChildrenIsAnError) {
  writer w;
  for (std::size_t i = 0; i <= kMaxChildren; ++i) {
    w.u32(8);
    w.u32(fourcc("free"));
  }
  auto r = read_boxes(as_bytes(w.str()), "moov");
  ASSERT_FALSE(r);
  EXPECT_NE(r.err().message.find("more than"), std::string::npos);
}

std::string top_level(std::initializer_list<std::pair<const char*, std::uint32_t>> boxes) {
  writer w;
  for (auto [type, size] : boxes) {
    w.u32(size);
    w.u32(std::uint32_t(type[0]) << 24 | std::uint32_t(type[1]) << 16 | std::uint32_t(type[2]) << 8 |
          std::uint32_t(type[3]));
    for (std::uint32_t i = 8; i < size; ++i) w.u8(0);
  }
  return std::move(w.str());
}

TEST(Mp4Locate, FastStartIsFoundInTheFirstRead) {
  auto file = top_level({{"ftyp", 24}, {"moov", 100}, {"mdat", 1000}});
  auto r = locate_moov(as_bytes(file), 0, file.size(), 1 << 20);
  ASSERT_TRUE(r);
  ASSERT_TRUE(r->found);
  EXPECT_EQ(r->found->offset, 24u);
  EXPECT_EQ(r->found->size, 100u);
}

TEST(Mp4Locate, MoovAtTheEndNeedsOneMoreReadAfterMdat) {
  auto file = top_level({{"ftyp", 24}, {"free", 8}, {"mdat", 100000}, {"moov", 200}});
  auto first = locate_moov(as_bytes(file).subspan(0, 64), 0, file.size(), 1 << 20);
  ASSERT_TRUE(first);
  EXPECT_FALSE(first->found);
  EXPECT_EQ(first->next_read, 100032u);  // never into mdat
  auto second = locate_moov(as_bytes(file).subspan(100032), 100032, file.size(), 1 << 20);
  ASSERT_TRUE(second);
  ASSERT_TRUE(second->found);
  EXPECT_EQ(second->found->offset, 100032u);
}

TEST(Mp4Locate, OtherFormatsAndBrokenFilesAreRefusedWithAReason) {
  const std::string webm("\x1a\x45\xdf\xa3\x9f\x42\x86\x81\x01", 9);
  auto r = locate_moov(as_bytes(webm), 0, 1000, 1 << 20);
  ASSERT_FALSE(r);
  EXPECT_EQ(r.err().code, errc::unsupported_media);
  EXPECT_NE(r.err().message.find("WebM"), std::string::npos);

  const std::string text = "hello, this is not a movie at all";
  auto t = locate_moov(as_bytes(text), 0, text.size(), 1 << 20);
  ASSERT_FALSE(t);
  EXPECT_EQ(t.err().code, errc::unsupported_media);

  auto past = top_level({{"ftyp", 24}, {"mdat", 1000}});
  auto p = locate_moov(as_bytes(past), 0, 500, 1 << 20);  // mdat runs past the end of a 500-byte file
  ASSERT_FALSE(p);
  EXPECT_EQ(p.err().code, errc::unprocessable);

  auto none = top_level({{"ftyp", 24}, {"mdat", 100}});
  auto n = locate_moov(as_bytes(none), 0, none.size(), 1 << 20);
  ASSERT_FALSE(n);
  EXPECT_NE(n.err().message.find("no moov"), std::string::npos);

  auto frag = top_level({{"ftyp", 24}, {"moof", 100}});
  auto f = locate_moov(as_bytes(frag), 0, frag.size(), 1 << 20);
  ASSERT_FALSE(f);
  EXPECT_EQ(f.err().code, errc::unsupported_media);

  auto huge = top_level({{"ftyp", 24}, {"moov", 5000}});
  auto h = locate_moov(as_bytes(huge), 0, huge.size(), 1000);
  ASSERT_FALSE(h);
  EXPECT_NE(h.err().message.find("limit"), std::string::npos);
}

TEST(Mp4Movie, SampleTablesBecomeOffsetsDurationsAndFlags) {
  auto m = parse({video_10s(), audio_10s()});
  ASSERT_TRUE(m) << m.err().message;
  ASSERT_EQ(m->tracks.size(), 2u);
  const auto& v = m->tracks[0];
  EXPECT_EQ(v.kind, track_kind::video);
  EXPECT_EQ(v.codecs, "avc1.64001f");
  EXPECT_EQ(v.width, 640u);
  EXPECT_EQ(v.language, "eng");
  ASSERT_EQ(v.samples.size(), 300u);
  EXPECT_EQ(v.samples[0].offset, 1000u);
  EXPECT_EQ(v.samples[1].offset, 2000u);
  // The second chunk starts after the first chunk's 30 samples and the gap.
  std::uint64_t chunk0 = 0;
  for (int i = 0; i < 30; ++i) chunk0 += 1000 + i;
  EXPECT_EQ(v.samples[30].offset, 1000 + chunk0 + 500);
  EXPECT_TRUE(v.samples[0].sync);
  EXPECT_FALSE(v.samples[1].sync);
  EXPECT_TRUE(v.samples[60].sync);
  EXPECT_EQ(v.samples[0].cts, 1024);
  EXPECT_EQ(v.total_duration, 300u * 512);
  const auto& a = m->tracks[1];
  EXPECT_EQ(a.codecs, "mp4a.40.2");
  EXPECT_EQ(a.sample_rate, 48000u);
  EXPECT_EQ(a.channels, 2u);
  EXPECT_TRUE(a.samples[100].sync);  // no stss: every sample
}

TEST(Mp4Movie, HevcAndCompactSizes) {
  auto v = video_10s();
  v.format = "hvc1";
  v.stz2 = true;
  auto m = parse({v});
  ASSERT_TRUE(m) << m.err().message;
  EXPECT_EQ(m->tracks[0].codecs, "hvc1.1.6.L93.90");
  EXPECT_EQ(m->tracks[0].samples[7].size, 1007u);
}

// Each hostile or inconsistent index is a 422 (or 415) with a reason, never a crash.
TEST(Mp4Movie, InconsistentTablesAre422) {
  struct hostile {
    const char* name;
    std::function<void(track_spec&)> change;
    std::uint64_t file_size;
    const char* reason;
  };
  const std::vector<hostile> cases = {
      {"timescale 0", [](track_spec& t) { t.timescale = 0; }, kBigFile, "timescale 0"},
      {"stts short", [](track_spec& t) { t.durations.pop_back(); }, kBigFile, "stts describes fewer"},
      {"stts long", [](track_spec& t) { t.durations.push_back(1); }, kBigFile, "stts describes more"},
      {"sync 0", [](track_spec& t) { t.sync.push_back(0); }, kBigFile, "stss names sample 0"},
      {"sync past", [](track_spec& t) { t.sync.push_back(301); }, kBigFile, "stss names sample 301"},
      {"past EOF", [](track_spec&) {}, 50000, "past the end of the file"},
      {"absurd duration",
       [](track_spec& t) {
         t.durations[0] = 0xffffffff;
         t.timescale = 1;
       },
       kBigFile, "a duration of"},
      {"no samples",
       [](track_spec& t) {
         t.sizes.clear();
         t.durations.clear();
         t.cts.clear();
         t.sync.clear();
       },
       kBigFile, "no samples"},
  };
  for (const auto& c : cases) {
    auto t = video_10s();
    c.change(t);
    auto m = parse({t}, c.file_size);
    ASSERT_FALSE(m) << c.name;
    EXPECT_EQ(m.err().code, errc::unprocessable) << c.name;
    EXPECT_NE(m.err().message.find(c.reason), std::string::npos) << c.name << ": " << m.err().message;
  }
}

TEST(Mp4Movie, SampleCountsBeyondTheBoxAreRefusedBeforeAllocating) {
  auto moov = build_moov_payload({video_10s()});
  // Patch stsz's sample count to 2^32-1: its table is 300 entries long.
  const auto at = moov.find("stsz");
  ASSERT_NE(at, std::string::npos);
  for (int i = 0; i < 4; ++i) moov[at + 12 + i] = '\xff';
  auto m = parse_movie(as_bytes(moov), kBigFile);
  ASSERT_FALSE(m);
  EXPECT_NE(m.err().message.find("too many"), std::string::npos) << m.err().message;
}

TEST(Mp4Movie, StscPastTheChunkTableIs422) {
  auto moov = build_moov_payload({video_10s()});
  const auto at = moov.find("stsc");
  // samples_per_chunk 30 → 1000: more samples than stsz has.
  moov[at + 18] = 0x03;
  moov[at + 19] = static_cast<char>(0xe8);
  auto m = parse_movie(as_bytes(moov), kBigFile);
  ASSERT_FALSE(m);
  EXPECT_NE(m.err().message.find("stsc"), std::string::npos) << m.err().message;
}

TEST(Mp4Movie, TracksWeDoNotRepackageAre415) {
  auto a = audio_10s();
  auto moov = build_moov_payload({a});
  const auto at = moov.find("mp4a");
  moov.replace(at, 4, "Opus");
  auto m = parse_movie(as_bytes(moov), kBigFile);
  ASSERT_FALSE(m);
  EXPECT_EQ(m.err().code, errc::unsupported_media);
  EXPECT_NE(m.err().message.find("Opus"), std::string::npos);
}

TEST(Mp4Segments, VideoIsCutAtKeyframesAndAudioAtTheSameTimes) {
  auto m = parse({video_10s(), audio_10s()});
  ASSERT_TRUE(m);
  auto index = cut_segments(*m, 6000);
  const auto& v = index.tracks[0];
  ASSERT_EQ(v.segments(), 2u);  // keyframes at 0, 2, 4, 6, 8 s: cuts at 0 and 6 s
  EXPECT_EQ(v.first, (std::vector<std::uint32_t>{0, 180, 300}));
  EXPECT_EQ(v.dts[1], 180u * 512);
  const auto& a = index.tracks[1];
  ASSERT_EQ(a.segments(), 2u);
  // The first audio frame at or after 6 s: ceil(6 * 48000 / 1024) = 282.
  EXPECT_EQ(a.first[1], 282u);
  EXPECT_EQ(a.first[2], 469u);

  auto two = cut_segments(*m, 2000);
  EXPECT_EQ(two.tracks[0].segments(), 5u);
  auto odd =
      cut_segments(*m, 3000);  // 3 s: the keyframe at 4 s is the first past 3 s, then 6 s the first past 6
  EXPECT_EQ(odd.tracks[0].first, (std::vector<std::uint32_t>{0, 120, 180, 300}));
}

TEST(Mp4Segments, AdjacentSamplesMergeIntoOneRun) {
  auto m = parse({video_10s()});
  ASSERT_TRUE(m);
  auto runs = sample_runs(m->tracks[0], 0, 60);  // two chunks of 30
  ASSERT_EQ(runs.size(), 2u);
  EXPECT_EQ(runs[0].offset, 1000u);
  std::uint64_t total = 0;
  for (int i = 0; i < 60; ++i) total += 1000 + i;
  EXPECT_EQ(runs[0].length + runs[1].length, total);
}

TEST(Mp4Fragment, MediaSegmentHeadDescribesItsSamples) {
  auto m = parse({video_10s(), audio_10s()});
  ASSERT_TRUE(m);
  auto index = cut_segments(*m, 6000);
  auto seg = make_media_segment(m->tracks[0], index.tracks[0], 1);
  auto top = read_boxes(as_bytes(seg.head), "segment");
  // The head is moof plus the mdat header alone: read_boxes sees mdat claim more than is there.
  ASSERT_FALSE(top);
  auto moof_box = read_boxes(as_bytes(seg.head).subspan(0, seg.head.size() - 8), "segment");
  ASSERT_TRUE(moof_box) << moof_box.err().message;
  ASSERT_EQ(moof_box->size(), 1u);
  EXPECT_EQ(fourcc_text(moof_box->front().type), "moof");
  cursor mdat(as_bytes(seg.head).subspan(seg.head.size() - 8));
  EXPECT_EQ(mdat.u32(), seg.payload + 8);
  EXPECT_EQ(mdat.u32(), fourcc("mdat"));
  std::uint64_t payload = 0;
  for (std::uint32_t i = 180; i < 300; ++i) payload += m->tracks[0].samples[i].size;
  EXPECT_EQ(seg.payload, payload);
  EXPECT_EQ(seg.size(), seg.head.size() + payload);

  auto kids = read_boxes(moof_box->front().payload(), "moof");
  ASSERT_TRUE(kids);
  const auto* traf = find_box(*kids, fourcc("traf"));
  ASSERT_NE(traf, nullptr);
  auto tk = read_boxes(traf->payload(), "traf");
  ASSERT_TRUE(tk);
  cursor tfdt(find_box(*tk, fourcc("tfdt"))->payload());
  EXPECT_EQ(tfdt.u8(), 1);
  tfdt.u24();
  EXPECT_EQ(tfdt.u64(), 180u * 512);
  cursor trun(find_box(*tk, fourcc("trun"))->payload());
  trun.u8();
  EXPECT_EQ(trun.u24(), 0xf01u);
  EXPECT_EQ(trun.u32(), 120u);
  EXPECT_EQ(trun.u32(), seg.head.size());  // data offset: from moof's start to the first sample
  EXPECT_EQ(trun.u32(), 512u);             // first sample: duration, size, flags (sync), cts
  EXPECT_EQ(trun.u32(), 1180u);
  EXPECT_EQ(trun.u32(), 0x02000000u);
  EXPECT_EQ(trun.u32(), 1024u);

  // The same request makes the same bytes.
  EXPECT_EQ(make_media_segment(m->tracks[0], index.tracks[0], 1).head, seg.head);
}

TEST(Mp4Fragment, InitSegmentHasMvexAndTheSourceSampleDescription) {
  auto m = parse({video_10s(), audio_10s()});
  ASSERT_TRUE(m);
  auto init = init_segment(*m, m->tracks[1]);
  auto top = read_boxes(as_bytes(init), "init");
  ASSERT_TRUE(top);
  ASSERT_EQ(top->size(), 2u);
  EXPECT_EQ(fourcc_text((*top)[0].type), "ftyp");
  EXPECT_EQ(fourcc_text((*top)[1].type), "moov");
  auto moov = read_boxes((*top)[1].payload(), "moov");
  ASSERT_TRUE(moov);
  EXPECT_NE(find_box(*moov, fourcc("mvex")), nullptr);
  EXPECT_NE(init.find(m->tracks[1].stsd), std::string::npos);
  // It parses back as a movie with the same track and no samples (an empty stsz): a fragmented MP4.
  auto again = parse_movie((*top)[1].payload(), 1000);
  ASSERT_FALSE(again);
  EXPECT_EQ(again.err().code, errc::unsupported_media);  // mvex: fragmented
}

TEST(Mp4Playlist, MediaPlaylistFollowsRfc8216) {
  auto m = parse({video_10s(), audio_10s()});
  ASSERT_TRUE(m);
  auto index = cut_segments(*m, 6000);
  auto text = media_playlist(*m, index, 0);
  EXPECT_TRUE(text.starts_with("#EXTM3U\n#EXT-X-VERSION:7\n"));
  EXPECT_NE(text.find("#EXT-X-TARGETDURATION:6\n"), std::string::npos) << text;
  EXPECT_NE(text.find("#EXT-X-MAP:URI=\"1/init.mp4\"\n"), std::string::npos);
  EXPECT_NE(text.find("#EXT-X-PLAYLIST-TYPE:VOD\n"), std::string::npos);
  EXPECT_NE(text.find("#EXTINF:6.000000,\n1/seg-0.m4s\n#EXTINF:4.000000,\n1/seg-1.m4s\n"), std::string::npos);
  EXPECT_TRUE(text.ends_with("#EXT-X-ENDLIST\n"));

  // Every EXTINF, rounded, is at most the target duration, and they add up to the track's duration.
  for (std::uint32_t target : {1000u, 2000u, 3000u, 5000u, 6000u, 10000u}) {
    auto idx = cut_segments(*m, target);
    for (std::size_t t = 0; t < m->tracks.size(); ++t) {
      const auto td = target_duration(m->tracks[t], idx.tracks[t]);
      double sum = 0;
      for (std::size_t n = 0; n < idx.tracks[t].segments(); ++n) {
        const auto d = idx.tracks[t].seconds(n, m->tracks[t].timescale);
        EXPECT_LE(std::llround(d), td);
        sum += d;
      }
      EXPECT_NEAR(sum, double(m->tracks[t].total_duration) / m->tracks[t].timescale, 1e-9);
    }
  }
}

TEST(Mp4Playlist, MasterNamesTheVariantAndTheAudioRenditions) {
  auto a2 = audio_10s();
  auto a3 = audio_10s();
  a3.id = 3;
  auto m = parse({video_10s(), a2, a3});
  ASSERT_TRUE(m);
  auto text = master_playlist(*m, cut_segments(*m, 6000));
  EXPECT_NE(
      text.find("#EXT-X-MEDIA:TYPE=AUDIO,GROUP-ID=\"audio\",NAME=\"eng 2\",LANGUAGE=\"eng\",DEFAULT=YES"),
      std::string::npos)
      << text;
  EXPECT_NE(text.find("NAME=\"eng 3\",LANGUAGE=\"eng\",DEFAULT=NO"), std::string::npos);
  EXPECT_NE(text.find("CODECS=\"avc1.64001f,mp4a.40.2\",RESOLUTION=640x360,AUDIO=\"audio\"\n1.m3u8\n"),
            std::string::npos)
      << text;
}

TEST(Mp4Playlist, ATrackThatEndsEarlyListsNoEmptySegments) {
  auto a = audio_10s();
  a.sizes.resize(200);  // 4.3 s of audio beside 10 s of video
  a.durations.resize(200);
  auto m = parse({video_10s(), a});
  ASSERT_TRUE(m) << m.err().message;
  auto index = cut_segments(*m, 6000);
  ASSERT_EQ(index.tracks[1].segments(), 2u);  // aligned with the video's
  auto text = media_playlist(*m, index, 1);
  EXPECT_NE(text.find("2/seg-0.m4s"), std::string::npos);
  EXPECT_EQ(text.find("2/seg-1.m4s"), std::string::npos) << text;
  EXPECT_EQ(text.find("#EXTINF:0.000000"), std::string::npos);
  auto mpd = dash_manifest(*m, index);
  EXPECT_EQ(mpd.find(" d=\"0\""), std::string::npos) << mpd;
}

TEST(Mp4Playlist, DashManifestHasAnExactTimelinePerTrack) {
  auto m = parse({video_10s(), audio_10s()});
  ASSERT_TRUE(m);
  auto text = dash_manifest(*m, cut_segments(*m, 2000));
  // The longest track: 469 AAC frames of 1024 samples, 10.0053 s, rounded up.
  EXPECT_NE(text.find("type=\"static\" mediaPresentationDuration=\"PT10.006S\""), std::string::npos) << text;
  EXPECT_NE(text.find("<Representation id=\"1\" codecs=\"avc1.64001f\""), std::string::npos);
  EXPECT_NE(text.find("<SegmentTemplate timescale=\"15360\" initialization=\"1/init.mp4\" "
                      "media=\"1/seg-$Number$.m4s\" startNumber=\"0\">"),
            std::string::npos);
  // Five 2 s video segments: one S element with four repeats.
  EXPECT_NE(text.find("<S t=\"0\" d=\"30720\" r=\"4\"/>"), std::string::npos) << text;
  EXPECT_NE(text.find("lang=\"eng\""), std::string::npos);
  // Audio: cut at the first frame at or after 2, 4, 6, 8 s: frames 94, 188, 282 and 375 of 1024 samples.
  EXPECT_NE(text.find("<S t=\"0\" d=\"96256\" r=\"2\"/>\n            <S t=\"288768\" d=\"95232\"/>\n"
                      "            <S t=\"384000\" d=\"96256\"/>"),
            std::string::npos)
      << text;
}

// -- edit lists, applied in the fragments

// The boxes of a media segment's traf: tfdt's decode time and trun's version and composition offsets.
struct traf_view {
  std::uint64_t tfdt = 0;
  unsigned trun_version = 0;
  std::vector<std::int32_t> cts;
};
traf_view read_traf(const std::string& head) {
  traf_view v;
  auto moof = read_boxes(as_bytes(head).subspan(0, head.size() - 8), "segment");
  if (!moof || moof->empty()) return v;
  auto kids = read_boxes(moof->front().payload(), "moof");
  auto tk = read_boxes(find_box(*kids, fourcc("traf"))->payload(), "traf");
  cursor tfdt(find_box(*tk, fourcc("tfdt"))->payload());
  tfdt.u32();
  v.tfdt = tfdt.u64();
  cursor trun(find_box(*tk, fourcc("trun"))->payload());
  v.trun_version = trun.u8();
  const auto flags = trun.u24();
  const auto count = trun.u32();
  trun.u32();
  for (std::uint32_t i = 0; i < count; ++i) {
    if (flags & 0x100) trun.u32();
    if (flags & 0x200) trun.u32();
    if (flags & 0x400) trun.u32();
    if (flags & 0x800) v.cts.push_back(static_cast<std::int32_t>(trun.u32()));
  }
  return v;
}

TEST(Mp4EditList, BFrameDelayGoesIntoSignedOffsetsAndPrimingIntoTfdt) {
  // As ffmpeg writes H.264 with B-frames and AAC: video media_time = the first composition offset, audio
  // media_time = the encoder's priming (1024 samples at 48 kHz).
  // One B-frame between references (decode I0 P2 B1 P4 B3 ...): composition offsets 512, 1024, 0, 1024, 0,
  // ...
  auto v = video_10s();
  for (std::size_t i = 0; i < v.cts.size(); ++i) v.cts[i] = i == 0 ? 512 : (i % 2 ? 1024 : 0);
  v.edits = {{512, 10000}};
  auto a = audio_10s();
  a.edits = {{1024, 10000}};
  auto m = parse({v, a});
  ASSERT_TRUE(m) << m.err().message;
  const auto& video = m->tracks[0];
  const auto& audio = m->tracks[1];
  EXPECT_EQ(video.cts_shift, 512);
  EXPECT_EQ(audio.cts_shift, 0);
  // Audio would start 1024/48000 s before 0: everything moves later by that, video by 327.68 ticks rounded.
  EXPECT_EQ(audio.decode_offset, 0u);
  EXPECT_EQ(video.decode_offset, 328u);
  auto index = cut_segments(*m, 6000);
  auto seg = read_traf(make_media_segment(video, index.tracks[0], 0).head);
  EXPECT_EQ(seg.tfdt, 328u);
  EXPECT_EQ(seg.trun_version, 1u);  // signed offsets
  ASSERT_GE(seg.cts.size(), 3u);
  EXPECT_EQ(seg.cts[0], 0);  // the first frame is presented at its decode time: 328 ticks, 21 ms
  EXPECT_EQ(seg.cts[1], 512);
  EXPECT_EQ(seg.cts[2], -512);
  auto second = read_traf(make_media_segment(video, index.tracks[0], 1).head);
  EXPECT_EQ(second.tfdt, 180u * 512 + 328);
  auto audio_seg = read_traf(make_media_segment(audio, index.tracks[1], 1).head);
  EXPECT_EQ(audio_seg.tfdt, index.tracks[1].dts[1]);
  EXPECT_TRUE(audio_seg.cts.empty());
  // The init segments carry no edit list: nothing is applied twice.
  for (const auto& t : m->tracks) EXPECT_EQ(init_segment(*m, t).find("edts"), std::string::npos);
  // DASH's timeline starts at each track's first tfdt.
  auto mpd = dash_manifest(*m, index);
  EXPECT_NE(mpd.find("<S t=\"328\" d=\"92160\"/>"), std::string::npos) << mpd;
}

TEST(Mp4EditList, AnEmptyEditDelaysTheTrack) {
  auto a = audio_10s();
  a.edits = {{-1, 500}, {0, 9000}};  // 0.5 s of nothing, then the media from its start
  auto m = parse({video_10s(), a});
  ASSERT_TRUE(m) << m.err().message;
  EXPECT_EQ(m->tracks[0].decode_offset, 0u);
  EXPECT_EQ(m->tracks[1].decode_offset, 24000u);  // 0.5 s at 48 kHz
  auto index = cut_segments(*m, 6000);
  EXPECT_EQ(read_traf(make_media_segment(m->tracks[1], index.tracks[1], 0).head).tfdt, 24000u);
  // Segment 1 of the audio starts at the video's 6 s cut on the common timeline: 5.5 s into the audio.
  const auto at = index.tracks[1].dts[1] + 24000;
  EXPECT_GE(at, 6u * 48000);
  EXPECT_LT(at, 6u * 48000 + 1024);
}

TEST(Mp4EditList, ImpossibleEditsAreRefused) {
  auto a = audio_10s();
  a.edits = {{469 * 1024 + 1, 1000}};  // starts after the media's end
  auto m = parse({video_10s(), a});
  ASSERT_FALSE(m);
  EXPECT_EQ(m.err().code, errc::unprocessable);
  EXPECT_NE(m.err().message.find("edit list"), std::string::npos) << m.err().message;
  a.edits = {{-1, 0xffffffffu}, {-1, 0xffffffffu}, {-1, 0xffffffffu}};  // 149 days of empty edits at 1 kHz
  m = parse({video_10s(), a});
  ASSERT_FALSE(m);
  EXPECT_NE(m.err().message.find("empty edit"), std::string::npos) << m.err().message;
}

// -- subtitles

TEST(WebVtt, CueTextIsMadeSafe) {
  EXPECT_EQ(vtt_cue_text("plain", true), "plain");
  EXPECT_EQ(vtt_cue_text("a & b < c > d", true), "a &amp; b &lt; c &gt; d");
  EXPECT_EQ(vtt_cue_text("x --> y", true), "x --&gt; y");
  EXPECT_EQ(vtt_cue_text("<i>x</i> --> y", false), "<i>x</i> --&gt; y");  // wvtt markup stays
  EXPECT_EQ(vtt_cue_text("one\r\ntwo\rthree\n\n  \nfour\n", true), "one\ntwo\nthree\nfour");
  EXPECT_EQ(vtt_cue_text("\n\n", true), "");
  EXPECT_EQ(vtt_cue_text(std::string("a\0b", 3), true),
            "a\xef\xbf\xbd"
            "b");
  // Bad UTF-8: a lone continuation byte, a truncated sequence, an overlong '/', a surrogate, past U+10FFFF.
  EXPECT_EQ(
      vtt_cue_text("\x80|\xe2\x82|\xc0\xaf|\xed\xa0\x80|\xf4\x90\x80\x80|\xc3\xa9", true),
      "\xef\xbf\xbd|\xef\xbf\xbd\xef\xbf\xbd|\xef\xbf\xbd\xef\xbf\xbd|\xef\xbf\xbd\xef\xbf\xbd\xef\xbf\xbd|"
      "\xef\xbf\xbd\xef\xbf\xbd\xef\xbf\xbd\xef\xbf\xbd|\xc3\xa9");
  // A huge cue is cut, at a line.
  std::string huge;
  for (int i = 0; i < 5000; ++i) huge += "line\n";
  const auto cut = vtt_cue_text(huge, true);
  EXPECT_LE(cut.size(), kMaxCueText);
  EXPECT_GT(cut.size(), kMaxCueText - 8);
  EXPECT_TRUE(cut.ends_with("line"));
  EXPECT_EQ(vtt_cue_text(std::string(100000, 'x'), true), "");  // one line longer than any cue: dropped
}

std::string tx3g(std::uint16_t length, std::string_view text, std::string_view tail = {}) {
  writer w;
  w.u16(length);
  w.raw(text);
  w.raw(tail);
  return std::move(w.str());
}

TEST(WebVtt, Tx3gSamplesDecode) {
  auto cues = decode_text_sample("tx3g", as_bytes(tx3g(5, "Hello")));
  ASSERT_EQ(cues.size(), 1u);
  EXPECT_EQ(cues[0].text, "Hello");
  // Style boxes after the text are ignored.
  writer style;
  style.u32(12);
  style.u32(fourcc("styl"));
  style.u16(0);
  style.u16(0);
  cues = decode_text_sample("tx3g", as_bytes(tx3g(3, "a<b", style.str())));
  ASSERT_EQ(cues.size(), 1u);
  EXPECT_EQ(cues[0].text, "a&lt;b");
  // An empty sample (length 0, or no length at all) is a gap.
  EXPECT_TRUE(decode_text_sample("tx3g", as_bytes(tx3g(0, ""))).empty());
  EXPECT_TRUE(decode_text_sample("tx3g", bytes()).empty());
  EXPECT_TRUE(decode_text_sample("tx3g", as_bytes(std::string("\x01", 1))).empty());
  // A length past the sample: the text is what there is.
  cues = decode_text_sample("tx3g", as_bytes(tx3g(0xffff, "cut short")));
  ASSERT_EQ(cues.size(), 1u);
  EXPECT_EQ(cues[0].text, "cut short");
  // UTF-16 after a byte order mark, big- and little-endian, with a surrogate pair and an unpaired one.
  cues = decode_text_sample("tx3g",
                            as_bytes(tx3g(10, std::string("\xfe\xff\x00\xe9\xd8\x3d\xde\x00\xdc\x00", 10))));
  ASSERT_EQ(cues.size(), 1u);
  EXPECT_EQ(cues[0].text, "\xc3\xa9\xf0\x9f\x98\x80\xef\xbf\xbd");
  cues = decode_text_sample("tx3g", as_bytes(tx3g(4, std::string("\xff\xfe\x41\x00", 4))));
  ASSERT_EQ(cues.size(), 1u);
  EXPECT_EQ(cues[0].text, "A");
}

std::string wvtt_cue(std::string_view payload, std::string_view settings = {}) {
  writer w;
  auto c = w.open(fourcc("vttc"));
  if (!settings.empty()) {
    auto s = w.open(fourcc("sttg"));
    w.raw(settings);
    w.close(s);
  }
  auto p = w.open(fourcc("payl"));
  w.raw(payload);
  w.close(p);
  w.close(c);
  return std::move(w.str());
}

TEST(WebVtt, WvttSamplesDecode) {
  auto sample = wvtt_cue("<b>one</b>\n\ntwo", "line:0 align:start") + wvtt_cue("three", "bad\nsetting");
  auto cues = decode_text_sample("wvtt", as_bytes(sample));
  ASSERT_EQ(cues.size(), 2u);
  EXPECT_EQ(cues[0].text, "<b>one</b>\ntwo");
  EXPECT_EQ(cues[0].settings, "line:0 align:start");
  EXPECT_EQ(cues[1].text, "three");
  EXPECT_EQ(cues[1].settings, "");
  writer empty;
  empty.u32(8);
  empty.u32(fourcc("vtte"));
  EXPECT_TRUE(decode_text_sample("wvtt", as_bytes(empty.str())).empty());
  // A sample cut in the middle of its second cue keeps the first; a box of impossible size ends the sample.
  EXPECT_EQ(decode_text_sample("wvtt", as_bytes(sample).subspan(0, sample.size() - 3)).size(), 1u);
  EXPECT_TRUE(decode_text_sample("wvtt", as_bytes(std::string("\xff\xff\xff\xffvttc", 8))).empty());
}

TEST(WebVtt, TimesAreMilliseconds) {
  EXPECT_EQ(vtt_time(0, 1000), "00:00:00.000");
  EXPECT_EQ(vtt_time(5400, 1000), "00:00:05.400");
  EXPECT_EQ(vtt_time(1, 3), "00:00:00.333");
  EXPECT_EQ(vtt_time(2, 3), "00:00:00.667");
  EXPECT_EQ(vtt_time(3723004ull * 90, 90000), "01:02:03.004");
}

// 10 s of tx3g cues of 1 s at 1 kHz, every other one empty (a gap), the one at 5.5-6.5 s across the 6 s cut.
track_spec subtitles_10s() {
  track_spec t;
  t.video = false;
  t.format = "tx3g";
  t.id = 3;
  t.timescale = 1000;
  for (std::uint32_t d : {500u, 1000u, 1000u, 1000u, 2000u, 1000u, 3500u}) {
    t.durations.push_back(d);
    t.sizes.push_back(t.sizes.size() % 2 ? 7 : 2);  // "\0\x05hello" or "\0\0"
  }
  t.per_chunk = 1;
  t.first_offset = 900000;
  t.chunk_gap = 1000;
  return t;
}

TEST(WebVtt, SubtitleTracksBecomeRenditionsAndSegmentFiles) {
  auto m = parse({video_10s(), audio_10s(), subtitles_10s()});
  ASSERT_TRUE(m) << m.err().message;
  ASSERT_EQ(m->tracks.size(), 2u);
  ASSERT_EQ(m->subtitles.size(), 1u);
  const auto& sub = m->subtitles[0];
  EXPECT_EQ(sub.format, "tx3g");
  EXPECT_EQ(sub.kind, track_kind::subtitle);
  auto index = cut_segments(*m, 6000);
  ASSERT_EQ(index.subtitles.size(), 1u);
  ASSERT_EQ(index.subtitles[0].segments(), 2u);

  auto master = master_playlist(*m, index);
  EXPECT_NE(master.find("#EXT-X-MEDIA:TYPE=SUBTITLES,GROUP-ID=\"subs\",NAME=\"eng 3\",LANGUAGE=\"eng\","
                        "DEFAULT=NO,AUTOSELECT=YES,URI=\"3.m3u8\"\n"),
            std::string::npos)
      << master;
  EXPECT_NE(master.find("AUDIO=\"audio\",SUBTITLES=\"subs\"\n1.m3u8\n"), std::string::npos) << master;
  auto playlist = subtitle_playlist(*m, index, 0);
  EXPECT_NE(playlist.find("#EXTINF:6.000000,\n3/seg-0.vtt\n#EXTINF:4.000000,\n3/seg-1.vtt\n#EXT-X-ENDLIST\n"),
            std::string::npos)
      << playlist;
  EXPECT_EQ(playlist.find("EXT-X-MAP"), std::string::npos);

  // Samples start at 0, 0.5, 1.5, 2.5, 3.5, 5.5 and 6.5 s; those with text: 0.5-1.5, 2.5-3.5, 5.5-6.5 s.
  auto sample_bytes = [&](const text_span& span) {
    std::vector<std::string> out;
    for (auto i = span.first; i < span.end; ++i)
      out.push_back(sub.samples[i].size == 7 ? tx3g(5, "cue " + std::to_string(i).substr(0, 1))
                                             : tx3g(0, ""));
    return out;
  };
  auto first = text_segment(sub, index.subtitles[0], m->tracks[0], index.tracks[0], 0);
  EXPECT_EQ(first.first, 0u);
  EXPECT_EQ(first.end, 6u);
  EXPECT_EQ(webvtt_file(sub, first, sample_bytes(first), true),
            "WEBVTT\nX-TIMESTAMP-MAP=MPEGTS:0,LOCAL:00:00:00.000\n\n"
            "00:00:00.500 --> 00:00:01.500\ncue 1\n\n"
            "00:00:02.500 --> 00:00:03.500\ncue 3\n\n"
            "00:00:05.500 --> 00:00:06.500\ncue 5\n\n");
  // Segment 1 (6-10 s) repeats the cue that lasts into it.
  auto second = text_segment(sub, index.subtitles[0], m->tracks[0], index.tracks[0], 1);
  EXPECT_EQ(second.first, 5u);
  EXPECT_EQ(second.end, 7u);
  EXPECT_EQ(second.first_start, 5500u);
  EXPECT_EQ(
      webvtt_file(sub, second, sample_bytes(second), true),
      "WEBVTT\nX-TIMESTAMP-MAP=MPEGTS:0,LOCAL:00:00:00.000\n\n00:00:05.500 --> 00:00:06.500\ncue 5\n\n");
  // DASH: one whole file, named by the manifest.
  auto whole = whole_text(sub);
  auto all = webvtt_file(sub, whole, sample_bytes(whole), false);
  EXPECT_TRUE(all.starts_with("WEBVTT\n\n00:00:00.500 --> 00:00:01.500\n")) << all;
  auto mpd = dash_manifest(*m, index);
  EXPECT_NE(mpd.find("<AdaptationSet id=\"3\" contentType=\"text\" mimeType=\"text/vtt\" lang=\"eng\">"),
            std::string::npos)
      << mpd;
  EXPECT_NE(mpd.find("<BaseURL>3/whole.vtt</BaseURL>"), std::string::npos);
}

TEST(WebVtt, UnreadableSubtitleTracksAreLeftOut) {
  auto s = subtitles_10s();
  s.format = "wvtt";
  s.durations.pop_back();  // stts describes fewer samples than stsz
  auto m = parse({video_10s(), audio_10s(), s});
  ASSERT_TRUE(m) << m.err().message;
  EXPECT_TRUE(m->subtitles.empty());
  EXPECT_EQ(m->tracks.size(), 2u);
}

// -- the on-disk index cache

TEST(Mp4IndexFile, RoundTripsAndRefusesEveryDamagedCopy) {
  index_file f;
  f.object_size = kBigFile;
  f.location = {4096, 0, 8};
  writer moov;
  auto box = moov.open(fourcc("moov"));
  moov.raw(build_moov_payload({video_10s(), audio_10s()}));
  moov.close(box);
  f.moov = moov.str();
  f.location.size = f.moov.size();
  const auto data = encode_index_file("dir/clip.mp4", "\"etag-1\"", f);
  auto back = decode_index_file(data, "dir/clip.mp4", "\"etag-1\"");
  ASSERT_TRUE(back);
  EXPECT_EQ(back->object_size, f.object_size);
  EXPECT_EQ(back->location.offset, 4096u);
  EXPECT_EQ(back->location.header, 8u);
  EXPECT_EQ(back->location.size, f.moov.size());
  EXPECT_EQ(back->moov, f.moov);
  auto movie = parse_movie(as_bytes(back->moov).subspan(8), back->object_size);
  ASSERT_TRUE(movie) << movie.err().message;
  EXPECT_EQ(movie->tracks.size(), 2u);
  // Another object, another version: not this file's index.
  EXPECT_FALSE(decode_index_file(data, "dir/clip2.mp4", "\"etag-1\""));
  EXPECT_FALSE(decode_index_file(data, "dir/clip.mp4", "\"etag-2\""));
  // Every truncation, and a flipped bit anywhere: refused.
  for (std::size_t n = 0; n < data.size(); n += 1 + n / 64)
    EXPECT_FALSE(decode_index_file(std::string_view(data).substr(0, n), "dir/clip.mp4", "\"etag-1\"")) << n;
  for (std::size_t i = 0; i < data.size(); i += 7) {
    auto bad = data;
    bad[i] = static_cast<char>(bad[i] ^ (1 << (i % 8)));
    EXPECT_FALSE(decode_index_file(bad, "dir/clip.mp4", "\"etag-1\"")) << i;
  }
  // Bytes appended after a whole file: refused too.
  EXPECT_FALSE(decode_index_file(data + "x", "dir/clip.mp4", "\"etag-1\""));
  // A moov that does not fit the object it claims to be in (a consistent file, checksum and all): refused.
  auto lying = f;
  lying.object_size = 100;
  EXPECT_FALSE(decode_index_file(encode_index_file("k", "e", lying), "k", "e"));
}
}  // namespace
}  // namespace mediagate::mp4

namespace mediagate::server {
namespace {

TEST(HlsPath, KeyAndResourceAreSplitFromTheRight) {
  auto t = parse_hls_path("dir/clip.mp4/master.m3u8");
  ASSERT_TRUE(t);
  EXPECT_EQ(t->key, "dir/clip.mp4");
  EXPECT_EQ(t->what, hls_target::kind::master);
  EXPECT_EQ(t->resource, "master.m3u8");
  t = parse_hls_path("clip.mp4/2.m3u8");
  ASSERT_TRUE(t);
  EXPECT_EQ(t->what, hls_target::kind::playlist);
  EXPECT_EQ(t->track, 2u);
  t = parse_hls_path("a/b.mp4/1/init.mp4");
  ASSERT_TRUE(t);
  EXPECT_EQ(t->key, "a/b.mp4");
  EXPECT_EQ(t->what, hls_target::kind::init);
  EXPECT_EQ(t->resource, "1/init.mp4");
  t = parse_hls_path("b.mp4/1/seg-17.m4s");
  ASSERT_TRUE(t);
  EXPECT_EQ(t->what, hls_target::kind::segment);
  EXPECT_EQ(t->segment, 17u);
  t = parse_hls_path("b.mp4/3/seg-2.vtt");
  ASSERT_TRUE(t);
  EXPECT_EQ(t->what, hls_target::kind::vtt_segment);
  EXPECT_EQ(t->segment, 2u);
  EXPECT_EQ(t->track, 3u);
  t = parse_hls_path("b.mp4/3/whole.vtt");
  ASSERT_TRUE(t);
  EXPECT_EQ(t->what, hls_target::kind::vtt_whole);
  for (auto bad : {"master.m3u8", "/master.m3u8", "k/x.m3u8", "k/1/seg-.m4s", "k/1/seg-x.m4s", "k/a/init.mp4",
                   "1/init.mp4", "k/1/seg-99999999999999999999.m4s", "k/-1.m3u8", "k/other"})
    EXPECT_FALSE(parse_hls_path(bad)) << bad;
}

}  // namespace
}  // namespace mediagate::server
