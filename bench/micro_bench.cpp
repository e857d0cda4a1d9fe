// Micro-benchmarks of the pure HTTP rules on the request hot path.
#include <benchmark/benchmark.h>

#include "http/byte_range.hpp"
#include "http/preconditions.hpp"
#include "http/response_plan.hpp"

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

}  // namespace
