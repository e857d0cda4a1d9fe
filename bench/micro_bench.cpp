// Micro-benchmarks of the pure HTTP rules and the SigV4 signer on the request hot path.
#include <benchmark/benchmark.h>

#include <chrono>

#include "http/byte_range.hpp"
#include "http/preconditions.hpp"
#include "http/response_plan.hpp"
#include "mp4/movie.hpp"
#include "mp4/segments.hpp"
#include "s3/sigv4.hpp"

namespace {

using namespace mediagate::http;

void bm_parse_range_single(benchmark::State& state) {
  for (auto _ : state) benchmark::DoNotOptimize(parse_range("bytes=1048576-", 209715200));
}
BENCHMARK(bm_parse_range_single);

void bm_parse_range_multi(benchmark::State& state) {
  for (auto _ : state)
    benchmark::DoNotOptimize(parse_range("bytes=0-99, 200-299, 400-499, 1000-, -500", 209715200));
}
BENCHMARK(bm_parse_range_multi);

void bm_preconditions(benchmark::State& state) {
  conditional_headers h;
  h.if_none_match = R"("a", "b", W/"5f-1a2b-33")";
  h.if_modified_since = "Sun, 06 Nov 1994 08:49:37 GMT";
  const validators v{R"("5f-1a2b-33")", 784111777};
  for (auto _ : state) benchmark::DoNotOptimize(evaluate_preconditions(method::get, h, v));
}
BENCHMARK(bm_preconditions);

void bm_plan_safari_probe(benchmark::State& state) {
  request_view req;
  req.range = "bytes=0-1";
  const representation rep{209715200, R"("5f-1a2b-33")", 784111777, "video/mp4"};
  for (auto _ : state) benchmark::DoNotOptimize(plan_response(req, rep, {}));
}
BENCHMARK(bm_plan_safari_probe);

// The signer, for what mediagate sends per upstream read: a ranged GET with If-Match, path style.
mediagate::s3::request_to_sign ranged_get() {
  mediagate::s3::request_to_sign r;
  r.method = "GET";
  r.host = "127.0.0.1:7480";
  r.path = "/bench/videos/big file (2024).mp4";
  r.headers = {{"range", "bytes=104857600-105906175"},
               {"if-match", R"("9b2cf535f27731c974343645a3985328-25")"}};
  r.payload_sha256 = std::string(mediagate::s3::empty_payload_sha256);
  return r;
}

const mediagate::s3::credentials bench_creds{"AKIAIOSFODNN7EXAMPLE",
                                             "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY", ""};
const auto bench_now = std::chrono::system_clock::time_point(std::chrono::seconds(1700000000));

void bm_sigv4_sign_ranged_get_cached_key(benchmark::State& state) {
  const auto req = ranged_get();
  mediagate::s3::signing_key_cache keys;
  for (auto _ : state)
    benchmark::DoNotOptimize(mediagate::s3::sign_v4(req, bench_creds, "us-east-1", "s3", bench_now, keys));
}
BENCHMARK(bm_sigv4_sign_ranged_get_cached_key);

void bm_sigv4_sign_ranged_get_derive_key(benchmark::State& state) {
  const auto req = ranged_get();
  for (auto _ : state)
    benchmark::DoNotOptimize(mediagate::s3::sign_v4(req, bench_creds, "us-east-1", "s3", bench_now));
}
BENCHMARK(bm_sigv4_sign_ranged_get_derive_key);

void bm_sigv4_derive_signing_key(benchmark::State& state) {
  for (auto _ : state)
    benchmark::DoNotOptimize(
        mediagate::s3::derive_signing_key(bench_creds.secret_access_key, "20231114", "us-east-1", "s3"));
}
BENCHMARK(bm_sigv4_derive_signing_key);

void bm_sigv4_uri_encode_key(benchmark::State& state) {
  for (auto _ : state)
    benchmark::DoNotOptimize(
        mediagate::s3::uri_encode("/bench/videos/big file (2024) \xc3\xa9t\xc3\xa9.mp4", true));
}
BENCHMARK(bm_sigv4_uri_encode_key);

}  // namespace

