// Micro-benchmarks of the pure HTTP rules and the SigV4 signer on the request hot path.
#include <benchmark/benchmark.h>

#include <chrono>

#include "http/byte_range.hpp"
#include "http/preconditions.hpp"
#include "http/response_plan.hpp"
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