namespace {

// The moov of a 2-hour movie as muxers write it: 30 fps H.264 (a keyframe every 2 s, composition offsets) and
// 48 kHz AAC, in chunks of one second each, interleaved. 553,500 samples; about 6 MB of sample tables.
std::string two_hour_moov() {
  using namespace mediagate::mp4;
  writer w;
  auto full = [&](const char(&type)[5], auto body) {
    auto b = w.open_full(fourcc(type), 0, 0);
    body();
    w.close(b);
  };
  full("mvhd", [&] {
    w.u64(0);
    w.u32(1000);
    w.u32(7200000);
    for (int i = 0; i < 80; ++i) w.u8(0);
  });
  struct spec {
    bool video;
    std::uint32_t id, timescale, delta, per_chunk, samples, size;
  };
  for (const spec t :
       {spec{true, 1, 15360, 512, 30, 216000, 20000}, spec{false, 2, 48000, 1024, 47, 337500, 300}}) {
    auto trak = w.open(fourcc("trak"));
    full("tkhd", [&] {
      w.u64(0);
      w.u32(t.id);
      for (int i = 0; i < 72; ++i) w.u8(0);
    });
    auto mdia = w.open(fourcc("mdia"));
    full("mdhd", [&] {
      w.u64(0);
      w.u32(t.timescale);
      w.u32(0);
      w.u32(0);
    });
    full("hdlr", [&] {
      w.u32(0);
      w.u32(t.video ? fourcc("vide") : fourcc("soun"));
      for (int i = 0; i < 13; ++i) w.u8(0);
    });
    auto minf = w.open(fourcc("minf"));
    auto stbl = w.open(fourcc("stbl"));
    full("stsd", [&] {
      w.u32(1);
      auto e = w.open(t.video ? fourcc("avc1") : fourcc("mp4a"));
      if (t.video) {
        for (int i = 0; i < 24; ++i) w.u8(0);
        w.u16(1280);
        w.u16(720);
        for (int i = 0; i < 50; ++i) w.u8(0);
        auto c = w.open(fourcc("avcC"));
        for (std::uint8_t b : {1, 0x64, 0, 0x1f, 0xff, 0xe0, 0}) w.u8(b);
        w.close(c);
      } else {
        for (int i = 0; i < 28; ++i) w.u8(0);
        auto c = w.open_full(fourcc("esds"), 0, 0);
        for (std::uint8_t b : {3,    25, 0, 1, 0,    4, 17, 0x40, 0x15, 0,    0, 0, 0, 1,
                               0x77, 0,  0, 1, 0x77, 0, 5,  2,    0x11, 0x90, 6, 1, 2})
          w.u8(b);
        w.close(c);
      }
      w.close(e);
    });
    full("stts", [&] {
      w.u32(1);
      w.u32(t.samples);
      w.u32(t.delta);
    });
    if (t.video) {
      full("ctts", [&] {
        w.u32(t.samples);
        for (std::uint32_t i = 0; i < t.samples; ++i) {
          w.u32(1);
          w.u32(i % 2 ? 0 : 1024);
        }
      });
      full("stss", [&] {
        w.u32(t.samples / 60);
        for (std::uint32_t i = 0; i < t.samples; i += 60) w.u32(i + 1);
      });
    }
    const auto chunks = (t.samples + t.per_chunk - 1) / t.per_chunk;
    full("stsc", [&] {
      const bool partial = t.samples % t.per_chunk != 0;
      w.u32(partial ? 2 : 1);
      w.u32(1);
      w.u32(t.per_chunk);
      w.u32(1);
      if (partial) {
        w.u32(chunks);
        w.u32(t.samples % t.per_chunk);
        w.u32(1);
      }
    });
    full("stsz", [&] {
      w.u32(0);
      w.u32(t.samples);
      for (std::uint32_t i = 0; i < t.samples; ++i) w.u32(t.size + i % 7);
    });
    full("co64", [&] {
      w.u32(chunks);
      for (std::uint32_t c = 0; c < chunks; ++c)
        w.u64(1000 + std::uint64_t(c) * 700000 + (t.video ? 0 : 650000));
    });
    w.close(stbl);
    w.close(minf);
    w.close(mdia);
    w.close(trak);
  }
  return std::move(w.str());
}

// Issue 14's target: the index of a 2-hour moov built in at most 50 ms.
void bm_mp4_index_two_hours(benchmark::State& state) {
  const auto moov = two_hour_moov();
  for (auto _ : state) {
    auto m = mediagate::mp4::parse_movie(mediagate::mp4::as_bytes(moov), 1ull << 40);
    if (!m) state.SkipWithError(m.err().message.c_str());
    auto index = mediagate::mp4::cut_segments(*m, 6000);
    benchmark::DoNotOptimize(index);
  }
  state.counters["moov_bytes"] = static_cast<double>(moov.size());
}
BENCHMARK(bm_mp4_index_two_hours)->Unit(benchmark::kMillisecond);

}  // namespace
